"""What may be shown of a request or response: URLs without credentials, short masked bodies, and
never a secret the client knows.

Two layers keep credentials out of messages, logs and exceptions:

* ``Redactor``: every ``BizagiAuth`` owns one and tells it the values it must never show: the
  client secret, its HTTP Basic form (``base64(client_id:secret)``) and every access token the
  client has held. They are removed wherever they occur, whatever their length (from
  ``MIN_SECRET_CHARS``), in their plain, URL-encoded, JSON-escaped, HTML-escaped, Python-repr
  and base64 forms, case-insensitively. A value shorter than ``MIN_SECRET_CHARS`` cannot be
  removed from free text without eating ordinary words ("s" is in every sentence), so it is
  removed only where it stands as a credential: after ``client_secret=``,
  ``"access_token": "``, ``Bearer `` and the like.
* ``scrub`` applies every live redactor; ``mask``, ``redact_url``, ``body_excerpt`` and the
  ``RedactingFilter`` on the package's (and httpx's) loggers call it, so text formed anywhere
  (paging, metadata, httpcore's debug lines with response headers) is clean even where no
  client is at hand. Each client's errors are also scrubbed as they leave it.

``mask`` is the last line for credentials nobody told us about: runs of 32+ token-like
characters are cut to their first four.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import logging
import re
import threading
import weakref
from collections import deque
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import httpx

SENSITIVE_PARAMS = {"access_token", "client_secret", "code", "password", "secret", "token"}
# Long runs of token-like characters: Bizagi tokens are 40 or 64 hex digits.
_TOKENISH = re.compile(r"[A-Za-z0-9_\-+/=.]{32,}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
EXCERPT = 200
REDACTED = "***"
MIN_SECRET_CHARS = 4  # shorter values are removed only where they stand as credentials
TAIL_CHARS = 3  # the start of a value left at the end of a cut text, from this many characters
TOKEN_MEMORY = 64  # access tokens a redactor remembers: days of hourly tokens
# A short credential in context: the key (kept) and the value (removed).
_CONTEXT = (
    r"(?P<key>(?:client_secret|access_token|refresh_token|secret|password|token)"
    r"[\"']?\s*[:=]\s*[\"']?|(?:bearer|basic)\s+)"
)
_WORDISH = r"(?![\w\-.~%+/=])"


class Redactor:
    """The credentials one client knows, removed from any text shown to anyone.

    Thread-safe: tokens are added while other threads scrub. Every live redactor is also
    consulted by the module-level ``scrub``; it leaves that registry when it is collected.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._fixed: list[str] = []  # the secret and its Basic form
        self._tokens: deque[str] = deque(maxlen=TOKEN_MEMORY)
        # (every form of the long values, short values in context, forms for scrub_tail):
        # replaced whole, so a scrub running while a token is added sees one consistent set
        self._patterns: tuple[re.Pattern[str] | None, re.Pattern[str] | None, tuple[str, ...]]
        self._patterns = (None, None, ())
        for value in values:
            self._fixed.append(value)
        self._compile()
        with _REGISTRY_LOCK:
            _LIVE.add(self)

    def __repr__(self) -> str:
        return f"Redactor({len(self._fixed) + len(self._tokens)} values)"

    def add(self, value: str) -> None:
        """Remove ``value`` (a secret or a token) from everything scrubbed from now on."""
        if not value:
            return
        with self._lock:
            if value in self._fixed or value in self._tokens:
                return
            self._fixed.append(value)
            self._compile_locked()

    def add_token(self, value: str) -> None:
        """An access token the client holds; the last ``TOKEN_MEMORY`` are remembered."""
        if not value:
            return
        with self._lock:
            if value in self._tokens:
                return
            self._tokens.append(value)
            self._compile_locked()

    def scrub(self, text: str) -> str:
        long, short, _ = self._patterns
        if long is not None:
            text = long.sub(REDACTED, text)
        if short is not None:
            text = short.sub(lambda m: m.group("key") + REDACTED, text)
        return text

    def scrub_tail(self, text: str) -> str:
        """Remove what a cut left of a value at the end of ``text`` (3+ characters of it)."""
        lowered = text.lower()
        for variant in self._patterns[2]:
            for k in range(min(len(variant) - 1, len(text)), TAIL_CHARS - 1, -1):
                if lowered.endswith(variant[:k]):
                    return text[:-k] + REDACTED
        return text

    def _compile(self) -> None:
        with self._lock:
            self._compile_locked()

    def _compile_locked(self) -> None:
        values = [*self._fixed, *self._tokens]
        long = {v for value in values for v in _variants(value) if len(v) >= MIN_SECRET_CHARS}
        short = {v for value in values for v in _variants(value) if len(v) < MIN_SECRET_CHARS}
        ordered = sorted(long, key=len, reverse=True)  # the longest form wins an overlap
        long_pattern = (
            re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE) if ordered else None
        )
        short_pattern = (
            re.compile(
                _CONTEXT + "(?:" + "|".join(map(re.escape, sorted(short, key=len, reverse=True)))
                + ")" + _WORDISH,
                re.IGNORECASE,
            )
            if short
            else None
        )  # fmt: skip
        self._patterns = (long_pattern, short_pattern, tuple(v.lower() for v in ordered))


