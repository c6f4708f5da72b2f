"""One careful HTTP client for a Bizagi project.

Retries what may succeed next time (429, 502, 503, 504, dropped or refused connections, as from
a restarting server, timeouts, cut or garbled bodies) with exponential backoff and full jitter,
honouring ``Retry-After`` in seconds or as an HTTP date, bounded in attempts and in total time.
A 429 or 503 pauses every thread of the client, not just the one that met it, so a pool slows
down instead of hammering the server.
Everything else fails at once with an error from ``bizagi_etl.connector.errors``.
"""

from __future__ import annotations

import email.utils
import logging
import random
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson

from bizagi_etl.connector.auth import USER_AGENT, BizagiAuth
from bizagi_etl.connector.errors import (
    AuthError,
    BizagiError,
    ClientError,
    HTTPStatusError,
    ResponseError,
    ServerError,
    TransportError,
)
from bizagi_etl.connector.odata import query_string
from bizagi_etl.connector.redact import body_excerpt, looks_like_html, mask, redact_url
from bizagi_etl.connector.settings import BizagiSettings

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 502, 503, 504}
THROTTLE_STATUSES = {429, 503}
BACKOFF_BASE = 0.5  # seconds before the first retry, doubling each time
_T = TypeVar("_T")
# IEEE754Compatible=true (OData JSON format, section 3.2) asks for Edm.Int64 and Edm.Decimal as
# strings, so an 18-digit decimal is not rounded through a double; servers that do not know it
# ignore it, and frames reads numbers and numeric strings alike.
ACCEPT = "application/json;odata.metadata=minimal;IEEE754Compatible=true"


@dataclass(slots=True)
class RequestStats:
    """What it took to get answers: attempts, retries by reason, bytes, seconds."""

    requests: int = 0  # HTTP attempts, retries included
    retries: Counter[str] = field(default_factory=Counter)  # reason -> count
    bytes: int = 0  # body bytes received
    seconds: float = 0.0  # wall time spent in requests and waits


class BizagiClient:
    """A thread-safe client: share one per process."""

    def __init__(
        self,
        settings: BizagiSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.auth = BizagiAuth(settings)
        self._sleep = sleep
        self._rng = rng or random.Random()  # jitter, not security
        self._pause_until = 0.0
        self._pause_lock = threading.Lock()
        self.http = httpx.Client(
            auth=self.auth,
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            verify=_verify(settings),
            headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
            follow_redirects=False,  # a redirected API call is a login page or a wrong URL
            limits=httpx.Limits(max_connections=settings.max_concurrency + 2),
            transport=transport,
        )

    def __repr__(self) -> str:
        s = self.settings
        return f"BizagiClient(base_url={s.base_url!r}, client_id={s.client_id!r})"

    def url(self, path: str, options: dict[str, Any] | None = None) -> str:
        """An absolute URL under the project, with OData options encoded for Bizagi."""
        if path.startswith(("http://", "https://")):
            raise ValueError("url() takes a path under the base URL, not an absolute URL")
        safe_path = quote(path.lstrip("/"), safe="/()=',:$@-")
        query = f"?{query_string(options, self.settings.filter_encoding)}" if options else ""
        return f"{self.settings.base_url}/{safe_path}{query}"

    def get_json(self, url: str, stats: RequestStats | None = None) -> dict[str, Any]:
        """GET a JSON object, retrying what may succeed next time."""
        return self._get(url, stats, _decode)

    def get_bytes(self, url: str, accept: str, stats: RequestStats | None = None) -> bytes:
        """GET a document that is not JSON (``$metadata``'s XML), with the same retries."""

        def body(response: httpx.Response, url: str) -> bytes:
            if response.status_code >= 300:
                raise _status_error(response, url)
            return response.content

        return self._get(url, stats, body, headers={"Accept": accept})

    def _get(
        self,
        url: str,
        stats: RequestStats | None,
        decode: Callable[[httpx.Response, str], _T],
        headers: dict[str, str] | None = None,
    ) -> _T:
        stats = stats if stats is not None else RequestStats()
        began = time.monotonic()
        attempt = 0
        try:
            while True:
                self._wait_for_pause()
                stats.requests += 1
                try:
                    return self._get_once(url, stats, decode, headers)
                except (TransportError, ServerError, ResponseError) as error:
                    reason, wait = self._retry_plan(error, attempt, began)
                    if reason is None:
                        raise
                    attempt += 1
                    stats.retries[reason] += 1
                    log.info(
                        "GET %s: %s, retry %d in %.2f s", redact_url(url), reason, attempt, wait
                    )
                    self._sleep(wait)
        finally:
            stats.seconds += time.monotonic() - began

    def _get_once(
        self,
        url: str,
        stats: RequestStats,
        decode: Callable[[httpx.Response, str], _T],
        headers: dict[str, str] | None,
    ) -> _T:
        try:
            response = self.http.get(url, headers=headers)
        except httpx.TransportError as exc:
            raise _transport_error("GET", url, exc) from None
        stats.bytes += len(response.content)
        log.debug(
            "GET %s -> %d (%d B)", redact_url(url), response.status_code, len(response.content)
        )
        return decode(response, url)

    def _retry_plan(
        self, error: BizagiError, attempt: int, began: float
    ) -> tuple[str | None, float]:
        """(reason, seconds to wait), or (None, 0) when the error is final."""
        reason = _retry_reason(error)
        if reason is None or attempt >= self.settings.max_retries:
            return None, 0.0
        ceiling = min(self.settings.max_backoff, BACKOFF_BASE * 2**attempt)
        wait = self._rng.uniform(0, ceiling)
        if isinstance(error, HTTPStatusError) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        if time.monotonic() - began + wait > self.settings.retry_budget:
            return None, 0.0
        if isinstance(error, HTTPStatusError) and error.status in THROTTLE_STATUSES:
            self._pause_everyone(wait)
        return reason, wait

    def _pause_everyone(self, seconds: float) -> None:
        with self._pause_lock:
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    def _wait_for_pause(self) -> None:
        delay = self._pause_until - time.monotonic()
        if delay > 0:
            self._sleep(delay)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> BizagiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _verify(settings: BizagiSettings) -> ssl.SSLContext | bool:
    if settings.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(settings.ca_bundle))
    return settings.verify_tls


