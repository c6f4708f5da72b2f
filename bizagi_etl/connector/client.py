"""One careful HTTP client for a Bizagi project.

Retries what may succeed next time (429, 502, 503, 504, dropped or refused connections, as from
a restarting server, timeouts, cut or garbled bodies) with exponential backoff and full jitter,
honouring ``Retry-After`` in seconds or as an HTTP date, bounded in attempts and in total time.
A 429 or 503 pauses every thread of the client, not just the one that met it, so a pool slows
down instead of hammering the server.
Everything else fails at once with an error from ``bizagi_etl.connector.errors``.

Every request is bounded: ``retry_budget`` is a hard ceiling on its total time (attempts and
waits), and each attempt ends by ``request_deadline`` or the end of the budget, whichever comes
first, connect, headers, body (and a token request it needed) together. The deadline is
enforced on the socket (each read waits at most what is left: ``_DeadlineTransport``) and
between chunks, so a server that trickles a byte a second cannot hold a caller. Bodies are
streamed and counted: beyond ``max_response_bytes`` reading stops with a final
``ResponseError``, so memory stays bounded.
Errors and log lines leave the client without the secret or any token it held (``redact``).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import random
import socket
import ssl
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpcore
import httpx
import orjson

from bizagi_etl.connector.auth import (
    DEADLINE,
    ERROR_BODY_BYTES,
    USER_AGENT,
    BizagiAuth,
    guard,
    too_large,
)
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
from bizagi_etl.connector.redact import (
    Redactor,
    body_excerpt,
    install_log_filter,
    looks_like_html,
    mask,
    redact_url,
    scrub,
    scrub_error,
    shorten,
)
from bizagi_etl.connector.settings import BizagiSettings

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 502, 503, 504}
THROTTLE_STATUSES = {429, 503}
BACKOFF_BASE = 0.5  # seconds before the first retry, doubling each time
# A socket timeout may fire a hair before the deadline it was cut to: still "the deadline".
DEADLINE_SLACK = 0.05
INFLATE_PIECE = 64 * 1024  # most bytes one step of inflating a compressed body may produce
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
        self._deadline = threading.local()  # .at: the deadline of this thread's attempt
        limits = httpx.Limits(max_connections=settings.max_concurrency + 2)
        # True: every socket wait is bounded by the deadline; with a transport of the caller's
        # (or a proxy from the environment) the deadline holds between body chunks.
        self.deadline_on_sockets = transport is None
        if transport is None:
            transport = _DeadlineTransport(_verify(settings), limits, self._deadline)
        self.http = httpx.Client(
            auth=self.auth,
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            verify=_verify(settings),
            headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
            follow_redirects=False,  # a redirected API call is a login page or a wrong URL
            limits=limits,
            transport=transport,
        )
        install_log_filter()

    def __repr__(self) -> str:
        s = self.settings
        return f"BizagiClient(base_url={s.base_url!r}, client_id={s.client_id!r})"

    @property
    def redactor(self) -> Redactor:
        """What this client must never show: its secret, the Basic form, every token held."""
        return self.auth.redactor

    @staticmethod
    def scrub(text: str) -> str:
        """``text`` without any credential a live client knows (for messages built outside)."""
        return scrub(text)

    def url(self, path: str, options: dict[str, Any] | None = None) -> str:
        """An absolute URL under the project, with OData options encoded for Bizagi."""
        if path.startswith(("http://", "https://")):
            raise ValueError("url() takes a path under the base URL, not an absolute URL")
        safe_path = quote(path.lstrip("/"), safe="/()=',:$@-")
        query = f"?{query_string(options, self.settings.filter_encoding)}" if options else ""
        return f"{self.settings.base_url}/{safe_path}{query}"

    def get_json(
        self, url: str, stats: RequestStats | None = None, *, exact: bool = False
    ) -> dict[str, Any]:
        """GET a JSON object, retrying what may succeed next time.

        ``exact`` reads JSON numbers with a fraction or exponent as ``Decimal``: a server that
        sends an 18-digit decimal as a number (not as the string IEEE754Compatible asks for)
        would otherwise lose digits through a double. It costs about a fifth more parsing, so
        callers ask for it only where a column needs more digits than a double holds.
        """
        return self._get(url, stats, _decode_exact if exact else _decode)

    def get_json_bytes(self, url: str, stats: RequestStats | None = None) -> bytes:
        """GET an OData JSON body as it came, with the same retries, for a caller that parses
        it itself (into Arrow); an error status raises as ``get_json`` does."""
        return self.get_bytes(url, ACCEPT, stats)

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
        budget_end = began + self.settings.retry_budget
        attempt = 0
        try:
            while True:
                self._wait_for_pause(url, budget_end)
                stats.requests += 1
                try:
                    return self._get_once(url, stats, decode, headers, budget_end)
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
        except BizagiError as error:
            scrub_error(error)  # the last line: nothing the client knows leaves in an error
            raise
        finally:
            stats.seconds += time.monotonic() - began

    def _get_once(
        self,
        url: str,
        stats: RequestStats,
        decode: Callable[[httpx.Response, str], _T],
        headers: dict[str, str] | None,
        budget_end: float,
    ) -> _T:
        s = self.settings
        now = time.monotonic()
        deadline = min(now + s.request_deadline, budget_end)
        left = max(deadline - now, 0.001)
        # No single wait may outlast the deadline; the socket and the body reader enforce it
        # across waits.
        timeout = httpx.Timeout(
            connect=min(s.connect_timeout, left),
            read=min(s.read_timeout, left),
            write=min(s.read_timeout, left),
            pool=left,
        )
        outer = getattr(self._deadline, "at", None)
        self._deadline.at = deadline if outer is None else min(outer, deadline)
        try:
            with self.http.stream(
                "GET", url, headers=headers, timeout=timeout, extensions={DEADLINE: deadline}
            ) as response:
                answer = self._read(response, url)
        except httpx.TransportError as exc:
            raise self._transport_error(url, exc, deadline, budget_end) from None
        finally:
            self._deadline.at = outer
        stats.bytes += len(answer.content)
        log.debug("GET %s -> %d (%d B)", redact_url(url), answer.status_code, len(answer.content))
        return decode(answer, url)

    def _read(self, response: httpx.Response, url: str) -> httpx.Response:
        """The answer with its body in memory: decoded, at most ``max_response_bytes`` (an
        error's body: its first ``ERROR_BODY_BYTES``), read before the deadline."""
        status = response.status_code
        ok = status < 300
        limit = self.settings.max_response_bytes if ok else ERROR_BODY_BYTES
        guard(response, limit, truncate=not ok)  # on the wire: deadline, bytes, Content-Length
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in _decoded(response):  # a compressed body counts what it decodes to
                size += len(chunk)
                if size > limit:
                    if ok:
                        raise too_large("GET", url, limit, status=status)
                    chunks.append(chunk[: len(chunk) - (size - limit)])
                    break
                chunks.append(chunk)
        except httpx.DecodingError as exc:
            shown = redact_url(url)
            raise ResponseError(
                f"GET {shown} answered HTTP {status} with a body that does not decode "
                f"({response.headers.get('content-encoding')}): {scrub(str(exc))}",
                method="GET", url=shown, status=status, retriable=True, kind="garbled",
            ) from None  # fmt: skip
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        kept = ("http_version", "reason_phrase")
        extensions: dict[str, Any] = {k: response.extensions[k] for k in kept
                                      if k in response.extensions}  # fmt: skip
        return httpx.Response(status, headers=headers, content=b"".join(chunks),
                              request=response.request, extensions=extensions)  # fmt: skip

    def _transport_error(
        self, url: str, exc: httpx.TransportError, deadline: float, budget_end: float
    ) -> TransportError:
        s = self.settings
        shown = redact_url(url)
        if not isinstance(exc, httpx.TimeoutException):
            return _transport_error("GET", url, exc)
        if time.monotonic() < deadline - DEADLINE_SLACK:  # one wait, not the whole attempt
            if isinstance(exc, httpx.ConnectTimeout):
                what = f"no connection within {s.connect_timeout:g} s (BIZAGI_CONNECT_TIMEOUT)"
            elif isinstance(exc, httpx.PoolTimeout):
                what = "no free connection in time (raise BIZAGI_MAX_CONCURRENCY?)"
            else:
                what = f"the server sent nothing for {s.read_timeout:g} s (BIZAGI_READ_TIMEOUT)"
            return TransportError(f"GET {shown}: {what}", method="GET", url=shown, kind="timeout")
        if deadline >= budget_end:
            within = f"what was left of the {s.retry_budget:g} s retry budget (BIZAGI_RETRY_BUDGET)"
        else:
            within = f"the {s.request_deadline:g} s request deadline (BIZAGI_REQUEST_DEADLINE)"
        return TransportError(
            f"GET {shown}: no complete answer within {within}: the server is too slow or "
            "trickles its answer",
            method="GET", url=shown, kind="timeout",
        )  # fmt: skip

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
        if time.monotonic() - began + wait >= self.settings.retry_budget:
            return None, 0.0  # no time would be left for the attempt: the budget is a ceiling
        if isinstance(error, HTTPStatusError) and error.status in THROTTLE_STATUSES:
            self._pause_everyone(wait)
        return reason, wait

    def _pause_everyone(self, seconds: float) -> None:
        with self._pause_lock:
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    def _wait_for_pause(self, url: str, budget_end: float) -> None:
        now = time.monotonic()
        delay = self._pause_until - now
        if delay <= 0:
            return
        if now + delay >= budget_end:
            shown = redact_url(url)
            raise TransportError(
                f"GET {shown}: the server throttles this client for {delay:.1f} s more (429/503 "
                f"with Retry-After), beyond what is left of the {self.settings.retry_budget:g} s "
                "retry budget (BIZAGI_RETRY_BUDGET)",
                method="GET", url=shown, kind="timeout",
            )  # fmt: skip
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
        if isinstance(exc, BizagiError):
            scrub_error(exc)  # raised outside the client (paging, metadata) but with its data


class _DeadlineTransport(httpx.BaseTransport):
    """httpx's HTTP/1.1 transport rebuilt on httpcore's public API, with one difference: its
    sockets never wait past the calling thread's deadline (``deadline.at``), however slowly
    the server trickles headers or body. (httpx's own transport takes no network backend.)"""

    def __init__(
        self, verify: ssl.SSLContext | bool, limits: httpx.Limits, deadline: threading.local
    ) -> None:
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(httpcore.SyncBackend(), deadline),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.SyncByteStream):
            raise TypeError("a synchronous request body is required")
        url = request.url
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            answer = self._pool.handle_request(core)
        if not isinstance(answer.stream, Iterable):
            raise TypeError("httpcore answered an asynchronous body")
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=_CoreStream(answer.stream),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        self._pool.close()


