"""OAuth2 client credentials for Bizagi as an ``httpx.Auth`` flow.

Bizagi's token answers are not quite RFC 6749: ``token_type`` is lower-case ``bearer``, the body
carries its own ``http_status_code`` (an error may come with HTTP 200), and ``expires_in`` may be
huge, ``0`` (never expires) or missing. The token is cached, refreshed ahead of expiry, and
refreshed once and the request replayed on a 401. One lock serves all threads: when a token
runs out, one thread fetches the next and the others wait for it instead of stampeding.

The Authorization header only ever goes to the project's own origin.

Bodies are not read by httpx (``requires_response_body = False``): the flow reads the token
answer itself, bounded in bytes and by the deadline of the request that needed the token (the
``DEADLINE`` extension the client sets), so neither a huge nor a trickling token endpoint can
hold a caller. The client reads the final answer the same way (``guard``). Errors leave the flow
scrubbed of the secret and of every token held (``Redactor``), whatever their length.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

import httpx
import orjson

from bizagi_etl import __version__
from bizagi_etl.connector.errors import (
    AuthError,
    BizagiError,
    ClientError,
    ResponseError,
    ServerError,
)
from bizagi_etl.connector.redact import (
    Redactor,
    basic_credentials,
    body_excerpt,
    looks_like_html,
    mask,
    redact_url,
    scrub_error,
)
from bizagi_etl.connector.settings import BizagiSettings, origin_of

log = logging.getLogger(__name__)

USER_AGENT = f"bizagi-etl/{__version__} httpx/{httpx.__version__}"
MARGIN_SECONDS = 60.0  # refresh this long before expiry ...
MARGIN_SHARE = 0.1  # ... or this share of the lifetime, whichever is shorter
# Request extension: the monotonic time by which the attempt (token request included) must end.
DEADLINE = "bizagi_etl.deadline"
TOKEN_ANSWER_BYTES = 1024 * 1024  # a token answer is a few hundred bytes; beyond this, not one
ERROR_BODY_BYTES = 64 * 1024  # of an error answer, only this much is read: enough to explain it
# A compressed body that httpx reads whole is limited to this many bytes on the wire: DEFLATE
# expands at most ~1,032 times, so what it decodes to stays bounded too.
COMPRESSED_WHOLE_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    lifetime: float | None  # seconds; None = never expires
    expires_at: float | None  # monotonic clock

    def __repr__(self) -> str:
        return f"Token(lifetime={self.lifetime}, expires_at={self.expires_at})"


class BizagiAuth(httpx.Auth):
    """Client credentials (secret in a Basic header or the form), or Bizagi's bearer grant."""

    requires_response_body = False  # bodies are read here, bounded, never whole by httpx

    def __init__(
        self, settings: BizagiSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._token: Token | None = None
        self._lock = threading.Lock()
        self.refreshes = 0  # tokens fetched so far
        secret = settings.client_secret.reveal()
        # What must never show: the secret, its Basic form, and every token held (added later).
        self.redactor = Redactor([secret, basic_credentials(settings.client_id, secret)])
        if len(secret) < 4:
            log.warning(
                "the client secret has fewer than 4 characters: it is removed from messages "
                "only where it stands as a credential, not from free text"
            )

    def __repr__(self) -> str:
        s = self.settings
        return f"BizagiAuth(client_id={s.client_id!r}, method={s.auth_method!r})"

    @property
    def token(self) -> Token | None:
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        try:
            yield from self._flow(request)
        except BizagiError as error:
            scrub_error(error)
            raise

    def _flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if origin_of(str(request.url)) != self.settings.origin:
            request.headers.pop("Authorization", None)
            yield request  # never hand the token to another origin
            return
        if self.settings.auth_method == "bearer_token":
            request.headers["Authorization"] = f"Bearer {self.settings.client_secret.reveal()}"
            yield request
            return
        token = yield from self._current_token(stale=None, parent=request)
        request.headers["Authorization"] = f"Bearer {token.value}"
        response = yield request
        if response.status_code == 401:
            log.info("401 on %s: refreshing the token once", redact_url(str(request.url)))
            # httpx reads this body before the replay: only a bounded piece of it.
            guard(response, ERROR_BODY_BYTES, truncate=True, whole=True)
            token = yield from self._current_token(stale=token, parent=request)
            request.headers["Authorization"] = f"Bearer {token.value}"
            yield request

    def _current_token(
        self, stale: Token | None, parent: httpx.Request | None = None
    ) -> Generator[httpx.Request, httpx.Response, Token]:
        """A usable token; fetch one if there is none, it is about to expire, or it is ``stale``.

        The token request shares the deadline and timeouts of ``parent``, the request that needs
        the token."""
        with self._lock:
            token = self._token
            if token is not None and token is not stale and not self._expiring(token):
                return token
            response = yield self._token_request(parent)
            self._read_answer(response)
            fresh = self._parse(response)
            self.redactor.add_token(fresh.value)
            self._token = fresh
            self.refreshes += 1
            log.debug("token fetched, lifetime %s s", fresh.lifetime)
            return fresh

    def _read_answer(self, response: httpx.Response) -> None:
        """Read the token answer, bounded in bytes and by the deadline."""
        ok = response.status_code < 300
        limit = min(TOKEN_ANSWER_BYTES, self.settings.max_response_bytes)
        guard(
            response,
            limit if ok else ERROR_BODY_BYTES,
            truncate=not ok,
            whole=True,
            what="the token answer",
            fix="that is no token answer: check BIZAGI_TOKEN_URL",
        )
        response.read()

    def _expiring(self, token: Token) -> bool:
        if token.expires_at is None or token.lifetime is None:
            return False
        margin = min(MARGIN_SECONDS, token.lifetime * MARGIN_SHARE)
        return self.clock() >= token.expires_at - margin

    def _token_request(self, parent: httpx.Request | None = None) -> httpx.Request:
        s = self.settings
        form = {"grant_type": "client_credentials", "scope": s.scope}
        # identity: a token answer is tiny, and an uncompressed body is bounded by its bytes
        headers = {
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": USER_AGENT,
        }
        if s.auth_method == "client_secret_post":
            form |= {"client_id": s.client_id, "client_secret": s.client_secret.reveal()}
        else:
            basic = basic_credentials(s.client_id, s.client_secret.reveal())
            headers["Authorization"] = f"Basic {basic}"
        # A request built here does not inherit the client's timeouts: give it those of the
        # request that needs the token (cut to what is left of its deadline), or the settings'.
        inherited = parent.extensions if parent is not None else {}
        timeout = (
            inherited.get("timeout")
            or httpx.Timeout(s.read_timeout, connect=s.connect_timeout).as_dict()
        )
        extensions: dict[str, object] = {"timeout": timeout}
        if inherited.get(DEADLINE) is not None:
            extensions[DEADLINE] = inherited[DEADLINE]
        return httpx.Request("POST", s.token_url, data=form, headers=headers, extensions=extensions)

    def _parse(self, response: httpx.Response) -> Token:
        where = f"POST {redact_url(self.settings.token_url)}"
        status = response.status_code
        if looks_like_html(response):
            raise ResponseError(
                f"{where} answered an HTML page (HTTP {status}), not a token: a login page or "
                "proxy in the way, or a wrong base URL",
                method="POST", url=redact_url(self.settings.token_url), status=status,
                kind="html",
            )  # fmt: skip
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("access_token"), str):
            self.redactor.add_token(body["access_token"])  # before any error can quote it
        if not isinstance(body, dict):
            self._raise_status(where, status, response, "the answer is not a JSON object")
            raise ResponseError(
                f"{where} answered HTTP {status} with a body that is not JSON: "
                f"{body_excerpt(response)!r}",
                method="POST", url=redact_url(self.settings.token_url), status=status,
                retriable=True, kind="garbled",
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


# -- bounded bodies ----------------------------------------------------------------------------


def guard(
    response: httpx.Response,
    limit: int,
    *,
    truncate: bool,
    whole: bool = False,
    what: str = "the answer",
    fix: str | None = None,
) -> None:
    """Bound what reading ``response`` can cost, whoever reads it (httpx included).

    Beyond ``limit`` bytes on the wire the body is cut short (``truncate``: error answers, whose
    start is all we show) or refused with a ``ResponseError`` (``too_large``); a declared
    ``Content-Length`` beyond it is refused before anything is read. Between chunks the deadline
    of the request (``DEADLINE``) is checked: past it, ``httpx.ReadTimeout``. ``whole``: httpx
    will decode the body in one piece, so a compressed one is limited to
    ``COMPRESSED_WHOLE_BYTES`` on the wire.
    """
    try:
        request: httpx.Request | None = response.request
    except RuntimeError:  # a response made by hand, with no request
        request = None
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if whole and encoding not in ("", "identity"):
        limit = min(limit, COMPRESSED_WHOLE_BYTES)
    method = request.method if request is not None else "GET"
    url = str(request.url) if request is not None else "?"
    if not truncate:
        declared = _declared_length(response)
        if declared is not None and declared > limit:
            raise too_large(method, url, limit, status=response.status_code, declared=declared,
                            what=what, fix=fix)  # fmt: skip
    deadline = request.extensions.get(DEADLINE) if request is not None else None
    if not isinstance(response.stream, _Guarded):
        refuse = functools.partial(too_large, method, url, limit, status=response.status_code,
                                   what=what, fix=fix)  # fmt: skip
        response.stream = _Guarded(response.stream, limit, truncate, deadline, refuse, request)


class _Guarded(httpx.SyncByteStream):
    def __init__(
        self,
        inner: httpx.SyncByteStream | httpx.AsyncByteStream,
        limit: int,
        truncate: bool,
        deadline: float | None,
        refuse: Callable[[], ResponseError],
        request: httpx.Request | None,
    ) -> None:
        self._inner = inner
        self._limit = limit
        self._truncate = truncate
        self._deadline = deadline
        self._refuse = refuse
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        if not isinstance(self._inner, httpx.SyncByteStream):
            raise TypeError("BizagiAuth bounds synchronous bodies only")
        seen = 0
        for chunk in self._inner:
            if self._deadline is not None and time.monotonic() > self._deadline:
                raise httpx.ReadTimeout("the request deadline passed", request=self._request)
            seen += len(chunk)
            if seen > self._limit:
                if not self._truncate:
                    raise self._refuse()
                yield chunk[: len(chunk) - (seen - self._limit)]
                return
            yield chunk

    def close(self) -> None:
        if isinstance(self._inner, httpx.SyncByteStream):
            self._inner.close()


def _declared_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def too_large(
    method: str,
    url: str,
    limit: int,
    *,
    status: int = 200,
    declared: int | None = None,
    what: str = "the answer",
    fix: str | None = None,
) -> ResponseError:
    """The answer is beyond ``limit`` bytes: final, naming the URL, the limit and what to do."""
    shown = redact_url(url)
    fix = fix or (
        "if it is really this large, raise BIZAGI_MAX_RESPONSE_BYTES, or ask for smaller pages "
        "with BIZAGI_PAGE_SIZE"
    )
    size = f"declares {declared} bytes (Content-Length)" if declared is not None else "goes on"
    return ResponseError(
        f"{method} {shown}: {what} {size} beyond the limit of {_mib(limit)} ({limit} bytes); "
        f"reading stopped; {fix}",
        method=method, url=shown, status=status, kind="too_large",
    )  # fmt: skip


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:g} MiB" if size >= 1024 * 1024 else f"{size / 1024:g} KiB"
