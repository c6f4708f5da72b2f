"""What may be shown of a request or response: URLs without credentials, short masked bodies."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

SENSITIVE_PARAMS = {"access_token", "client_secret", "code", "password", "secret", "token"}
# Long runs of token-like characters: Bizagi tokens are 40 or 64 hex digits.
_TOKENISH = re.compile(r"[A-Za-z0-9_\-+/=.]{32,}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
EXCERPT = 200


def redact_url(url: str) -> str:
    """The URL without user info and with sensitive query parameters masked."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = parts.query
    if query and any(k.lower() in SENSITIVE_PARAMS for k, _ in parse_qsl(query)):
        query = urlencode(
            [(k, "***" if k.lower() in SENSITIVE_PARAMS else v) for k, v in parse_qsl(query)]
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def mask(text: str) -> str:
    """Shorten token-like runs; GUIDs (keys of Bizagi's resources) stay readable."""
    return _TOKENISH.sub(
        lambda m: m.group(0) if _GUID.fullmatch(m.group(0)) else m.group(0)[:4] + "…", text
    )


def body_excerpt(response: httpx.Response, limit: int = EXCERPT) -> str:
    """The start of a body, decoded leniently, with anything token-like masked."""
    try:
        text = response.content[: limit * 4].decode("utf-8", "replace")
    except httpx.ResponseNotRead:
        return ""
    text = mask(" ".join(text.split()))
    return text if len(text) <= limit else text[:limit] + "…"


def looks_like_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").lower()
    if "html" in content_type:
        return True
    try:
        head = response.content[:200].lstrip().lower()
    except httpx.ResponseNotRead:
        return False
    return head.startswith((b"<!doctype html", b"<html"))