def _variants(value: str) -> set[str]:
    """The forms a value takes on the wire and in bodies that echo it."""
    forms = {
        value,
        quote(value, safe=""),
        quote(value, safe="/"),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value),
        repr(value)[1:-1],
        repr(value.encode())[2:-1],  # as httpcore's debug lines show header bytes
    }
    with contextlib.suppress(UnicodeEncodeError):  # a header value, as servers encode it
        forms.add(repr(value.encode("latin-1"))[2:-1])
    if len(value) >= MIN_SECRET_CHARS:
        encoded = base64.b64encode(value.encode()).decode("ascii")
        forms |= {encoded, encoded.rstrip("="), quote(encoded, safe="")}
    return {f for f in forms if f}


def basic_credentials(client_id: str, secret: str) -> str:
    """The value of an HTTP Basic header's credentials: ``base64(client_id:secret)``."""
    return base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")


_LIVE: weakref.WeakSet[Redactor] = weakref.WeakSet()
_REGISTRY_LOCK = threading.Lock()


def _live() -> list[Redactor]:
    with _REGISTRY_LOCK:
        return list(_LIVE)


def scrub(text: str) -> str:
    """``text`` without any credential a live client knows."""
    for redactor in _live():
        text = redactor.scrub(text)
    return text


def shorten(text: str, limit: int) -> str:
    """Scrubbed, then cut to ``limit`` characters, leaving no start of a credential at the end
    (where a cut, here or earlier, may have split one)."""
    text = scrub(text)
    cut = len(text) > limit
    if cut:
        text = text[:limit]
    for redactor in _live():
        text = redactor.scrub_tail(text)
    return text + "…" if cut else text


def scrub_error(error: BaseException) -> BaseException:
    """Scrub an exception in place (its arguments, and ``body``, ``url`` and notes when it has
    them), and those it was raised from; returns it for ``raise``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(scrub(a) if isinstance(a, str) else a for a in current.args)
        for name in ("body", "url"):
            value = getattr(current, name, None)
            if isinstance(value, str):
                setattr(current, name, scrub(value))
        notes = getattr(current, "__notes__", None)
        if isinstance(notes, list):
            notes[:] = [scrub(n) if isinstance(n, str) else n for n in notes]
        current = current.__cause__ or current.__context__
    return error


class RedactingFilter(logging.Filter):
    """Scrubs each record's message: a safety net for text formed without ``scrub``.

    A filter on a logger sees only the records created by that very logger (not those of its
    children), so it is attached to each logger by name: see ``install_log_filter``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging module's to report
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()
# Loggers that may carry server text: ours, and httpx/httpcore's (httpcore.http11 logs response
# headers at DEBUG).
LOGGERS = (
    "bizagi_etl",
    "bizagi_etl.connector.auth",
    "bizagi_etl.connector.client",
    "bizagi_etl.connector.check",
    "bizagi_etl.connector.metadata",
    "bizagi_etl.connector.paging",
    "bizagi_etl.pipeline.extract",
    "bizagi_etl.pipeline.lake",
    "bizagi_etl.pipeline.runner",
    "bizagi_etl.pipeline.warehouse",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


def install_log_filter() -> None:
    """Attach the redacting filter to every logger in ``LOGGERS`` and to any ``bizagi_etl.*``
    logger that exists by now (idempotent)."""
    names = set(LOGGERS) | {
        n for n in list(logging.root.manager.loggerDict) if n.startswith("bizagi_etl.")
    }
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def redact_url(url: str) -> str:
    """The URL without user info, with sensitive query parameters masked and no known
    credential anywhere in it."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = parts.query
    if query and any(k.lower() in SENSITIVE_PARAMS for k, _ in parse_qsl(query)):
        query = urlencode(
            [(k, "***" if k.lower() in SENSITIVE_PARAMS else v) for k, v in parse_qsl(query)]
        )
    return scrub(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


def mask(text: str) -> str:
    """Without known credentials; token-like runs shortened; GUIDs (keys of Bizagi's
    resources) stay readable."""
    return _TOKENISH.sub(
        lambda m: m.group(0) if _GUID.fullmatch(m.group(0)) else m.group(0)[:4] + "…", scrub(text)
    )


def body_excerpt(response: httpx.Response, limit: int = EXCERPT) -> str:
    """The start of a body, decoded leniently, with credentials removed and anything token-like
    masked."""
    try:
        text = response.content[: limit * 4].decode("utf-8", "replace")
    except httpx.ResponseNotRead:
        return ""
    return shorten(mask(" ".join(text.split())), limit)


def looks_like_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").lower()
    if "html" in content_type:
        return True
    try:
        head = response.content[:200].lstrip().lower()
    except httpx.ResponseNotRead:
        return False
    return head.startswith((b"<!doctype html", b"<html"))