class _CoreStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


# httpcore's errors as httpx's, the most specific first (what httpx's own transport does)
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, mapped in _HTTPX_ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise


def _left(deadline: threading.local, timeout: float | None, late: type[Exception]) -> float | None:
    at = getattr(deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise late("the request deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend, deadline: threading.local) -> None:
        self._inner = inner
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        wait = _left(self._deadline, timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, wait, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        wait = _left(self._deadline, timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_unix_socket(path, wait, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: threading.local) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(self._deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wait = _left(self._deadline, timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, wait), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _decoded(response: httpx.Response) -> Iterator[bytes]:
    """The body as it is meant to be read, in pieces: gzip and deflate are inflated here at most
    ``INFLATE_PIECE`` bytes at a time, so a small compressed body that expands a thousandfold
    (a "zip bomb") never sits in memory whole; other encodings go through httpx's decoders."""
    try:
        ready: bytes | None = response.content  # a transport's ready-made answer, in memory
    except httpx.ResponseNotRead:
        ready = None
    if ready is not None:
        yield ready
        return
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        yield from response.iter_raw()
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        yield from response.iter_bytes()
        return
    inflater = None
    try:
        for data in response.iter_raw():
            if inflater is None:
                inflater = zlib.decompressobj(_window_bits(encoding, data))
            while data:
                piece = inflater.decompress(data, INFLATE_PIECE)
                data = inflater.unconsumed_tail
                if piece:
                    yield piece
        rest = inflater.flush() if inflater is not None else b""  # what one step held back
        if rest:
            yield rest
    except zlib.error as exc:
        raise httpx.DecodingError(str(exc)) from None


def _window_bits(encoding: str, head: bytes) -> int:
    """gzip or zlib headers (detected), or raw DEFLATE for a 'deflate' body without the zlib
    header, which servers send too (httpx accepts both)."""
    zlib_header = len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    if encoding == "deflate" and not zlib_header:
        return -zlib.MAX_WBITS
    return 32 + zlib.MAX_WBITS


def _verify(settings: BizagiSettings) -> ssl.SSLContext | bool:
    if settings.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(settings.ca_bundle))
    return settings.verify_tls


def _decode_exact(response: httpx.Response, url: str) -> dict[str, Any]:
    return _decode(response, url, partial(json.loads, parse_float=Decimal))


def _decode(
    response: httpx.Response, url: str, loads: Callable[[bytes], Any] = orjson.loads
) -> dict[str, Any]:
    status = response.status_code
    if status >= 300:
        raise _status_error(response, url)
    if looks_like_html(response):
        raise ResponseError(
            f"GET {redact_url(url)} answered an HTML page (HTTP {status}), not OData JSON: "
            "a login page or proxy in the way, or a wrong base URL",
            method="GET", url=redact_url(url), status=status, kind="html",
        )  # fmt: skip
    try:
        body = loads(response.content)
    except ValueError:  # orjson's and json's decode errors are ValueErrors
        raise ResponseError(
            f"GET {redact_url(url)} answered HTTP {status} with a body that is not complete "
            f"JSON ({len(response.content)} B): {body_excerpt(response, 80)!r}",
            method="GET", url=redact_url(url), status=status, retriable=True, kind="garbled",
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
    return shorten(mask(" ".join(text.split())), 500)


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
    return TransportError(
        f"{method} {shown}: {what} ({scrub(str(exc))})", method=method, url=shown, kind=kind
    )


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
