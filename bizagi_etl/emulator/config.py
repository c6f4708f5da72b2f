"""Settings of one emulated Bizagi project: its data and its bad-day switches."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

Flavor = Literal["bizagi", "standard"]
FLAVORS: tuple[Flavor, ...] = ("bizagi", "standard")

DEFAULT_CLIENT_ID = "bizagi-etl-demo"
DEFAULT_CLIENT_SECRET = "emulator-secret-change-me"  # noqa: S105 - the emulator's public demo secret


MAX_DAYS_PAST_END = 5 * 366  # the clock may run this far past ``end``: new cases cost memory


def _today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def midnight(day: dt.date) -> dt.datetime:
    """The first instant of a UTC day."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def as_instant(value: dt.datetime | dt.date) -> dt.datetime:
    """An aware UTC instant: a date is its midnight UTC, a naive date-time is read as UTC."""
    if not isinstance(value, dt.datetime):
        return midnight(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def parse_instant(text: str) -> dt.datetime:
    """``2026-11-01``, ``2026-11-01T09:30:00Z`` or ``2026-11-01T04:30:00-05:00`` as a UTC instant.

    Raises ``ValueError`` on anything else.
    """
    text = text.strip()
    if len(text) == 10:
        return midnight(dt.date.fromisoformat(text))
    return as_instant(dt.datetime.fromisoformat(text))


class EmulatorConfigError(ValueError):
    """A setting of the emulator is out of range; the message names it."""


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Everything that shapes what the emulator serves.

    Data is a pure function of ``seed``, ``cases``, ``claims``, ``start``, ``end``, ``drift_date``
    and the clock; every fault decision is a pure function of ``seed`` and the request, so two
    runs with the same settings serve the same bytes and fail in the same places.

    The clock: the world is served as it stands at one instant, ``now`` (UTC; a date means its
    midnight; a naive date-time is read as UTC). Left unset, it is the wall clock when the world
    is built, but never past the end of the history: with ``end`` in the past (as in tests) or
    today (the default), the world is the one at midnight UTC of ``end``, where exactly ``cases``
    cases exist. See ``clock()``. An in-process server can move it forward
    (``EmulatorServer.set_now``/``advance``).

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
    now: dt.datetime | None = None  # the clock; None: the wall clock, capped at end (see clock())

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
        if self.now is not None:
            ok = isinstance(self.now, dt.date)
            _require(ok, "now", "a date-time or a date (UTC)", self.now)
            object.__setattr__(self, "now", as_instant(self.now))
            self.check_now(self.now)

    def check_now(self, instant: dt.datetime) -> None:
        """Raise ``EmulatorConfigError`` unless the clock may show ``instant``."""
        first, last = midnight(self.start), self.latest_now()
        _require(
            first <= instant <= last,
            "now",
            f"an instant from {first:%Y-%m-%dT%H:%M:%SZ} (start) to {last:%Y-%m-%dT%H:%M:%SZ} "
            f"({MAX_DAYS_PAST_END} days after end)",
            instant.isoformat(),
        )

    def latest_now(self) -> dt.datetime:
        """The furthest the clock may go: the cases arriving after ``end`` cost memory."""
        return midnight(self.end) + dt.timedelta(days=MAX_DAYS_PAST_END)

    def clock(self) -> dt.datetime:
        """The instant a world built from these settings is served at.

        ``now`` when set. Unset: the wall clock, read once (the caller keeps the answer, so a
        server's world never drifts while it runs), capped at midnight UTC of ``end``: a history
        that ends today or earlier is shown as it stands at its end, whatever day it is run, so
        ``cases`` cases exist. A history whose ``start`` is still ahead is shown at its end too.
        """
        if self.now is not None:
            return self.now
        wall = dt.datetime.now(dt.UTC).replace(microsecond=0)
        end = midnight(self.end)
        return wall if midnight(self.start) <= wall < end else end


def _require(ok: bool, name: str, expected: str, got: object) -> None:
    if not ok:
        raise EmulatorConfigError(f"emulator setting {name!r}: expected {expected}, got {got!r}")
