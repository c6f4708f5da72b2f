"""OAuth2 client credentials for Bizagi as an ``httpx.Auth`` flow.

Bizagi's token answers are not quite RFC 6749: ``token_type`` is lower-case ``bearer``, the body
carries its own ``http_status_code`` (an error may come with HTTP 200), and ``expires_in`` may be
huge, ``0`` (never expires) or missing. The token is cached, refreshed ahead of expiry, and
refreshed once and the request replayed on a 401. One lock serves all threads: when a token
runs out, one thread fetches the next and the others wait for it instead of stampeding.

The Authorization header only ever goes to the project's own origin.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import httpx
import orjson

from bizagi_etl import __version__
from bizagi_etl.connector.errors import AuthError, ClientError, ResponseError, ServerError
from bizagi_etl.connector.redact import body_excerpt, looks_like_html, mask, redact_url
from bizagi_etl.connector.settings import BizagiSettings, origin_of

log = logging.getLogger(__name__)

USER_AGENT = f"bizagi-etl/{__version__} httpx/{httpx.__version__}"
MARGIN_SECONDS = 60.0  # refresh this long before expiry ...
MARGIN_SHARE = 0.1  # ... or this share of the lifetime, whichever is shorter


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    lifetime: float | None  # seconds; None = never expires
    expires_at: float | None  # monotonic clock

    def __repr__(self) -> str:
        return f"Token(lifetime={self.lifetime}, expires_at={self.expires_at})"


class BizagiAuth(httpx.Auth):
    """Client credentials (secret in a Basic header or the form), or Bizagi's bearer grant."""

    requires_response_body = True

    def __init__(
        self, settings: BizagiSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._token: Token | None = None
        self._lock = threading.Lock()
        self.refreshes = 0  # tokens fetched so far

    def __repr__(self) -> str:
        s = self.settings
        return f"BizagiAuth(client_id={s.client_id!r}, method={s.auth_method!r})"

    @property
    def token(self) -> Token | None:
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if origin_of(str(request.url)) != self.settings.origin:
            request.headers.pop("Authorization", None)
            yield request  # never hand the token to another origin
            return
        if self.settings.auth_method == "bearer_token":
            request.headers["Authorization"] = f"Bearer {self.settings.client_secret.reveal()}"
            yield request
            return
        token = yield from self._current_token(stale=None)
        request.headers["Authorization"] = f"Bearer {token.value}"
        response = yield request
        if response.status_code == 401:
            log.info("401 on %s: refreshing the token once", redact_url(str(request.url)))
            token = yield from self._current_token(stale=token)
            request.headers["Authorization"] = f"Bearer {token.value}"
            yield request

    def _current_token(
        self, stale: Token | None
    ) -> Generator[httpx.Request, httpx.Response, Token]:
        """A usable token; fetch one if there is none, it is about to expire, or it is ``stale``."""
        with self._lock:
            token = self._token
            if token is not None and token is not stale and not self._expiring(token):
                return token
            response = yield self._token_request()
            self._token = self._parse(response)
            self.refreshes += 1
            log.debug("token fetched, lifetime %s s", self._token.lifetime)
            return self._token

    def _expiring(self, token: Token) -> bool:
        if token.expires_at is None or token.lifetime is None:
            return False
        margin = min(MARGIN_SECONDS, token.lifetime * MARGIN_SHARE)
        return self.clock() >= token.expires_at - margin

    def _token_request(self) -> httpx.Request:
        s = self.settings
        form = {"grant_type": "client_credentials", "scope": s.scope}
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if s.auth_method == "client_secret_post":
            form |= {"client_id": s.client_id, "client_secret": s.client_secret.reveal()}
        else:
            raw = f"{s.client_id}:{s.client_secret.reveal()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        # A request built here does not inherit the client's timeouts: give it the same ones.
        timeout = httpx.Timeout(s.read_timeout, connect=s.connect_timeout)
        return httpx.Request(
            "POST",
            s.token_url,
            data=form,
            headers=headers,
            extensions={"timeout": timeout.as_dict()},
        )

    def _parse(self, response: httpx.Response) -> Token:
        where = f"POST {redact_url(self.settings.token_url)}"
        status = response.status_code
        if looks_like_html(response):
            raise ResponseError(
                f"{where} answered an HTML page (HTTP {status}), not a token: a login page or "
                "proxy in the way, or a wrong base URL",
                method="POST", url=redact_url(self.settings.token_url), status=status,
            )  # fmt: skip
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            self._raise_status(where, status, response, "the answer is not a JSON object")
            raise ResponseError(
                f"{where} answered HTTP {status} with a body that is not JSON: "
                f"{body_excerpt(response)!r}",
                method="POST", url=redact_url(self.settings.token_url), status=status,
                retriable=True,
            )  # fmt: skip
        body_status = body.get("http_status_code", status)
        if status != 200 or body_status != 200 or "error" in body:
            reason = mask(
                f"{body.get('error', 'error')}: {body.get('error_description', '')}".strip()
            )
            self._raise_status(where, body_status if status == 200 else status, response, reason)
        return self._token_from(body, where)

    def _token_from(self, body: dict[str, object], where: str) -> Token:
        value, kind = body.get("access_token"), str(body.get("token_type", "bearer"))
        if not isinstance(value, str) or not value or kind.lower() != "bearer":
            raise AuthError(
                f"{where} answered without a bearer access_token (token_type {kind!r})",
                method="POST", url=redact_url(self.settings.token_url), status=200, body="",
            )  # fmt: skip
        lifetime = _lifetime(body.get("expires_in"))
        expires_at = self.clock() + lifetime if lifetime is not None else None
        return Token(value=value, lifetime=lifetime, expires_at=expires_at)

    def _raise_status(self, where: str, status: int, response: httpx.Response, reason: str) -> None:
        url = redact_url(self.settings.token_url)
        excerpt = body_excerpt(response)
        message = f"{where} refused the token request: HTTP {status}, {reason}"
        if status in (429, 502, 503, 504) or status >= 500:
            raise ServerError(message, method="POST", url=url, status=status, body=excerpt)
        if status in (400, 401, 403):
            raise AuthError(message, method="POST", url=url, status=status, body=excerpt)
        if status >= 300:
            raise ClientError(message, method="POST", url=url, status=status, body=excerpt)


def _lifetime(expires_in: object) -> float | None:
    """Seconds a token lives; ``None`` (never expires) for 0, missing or nonsense values.

    A token that never expires is still refreshed once on a 401, so reading a strange value as
    "never" costs one round trip at worst; reading it as "already expired" would cost a token
    request per call.
    """
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float | str):
        return None
    try:
        seconds = float(expires_in)
    except ValueError:
        return None
    return seconds if 0 < seconds < float("inf") else None
