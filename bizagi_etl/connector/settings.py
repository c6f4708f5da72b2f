"""How to reach one Bizagi project: one validated object, from keywords or the environment."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bizagi_etl.connector.errors import SettingsError

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "bearer_token")


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


# setting name -> environment variable; the order is the order `from_env` reports problems in.
ENV_VARS = {
    "base_url": "BIZAGI_BASE_URL",
    "client_id": "BIZAGI_CLIENT_ID",
    "client_secret": "BIZAGI_CLIENT_SECRET",
    "token_url": "BIZAGI_TOKEN_URL",
    "scope": "BIZAGI_SCOPE",
    "auth_method": "BIZAGI_AUTH_METHOD",
    "page_size": "BIZAGI_PAGE_SIZE",
    "max_pages": "BIZAGI_MAX_PAGES",
    "connect_timeout": "BIZAGI_CONNECT_TIMEOUT",
    "read_timeout": "BIZAGI_READ_TIMEOUT",
    "max_retries": "BIZAGI_MAX_RETRIES",
    "retry_budget": "BIZAGI_RETRY_BUDGET",
    "request_deadline": "BIZAGI_REQUEST_DEADLINE",
    "max_response_bytes": "BIZAGI_MAX_RESPONSE_BYTES",
    "max_backoff": "BIZAGI_MAX_BACKOFF",
    "verify_tls": "BIZAGI_VERIFY_TLS",
    "ca_bundle": "BIZAGI_CA_BUNDLE",
    "allow_http": "BIZAGI_ALLOW_HTTP",
    "max_concurrency": "BIZAGI_MAX_CONCURRENCY",
    "filter_encoding": "BIZAGI_FILTER_ENCODING",
}
FILTER_ENCODINGS = ("bizagi", "standard")
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MIN_RESPONSE_BYTES = 64 * 1024  # a token answer or an error page must fit


@dataclass(frozen=True, slots=True)
class BizagiSettings:
    """Everything the connector needs to talk to a Bizagi project.

    Invalid values fail here, naming the setting. ``client_secret`` is a ``Secret`` and never
    appears in ``repr``; the client removes it from every message it forms (a secret shorter
    than 4 characters only where it stands as a credential: see ``redact``).
    """

    base_url: str  # the project URL, e.g. https://dev-acme-corp.bizagi.com
    client_id: str
    client_secret: Secret = field(repr=False)
    token_url: str = ""  # default: {base_url}/oauth2/server/token
    scope: str = "api"
    auth_method: str = "client_secret_basic"  # or client_secret_post, or bearer_token
    # $top of each page: None = automatic (AUTO_PAGE_SIZE, halved while pages answer slowly),
    # 0 = send no $top and let the server page (follow its next links)
    page_size: int | None = None
    max_pages: int = 100_000  # ceiling of pages for one query: no query runs forever
    connect_timeout: float = 10.0  # seconds
    read_timeout: float = 60.0  # seconds
    max_retries: int = 8  # attempts after the first, per request
    # seconds one request may take in all, attempts and waits included: a hard ceiling
    retry_budget: float = 300.0
    # seconds one attempt may take, connect + headers + body together, however the server
    # trickles: twice the read timeout, so an answer that starts at the last moment still has a
    # minute to arrive (a 1,000-case page is 0.5-2 MB)
    request_deadline: float = 120.0
    # bytes one answer may have (decoded); more is refused, never buffered: 64 MiB is ~40 times
    # a page of 1,000 cases with parameters and work items, and bounds memory per request
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_backoff: float = 30.0  # longest single wait between attempts, seconds
    verify_tls: bool = True
    ca_bundle: Path | None = None  # PEM file of CAs to trust instead of the system's
    allow_http: bool = False  # plain http:// to a non-loopback host
    max_concurrency: int = 4  # parallel requests one extraction may have in flight
    # "bizagi": $filter encoded for Bizagi's double decoding ("+" sent as %252B);
    # "standard": encoded once, as OData servers that decode once expect (%20, never "+")
    filter_encoding: str = "bizagi"

    def __post_init__(self) -> None:
        if isinstance(self.client_secret, str):
            object.__setattr__(self, "client_secret", Secret(self.client_secret))
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not self.token_url:
            object.__setattr__(self, "token_url", f"{self.base_url}/oauth2/server/token")
        self._validate()

    def _validate(self) -> None:
        for name in ("base_url", "token_url"):
            _check_url(name, getattr(self, name), self.allow_http)
        _require(bool(self.client_id.strip()), "client_id", "a non-empty client id", "empty")
        _require(bool(self.client_secret), "client_secret", "a non-empty secret", "empty")
        _require(self.auth_method in AUTH_METHODS, "auth_method", " or ".join(AUTH_METHODS),
                 self.auth_method)  # fmt: skip
        _require(bool(self.scope.strip()), "scope", "a scope such as 'api'", "empty")
        size_ok = self.page_size is None or 0 <= self.page_size <= 100_000
        _require(size_ok, "page_size", "0 (the server pages) to 100000, or unset (automatic)",
                 self.page_size)  # fmt: skip
        _require(self.filter_encoding in FILTER_ENCODINGS, "filter_encoding",
                 " or ".join(FILTER_ENCODINGS), self.filter_encoding)  # fmt: skip
        _require(self.max_pages >= 1, "max_pages", "at least 1", self.max_pages)
        _require(self.connect_timeout > 0, "connect_timeout", "seconds > 0", self.connect_timeout)
        _require(self.read_timeout > 0, "read_timeout", "seconds > 0", self.read_timeout)
        _require(self.max_retries >= 0, "max_retries", "0 or more", self.max_retries)
        _require(self.retry_budget > 0, "retry_budget", "seconds > 0", self.retry_budget)
        _require(self.request_deadline > 0, "request_deadline", "seconds > 0",
                 self.request_deadline)  # fmt: skip
        _require(self.max_response_bytes >= MIN_RESPONSE_BYTES, "max_response_bytes",
                 f"at least {MIN_RESPONSE_BYTES} bytes (64 KiB)",
                 self.max_response_bytes)  # fmt: skip
        _require(self.max_backoff > 0, "max_backoff", "seconds > 0", self.max_backoff)
        _require(1 <= self.max_concurrency <= 64, "max_concurrency", "1 to 64",
                 self.max_concurrency)  # fmt: skip
        if self.ca_bundle is not None:
            _require(Path(self.ca_bundle).is_file(), "ca_bundle", "an existing PEM file",
                     str(self.ca_bundle))  # fmt: skip

    @property
    def origin(self) -> tuple[str, str, int]:
        return origin_of(self.base_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> BizagiSettings:
        """Settings from ``BIZAGI_*`` variables; keyword overrides win."""
        values = {**env_values(cls, ENV_VARS, environ), **overrides}
        for name in ("base_url", "client_id", "client_secret"):
            if not values.get(name):
                raise SettingsError(f"setting {name!r} is missing: set {ENV_VARS[name]}")
        return cls(**values)


def env_values(
    cls: type, env_vars: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The values of a settings dataclass's variables that are set, parsed by field type.

    One parser for every program (the CLI, scripts, the Dagster code location), so a setting
    means the same everywhere and a bad value names its variable:
    ``setting 'page_size' (BIZAGI_PAGE_SIZE): expected a whole number, got 'abc'``.
    """
    env = os.environ if environ is None else environ
    types = {f.name: str(f.type) for f in fields(cls)}
    return {
        name: _parse(name, var, types[name], env[var])
        for name, var in env_vars.items()
        if env.get(var, "") != ""
    }


