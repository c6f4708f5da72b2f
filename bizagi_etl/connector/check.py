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

# What the Bizagi streams read, probed with $top=1 where the service lists them.
PROBES = (
    "odata/data/processes",
    "odata/data/cases",
    "odata/data/casesWithWorkitems",
    "odata/data/stakeholders",
    "odata/data/entities",
    "odata/metadata/processes",
)
SERVICE = "odata/data"  # the service whose document decides, with the token, pass or fail
NO_PROFILE = "no userProfile: not a Bizagi project, or the user has no profile"


@dataclass(slots=True)
class CheckReport:
    base_url: str
    user: str | None  # userName (fullName, domain); None: the service has no userProfile
    token_lifetime: float | None  # seconds; None = never expires
    round_trip_ms: float  # the service document, token already in hand
    entity_sets: list[str] = field(default_factory=list)  # what the service document lists
    resources: dict[str, str] = field(default_factory=dict)  # path -> "ok" or the failure
    notes: list[str] = field(default_factory=list)  # what is missing but not wrong

    @property
    def all_ok(self) -> bool:
        return all(v == "ok" for v in self.resources.values())


def run_check(settings: BizagiSettings) -> CheckReport:
    """Token and service document (these decide: a failure raises ``BizagiError``), then who
    we run as and each Bizagi resource the service offers. Works on any OData v4 service."""
    quick = dataclasses.replace(settings, max_retries=1, retry_budget=15.0)
    with BizagiClient(quick) as client:
        client.get_json(client.url(SERVICE))  # the token, and a first connection
        began = time.perf_counter()
        document = client.get_json(client.url(SERVICE))
        token = client.auth.token
        report = CheckReport(
            base_url=settings.base_url,
            user=None,
            token_lifetime=token.lifetime if token else None,
            round_trip_ms=(time.perf_counter() - began) * 1000,
            entity_sets=_entity_sets(document),
        )
        report.user = _user(client, report)
        offered = {SERVICE: set(report.entity_sets)}
        for path in PROBES:
            root, name = path.rsplit("/", 1)
            if root not in offered:
                offered[root] = _offered(client, root, report)
            if name in offered[root]:
                report.resources[path] = _probe(client, path)
            elif root == SERVICE or offered[root]:
                report.notes.append(f"{path}: not offered by this service")
    return report


def _entity_sets(document: dict[str, object]) -> list[str]:
    """Names in a service document: entity sets and singletons (Bizagi lists bare names)."""
    value = document.get("value")
    items = value if isinstance(value, list) else []
    return [str(i["name"]) for i in items if isinstance(i, dict) and i.get("name")
            and i.get("kind", "EntitySet") in ("EntitySet", "Singleton")]  # fmt: skip


def _user(client: BizagiClient, report: CheckReport) -> str | None:
    try:
        profile = client.get_json(client.url(f"{SERVICE}/userProfile"))
    except (ClientError, AuthError):
        report.notes.append(NO_PROFILE)
        return None
    return f"{profile.get('userName')} ({profile.get('fullName')}, {profile.get('domain')})"


def _offered(client: BizagiClient, root: str, report: CheckReport) -> set[str]:
    """What another service root (Bizagi's metadata service) lists; empty when it has none."""
    try:
        return set(_entity_sets(client.get_json(client.url(root))))
    except (ClientError, ResponseError):
        report.notes.append(f"{root}: no such service here (not a Bizagi project?)")
        return set()


def _probe(client: BizagiClient, path: str) -> str:
    try:
        client.get_json(client.url(path, {"$top": 1}))
    except HTTPStatusError as exc:
        return f"HTTP {exc.status}"
    except BizagiError as exc:
        return type(exc).__name__
    return "ok"


def diagnose(error: BaseException, settings: BizagiSettings | None = None) -> str:
    """One line that says what is wrong and what to look at."""
    base = settings.base_url if settings else "the base URL"
    if isinstance(error, SettingsError):
        return f"settings: {error}"
    if isinstance(error, TransportError):
        return _transport(error)
    if isinstance(error, ResponseError) and error.kind == "html":
        return (
            f"wrong base URL or a login page: {error.url} answered HTML, not OData JSON "
            f"(HTTP {error.status}); check BIZAGI_BASE_URL ({base})"
        )
    if isinstance(error, ResponseError):  # too large, cut or not JSON: the message says which
        return str(error)
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
    if error.kind == "timeout" and "BIZAGI_" in str(error):
        return str(error)  # it names the setting that ran out
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
