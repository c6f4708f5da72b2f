"""``bizagi-etl check``: can we reach the project, as whom, and what answers?"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from bizagi_etl.connector.client import BizagiClient
from bizagi_etl.connector.errors import (
    AuthError,
    BizagiError,
    ClientError,
    HTTPStatusError,
    PagingError,
    ResponseError,
    SettingsError,
    TransportError,
)
from bizagi_etl.connector.settings import BizagiSettings

# What a connector reads, probed with $top=1.
PROBES = (
    "odata/data/processes",
    "odata/data/cases",
    "odata/data/casesWithWorkitems",
    "odata/data/stakeholders",
    "odata/data/entities",
    "odata/metadata/processes",
)


@dataclass(slots=True)
class CheckReport:
    base_url: str
    user: str  # userName (fullName, domain)
    token_lifetime: float | None  # seconds; None = never expires
    round_trip_ms: float  # userProfile, token already in hand
    resources: dict[str, str] = field(default_factory=dict)  # path -> "ok" or the failure

    @property
    def all_ok(self) -> bool:
        return all(v == "ok" for v in self.resources.values())


def run_check(settings: BizagiSettings) -> CheckReport:
    """Token, service root, userProfile, then each probe. Raises ``BizagiError`` on failure."""
    quick = dataclasses.replace(settings, max_retries=1, retry_budget=15.0)
    with BizagiClient(quick) as client:
        client.get_json(client.url("odata/data"))
        began = time.perf_counter()
        profile = client.get_json(client.url("odata/data/userProfile"))
        round_trip = (time.perf_counter() - began) * 1000
        token = client.auth.token
        report = CheckReport(
            base_url=settings.base_url,
            user=f"{profile.get('userName')} ({profile.get('fullName')}, {profile.get('domain')})",
            token_lifetime=token.lifetime if token else None,
            round_trip_ms=round_trip,
        )
        for path in PROBES:
            try:
                client.get_json(client.url(path, {"$top": 1}))
                report.resources[path] = "ok"
            except HTTPStatusError as exc:
                report.resources[path] = f"HTTP {exc.status}"
            except BizagiError as exc:
                report.resources[path] = type(exc).__name__
    return report


def diagnose(error: BaseException, settings: BizagiSettings | None = None) -> str:
    """One line that says what is wrong and what to look at."""
    base = settings.base_url if settings else "the base URL"
    if isinstance(error, SettingsError):
        return f"settings: {error}"
    if isinstance(error, TransportError):
        return _transport(error)
    if isinstance(error, ResponseError):
        return (
            f"wrong base URL or a login page: {error.url} answered HTML or non-JSON "
            f"(HTTP {error.status}); check BIZAGI_BASE_URL ({base})"
        )
    if isinstance(error, AuthError):
        return _auth(error)
    if isinstance(error, ClientError) and error.status in (404, 405, 301, 302, 303, 307, 308):
        return (
            f"wrong base URL: {error.method} {error.url} answered HTTP {error.status}; "
            f"check BIZAGI_BASE_URL ({base}) and BIZAGI_TOKEN_URL"
        )
    if isinstance(error, HTTPStatusError):
        return f"server error: {error}"
    if isinstance(error, PagingError | BizagiError):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


def _transport(error: TransportError) -> str:
    return {
        "dns": f"DNS: the host of {error.url} does not resolve; check BIZAGI_BASE_URL",
        "tls": f"TLS: the handshake with {error.url} failed (certificate or protocol); check "
        "https vs http, BIZAGI_CA_BUNDLE or BIZAGI_VERIFY_TLS",
        "refused": f"connection refused: nothing listens at {error.url}; check host and port",
        "timeout": f"timeout: {error.url} did not answer in time; check the network or "
        "BIZAGI_CONNECT_TIMEOUT/BIZAGI_READ_TIMEOUT",
    }.get(error.kind, f"network: {error}")


def _auth(error: AuthError) -> str:
    text = f"{error} {error.body}"
    if "invalid_scope" in text:
        return (
            "missing scope: the OAuth2 application may not request the scope in BIZAGI_SCOPE; "
            "tick API in Bizagi's OAuth2 applications"
        )
    if "invalid_client" in text or (error.status == 401 and "token" in error.url):
        return "bad credentials: the token endpoint refused BIZAGI_CLIENT_ID/BIZAGI_CLIENT_SECRET"
    if "unsupported_grant_type" in text:
        return "the OAuth2 application does not allow client credentials; enable that grant type"
    return f"authorisation refused: {error}"