def _parse(name: str, var: str, type_name: str, raw: str) -> Any:
    text = raw.strip()
    base = type_name.split(" | ")[0].removeprefix("dt.")  # "int | None" reads as an int
    try:
        if base == "int":
            return int(text)
        if base == "float":
            return float(text)
        if base == "bool":
            return _boolean(text)
        if base == "date":
            return _date(text)
        if base == "Path":
            return Path(text)
    except ValueError:
        kind = _EXPECTED[base]
        raise SettingsError(f"setting {name!r} ({var}): expected {kind}, got {text!r}") from None
    return Secret(raw) if "Secret" in type_name else text


_EXPECTED = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "date": "a date YYYY-MM-DD",
}


def _date(text: str) -> dt.date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(text)
    return dt.date.fromisoformat(text)  # an impossible day (2024-02-30) is a ValueError too


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _require(ok: bool, name: str, expected: str, got: object) -> None:
    if not ok:
        raise SettingsError(f"setting {name!r}: expected {expected}, got {got!r}")


def origin_of(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(name: str, url: str, allow_http: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"setting {name!r}: expected an http(s) URL, got {_shown(url)!r}")
    if parts.username or parts.password:
        raise SettingsError(f"setting {name!r}: credentials do not belong in the URL")
    if parts.query or parts.fragment:
        raise SettingsError(f"setting {name!r}: expected no query or fragment, got {_shown(url)!r}")
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        raise SettingsError(
            f"setting {name!r}: plain http:// to {parts.hostname} would send the secret "
            "unencrypted; use https:// or set allow_http (BIZAGI_ALLOW_HTTP=true)"
        )


def _shown(url: str) -> str:
    parts = urlsplit(url)
    return url if not parts.password else url.replace(parts.password, "***")
