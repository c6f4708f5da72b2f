"""Every error the connector raises, grouped by what the caller should do.

    BizagiError
    ├── SettingsError          a setting is missing or invalid: fix the configuration
    ├── TransportError         no usable answer (DNS, TLS, refused, timeouts) after retries
    ├── HTTPStatusError        the server answered with an error status
    │   ├── AuthError          401/403 or a refused token request: fix credentials or scope
    │   ├── ClientError        other 4xx (and unexpected 3xx): fix the request
    │   └── ServerError        5xx, or 429 that outlived the retry budget
    ├── ResponseError          the answer is not the JSON it should be (HTML, truncated), or
    │                          is larger than max_response_bytes
    ├── PagingError            next links that loop or leave the origin, repeated pages, ceilings
    ├── SchemaError            data that does not fit its declaration
    ├── StorageError           the lake or the warehouse cannot be written (disk full, not a
    │   │                      folder, permissions): what had landed is intact
    │   └── LockError          another run holds the lake table or the warehouse: wait, retry
    └── WarehouseError         the warehouse could not take a load (memory, disk): nothing landed

Messages say what happened, where (method and URL, secrets removed), the status and a short
piece of the body, so a log line alone is enough to act on. Retriable conditions are retried
inside the client; what reaches the caller is final.
"""

from __future__ import annotations


class BizagiError(Exception):
    """Base of every error bizagi-etl raises."""


class SettingsError(BizagiError, ValueError):
    """A setting is missing or invalid; the message names it."""


class TransportError(BizagiError):
    """The request got no usable answer: DNS, TLS, refused connection, timeout, dropped body."""

    def __init__(self, message: str, *, method: str, url: str, kind: str) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.kind = kind  # dns, tls, refused, timeout, dropped, network


class HTTPStatusError(BizagiError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status: int,
        body: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.status = status
        self.body = body  # a short, masked piece of the body
        self.retry_after = retry_after  # seconds the server asked us to wait, if it did


class AuthError(HTTPStatusError):
    """Credentials, token or scope refused."""


class ClientError(HTTPStatusError):
    """The request is wrong (4xx other than auth), or was redirected."""


class ServerError(HTTPStatusError):
    """The server failed (5xx), or kept throttling beyond the retry budget."""


class ResponseError(BizagiError):
    """The body is not the JSON expected (an HTML page, a truncated or non-JSON body), or is
    larger than ``max_response_bytes``; ``kind`` says which."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status: int,
        retriable: bool = False,
        kind: str = "invalid",
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.status = status
        self.retriable = retriable  # a cut or garbled body may come whole next time; HTML won't
        # html (a login page, a proxy), garbled (cut or not JSON), invalid (JSON of the wrong
        # shape), too_large (beyond max_response_bytes: raise it or ask for smaller pages)
        self.kind = kind


class PagingError(BizagiError):
    """Paging cannot go on safely: a loop, a foreign next link, a repeated page, a ceiling."""


class SchemaError(BizagiError):
    """A response or a record does not have the shape it must have."""


class StorageError(BizagiError):
    """The lake or the warehouse cannot be written or read (disk full, a file where a folder
    should be, permissions, not a DuckDB file). What had landed before is intact."""


class LockError(StorageError):
    """Another run holds what this run must write (a lake table, the warehouse file) beyond the
    lock timeout; the message names the holder."""


class WarehouseError(BizagiError):
    """DuckDB refused a load for want of resources; the transaction was rolled back."""


def excerpt(value: object, limit: int = 80) -> str:
    """A value as an error message may echo it: its repr, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 15]}... ({len(text):,} chars)"
