"""Settings of one emulated Bizagi project: its data and its bad-day switches."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

Flavor = Literal["bizagi", "standard"]
FLAVORS: tuple[Flavor, ...] = ("bizagi", "standard")

DEFAULT_CLIENT_ID = "bizagi-etl-demo"
DEFAULT_CLIENT_SECRET = "emulator-secret-change-me"  # noqa: S105 - the emulator's public demo secret


def _today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class EmulatorConfigError(ValueError):
    """A setting of the emulator is out of range; the message names it."""


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Everything that shapes what the emulator serves.

    Data is a pure function of ``seed``, ``cases``, ``claims``, ``start``, ``end`` and
    ``drift_date``; every fault decision is a pure function of ``seed`` and the request, so two
    runs with the same settings serve the same bytes and fail in the same places.

    ``flavor`` picks the server's face: ``"bizagi"`` answers as Bizagi does (flat errors, absolute
    ``$skip`` next links, ``@odata.totalCount``, opaque hex tokens); ``"standard"`` as a generic
    OData v4 service (nested errors, relative ``$skiptoken`` next links, ``@odata.count`` on
    request, JWT bearer tokens). The data is the same in both.
    """

    seed: int = 42  # drives every generated value and every fault decision
    cases: int = 20_000  # cases in the history
    claims: int = 5_000  # rows of the Claims business entity set
    start: dt.date = dt.date(2024, 1, 1)  # first day of the history (UTC)
    end: dt.date = field(default_factory=_today_utc)  # history runs up to, not including, this day
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = field(default=DEFAULT_CLIENT_SECRET, repr=False)
    scopes: tuple[str, ...] = ("api",)  # scopes the OAuth2 application may ask for
    token_ttl: int = 3600  # seconds a token lives; 0 means it never expires
    page_cap: int = 1000  # most rows one page holds, whatever $top asks for
    latency_ms: float = 0.0  # added to every OData answer, with +-25 % jitter
    fault_rate: float = 0.0  # share of OData requests answered 429 or 503 with Retry-After
    retry_after: int = 1  # seconds announced in Retry-After on those answers
    drop_rate: float = 0.0  # share of OData answers whose connection closes mid-body
    truncate_rate: float = 0.0  # share of OData answers whose JSON body is cut short
    mutate_rate: float = 0.0  # share of OData requests that first create a new case
    drift_date: dt.date | None = None  # cases created on or after it carry new fields
    repeat_next_link: bool = False  # a broken server: every page points to the same next link
    lenient_options: bool = False  # ignore $select/$orderby/$search instead of answering 400
    token_errors_as_200: bool = False  # token errors come with HTTP 200, as some gateways do
    accept_form_credentials: bool = False  # also take client_id/client_secret in the form body
    next_link_origin: str | None = None  # serve next links on another origin (a bad proxy)
    flavor: Flavor = "bizagi"  # "bizagi" or "standard" (a generic OData v4 server)

    def __post_init__(self) -> None:
        _require(self.cases >= 0, "cases", "a count >= 0", self.cases)
        _require(self.claims >= 0, "claims", "a count >= 0", self.claims)
        _require(self.flavor in FLAVORS, "flavor", " or ".join(map(repr, FLAVORS)), self.flavor)
        _require(self.start < self.end, "start", f"a day before end ({self.end})", self.start)
        _require(
            self.token_ttl >= 0, "token_ttl", "seconds >= 0 (0 = never expires)", self.token_ttl
        )
        _require(self.page_cap >= 1, "page_cap", "a row count >= 1", self.page_cap)
        _require(self.latency_ms >= 0, "latency_ms", "milliseconds >= 0", self.latency_ms)
        _require(self.retry_after >= 0, "retry_after", "seconds >= 0", self.retry_after)
        for name in ("fault_rate", "drop_rate", "truncate_rate", "mutate_rate"):
            value = getattr(self, name)
            _require(0.0 <= value <= 1.0, name, "a share between 0 and 1", value)
        _require(bool(self.client_id), "client_id", "a non-empty string", self.client_id)
        _require(bool(self.client_secret), "client_secret", "a non-empty string", "<empty>")
        _require(bool(self.scopes), "scopes", "at least one scope", self.scopes)


def _require(ok: bool, name: str, expected: str, got: object) -> None:
    if not ok:
        raise EmulatorConfigError(f"emulator setting {name!r}: expected {expected}, got {got!r}")