def _decode(response: httpx.Response, url: str) -> dict[str, Any]:
    status = response.status_code
    if status >= 300:
        raise _status_error(response, url)
    if looks_like_html(response):
        raise ResponseError(
            f"GET {redact_url(url)} answered an HTML page (HTTP {status}), not OData JSON: "
            "a login page or proxy in the way, or a wrong base URL",
            method="GET", url=redact_url(url), status=status,
        )  # fmt: skip
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise ResponseError(
            f"GET {redact_url(url)} answered HTTP {status} with a body that is not complete "
            f"JSON ({len(response.content)} B): {body_excerpt(response, 80)!r}",
            method="GET", url=redact_url(url), status=status, retriable=True,
        ) from None  # fmt: skip
    if not isinstance(body, dict):
        raise ResponseError(
            f"GET {redact_url(url)} answered a JSON {type(body).__name__}, expected an object",
            method="GET", url=redact_url(url), status=status,
        )  # fmt: skip
    return body


def _status_error(response: httpx.Response, url: str) -> HTTPStatusError:
    status = response.status_code
    shown = redact_url(url)
    message = (
        f"GET {shown} failed: HTTP {status} {response.reason_phrase}: {_odata_message(response)}"
    )
    cls: type[HTTPStatusError] = ServerError
    if 300 <= status < 400:
        location = redact_url(response.headers.get("location", "?"))
        message = (
            f"GET {shown} was redirected (HTTP {status}) to {location}: a login page or a "
            "wrong base URL; redirects are not followed with credentials"
        )
        cls = ClientError
    elif status in (401, 403):
        cls = AuthError
    elif status < 500 and status != 429:
        cls = ClientError
    return cls(
        message,
        method="GET",
        url=shown,
        status=status,
        body=body_excerpt(response),
        retry_after=_retry_after(response),
    )


def _odata_message(response: httpx.Response) -> str:
    """One masked line from the error body: Bizagi's flat ``{"code", "type", "status",
    "message"}``, the OData standard's ``{"error": {"code", "message", "details"}}``, or a short
    excerpt of whatever came."""
    if looks_like_html(response):
        return "an HTML page (a login page or proxy?)"
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return repr(body_excerpt(response))
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):  # the OData standard's shape
            return _one_line(inner.get("code"), inner.get("message"), inner.get("details"))
        if "message" in body:  # Bizagi's flat shape
            return _one_line(body.get("code"), body.get("message"), None)
    return repr(body_excerpt(response))


def _one_line(code: object, message: object, details: object) -> str:
    text = f"[{code}] {message}" if code not in (None, "") else str(message)
    if isinstance(details, list):
        more = [str(d.get("message")) for d in details if isinstance(d, dict) and d.get("message")]
        if more:
            text += f" ({'; '.join(more[:3])})"
    return mask(" ".join(text.split()))[:500]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _retry_reason(error: BizagiError) -> str | None:
    if isinstance(error, TransportError):
        return error.kind if error.kind in ("timeout", "dropped", "refused", "network") else None
    if isinstance(error, ResponseError):
        return "garbled" if error.retriable else None
    if isinstance(error, ServerError) and error.status in RETRY_STATUSES:
        return str(error.status)
    return None


def _transport_error(method: str, url: str, exc: httpx.TransportError) -> TransportError:
    kind = _transport_kind(exc)
    shown = redact_url(url)
    what = {
        "dns": "the host name does not resolve",
        "tls": "the TLS handshake failed",
        "refused": "the connection was refused",
        "timeout": "the request timed out",
        "dropped": "the connection closed before the answer was complete",
    }.get(kind, "a network error occurred")
    return TransportError(f"{method} {shown}: {what} ({exc})", method=method, url=shown, kind=kind)


def _transport_kind(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "dropped"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "dns"
        if isinstance(cause, ssl.SSLError):
            return "tls"
        if isinstance(cause, ConnectionRefusedError):
            return "refused"
        cause = cause.__cause__ or cause.__context__
    text = str(exc).lower()
    for needle, kind in (("name or service", "dns"), ("name resolution", "dns"),
                         ("nodename", "dns"), ("ssl", "tls"), ("certificate", "tls"),
                         ("refused", "refused")):  # fmt: skip
        if needle in text:
            return kind
    return "network"
