"""The emulator's clock: when each case is created, closes, is deleted, and what happens between.

Every instant is a pure function of the seed and the case's coordinates, drawn with ``hashrng``
and held as numpy columns, so the world at an instant T is a set of masks over those columns:

- a case exists from ``created`` (inclusive) until ``deleted_at`` (exclusive; ``NEVER`` for the
  98.5 % that are never deleted or aborted);
- it is open until ``closes_at`` (``NEVER`` for the 3 % that are forgotten and never close);
- its n workitems (1-6) appear and complete along its life: workitem j appears at
  ``created + d*j/(2n)`` and completes at ``created + d/2 + d*(j+1)/(2n)`` (d: the time the case
  takes), the last one when the case closes; an open case always has one pending, a closed one
  none;
- the completion of one of them fills the process's ``decided`` parameters (null before), and
  for 35 % of cases a later completion changes the ``revised`` parameters once more.

Only ``created``, ``closes_at`` and ``deleted_at`` are stored per case; the rest is drawn for
the rows a request needs (``CasePlan``).

New cases keep arriving after the history's ``end``: day k after it receives a Poisson number of
cases whose mean is the history's average daily rate, weighted as the history is (a weekend day
a quarter of a weekday), at office hours in the case's time zone. Days are generated as the
clock reaches them, whole, so any instant can be served and the same day always holds the same
cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bizagi_etl.emulator import hashrng

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
DAY = 86_400
HOUR = 3_600
NEVER = np.iinfo(np.int64).max  # an instant that never comes
STALE_SHARE = 0.03  # cases that are forgotten: never closed
DELETE_SHARE = 0.015  # cases deleted or aborted, soon after they were created
DELETE_MEAN_DAYS = 5.0  # mean time from creation to deletion (plus ten minutes)
REVISE_SHARE = 0.35  # cases whose revised parameters change once more after the decision
WEEKEND_WEIGHT = 0.25  # a Saturday or Sunday receives a quarter of a weekday's cases
OFFICE_SHARE = 0.85  # cases created between 08:00 and 18:00 local time


def is_weekend(epoch_days: npt.ArrayLike) -> Bools:
    """Saturdays and Sundays (1970-01-01, day 0, was a Thursday)."""
    return np.asarray((np.asarray(epoch_days, dtype=np.int64) + 3) % 7 >= 5)


def day_weights(epoch_days: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return np.where(is_weekend(epoch_days), WEEKEND_WEIGHT, 1.0)


def durations(seed: int, ids: I64, sla_seconds: I64) -> I64:
    """Seconds from creation to close (if the case closes at all): exponential around the SLA."""
    u = hashrng.uniform(seed, "case/duration", ids)
    return (-np.log1p(-u) * sla_seconds * 0.9).astype(np.int64) + 600


def closes_at(seed: int, ids: I64, created: I64, sla_seconds: I64) -> I64:
    stale = hashrng.uniform(seed, "case/stale", ids) < STALE_SHARE
    return np.where(stale, NEVER, created + durations(seed, ids, sla_seconds))


def deleted_at(seed: int, stream: str, keys: npt.ArrayLike, created: I64) -> I64:
    """When each case is deleted or aborted: ``NEVER`` for most, days after creation for some."""
    doomed = hashrng.uniform(seed, stream, keys) < DELETE_SHARE
    out = np.full(len(created), NEVER, dtype=np.int64)
    if doomed.any():
        picked = np.asarray(keys)[doomed]
        u = hashrng.uniform(seed, stream + "/after", picked)
        out[doomed] = (
            created[doomed] + 600 + (-np.log1p(-u) * DELETE_MEAN_DAYS * DAY).astype(np.int64)
        )
    return out


def poisson(u: npt.NDArray[np.float64], lam: npt.NDArray[np.float64]) -> I64:
    """Poisson counts by inversion: ``u`` uniform in [0, 1), ``lam`` the means (few distinct)."""
    out = np.zeros(len(u), dtype=np.int64)
    for mean in np.unique(lam).tolist():
        rows = lam == mean
        if mean <= 0:
            continue
        top = int(mean + 12 * math.sqrt(mean) + 25)
        k = np.arange(top + 1, dtype=np.float64)
        log_factorial = np.concatenate([[0.0], np.cumsum(np.log(k[1:]))])
        cdf = np.cumsum(np.exp(k * math.log(mean) - mean - log_factorial))
        out[rows] = np.minimum(np.searchsorted(cdf, u[rows], side="right"), top)
    return out


@dataclass(frozen=True, slots=True)
class Arrivals:
    """Cases created after the history's end, on whole days ``[first_day, last_day)``."""

    created: I64
    offset: I64
    process: I64
    deleted_at: I64


def arrivals(
    seed: int,
    end: int,
    first_day: int,
    last_day: int,
    daily_rate: float,
    offsets: I64,
    offset_weights: npt.NDArray[np.float64],
    process_weights: list[float],
) -> Arrivals:
    """Days ``first_day <= k < last_day`` after ``end`` (UTC seconds, a midnight), in order.

    Day k's cases lie strictly inside it (never at midnight itself: the world at ``end`` holds
    the history alone), sorted by creation; so generating days in any chunks gives the same
    cases in the same order.
    """
    k = np.arange(first_day, last_day, dtype=np.int64)
    epoch_day = end // DAY + k
    lam = daily_rate * day_weights(epoch_day)
    counts = poisson(hashrng.uniform(seed, "arrival/count", k), lam)
    total = int(counts.sum())
    day = np.repeat(k, counts)
    index = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    keys = (day.astype(np.uint64) << np.uint64(32)) | index.astype(np.uint64)
    offset = hashrng.choice(seed, "arrival/offset", keys, offset_weights)
    office = hashrng.uniform(seed, "arrival/office", keys) < OFFICE_SHARE
    local = np.where(
        office,
        8 * HOUR + hashrng.integers(seed, "arrival/tod", keys, 0, 10 * HOUR),
        hashrng.integers(seed, "arrival/tod", keys, 0, DAY),
    )
    within = np.maximum((local - offsets[offset] * 60) % DAY, 1)
    created = end + day * DAY + within
    order = np.lexsort((keys, created))
    keys = keys[order]
    created = created[order]
    return Arrivals(
        created=created,
        offset=offset[order],
        process=hashrng.choice(seed, "arrival/process", keys, process_weights),
        deleted_at=deleted_at(seed, "arrival/deleted", keys, created),
    )


@dataclass(frozen=True, slots=True)
class CasePlan:
    """The life of some cases: workitems, and when their parameters are decided and revised."""

    created: I64
    duration: I64  # seconds the case takes (also for those that never close)
    closes_at: I64
    workitems: I64  # how many workitems the case has over its life, 1-6
    decided_at: I64  # when the decided parameters are filled
    revised_at: I64  # when the revised parameters change once more (NEVER for most)

    def appears(self, j: I64) -> I64:
        """When workitem j of each case appears."""
        return self.created + (self.duration * j) // (2 * self.workitems)

    def completes(self, j: I64) -> I64:
        """When workitem j of each case completes; the last one when the case closes."""
        half = self.duration // 2
        within = self.created + half + (self.duration * (j + 1)) // (2 * self.workitems)
        return np.where(j >= self.workitems - 1, self.closes_at, within)

    def schedule(self) -> tuple[I64, I64, Bools]:
        """Per case (rows) and workitem (columns): when it appears, when it completes, and
        whether the case has that many workitems at all."""
        most = int(self.workitems.max()) if len(self.workitems) else 0
        j = np.arange(most, dtype=np.int64)[None, :]
        grid = CasePlan(
            *(np.asarray(getattr(self, f))[:, None] for f in CasePlan.__dataclass_fields__)
        )
        return grid.appears(j), grid.completes(j), j < grid.workitems


def plan(seed: int, ids: I64, created: I64, sla_seconds: I64, close: I64) -> CasePlan:
    d = durations(seed, ids, sla_seconds)
    n = hashrng.integers(seed, "workitem/count", ids, 1, 7)
    partial = CasePlan(created, d, close, n, created, created)
    decided = (hashrng.uniform(seed, "case/decided", ids) * n).astype(np.int64)
    revise = (hashrng.uniform(seed, "case/revised", ids) < REVISE_SHARE) & (decided < n - 1)
    later = decided + 1 + (hashrng.uniform(seed, "case/revised/task", ids) * (n - 1 - decided))
    revised = np.where(revise, partial.completes(later.astype(np.int64)), NEVER)
    return CasePlan(created, d, close, n, partial.completes(decided), revised)


@dataclass(frozen=True, slots=True)
class ValueTimeline:
    """When values of a parameter entity change (one attribute) or are removed.

    One row per value position, also for the values removed before the history's end.
    """

    changed_at: I64
    changed_column: I64  # index of the attribute that changes (never the first: the code)
    removed_at: I64


CHANGE_SHARE = 0.05  # entity values whose attribute changes once
REMOVE_SHARE = 0.01  # entity values removed


def value_timeline(
    seed: int, name: str, size: int, changeable: list[int], start: int, end: int
) -> ValueTimeline:
    """Changes and removals at instants spread over the history and as long again after it.

    ``changeable``: indexes of the attributes that may change (a value's code or name never
    does). As with cases, exactly ``size`` values exist at the history's end: values are drawn
    one by one, and those removed before the end come on top.
    """
    window = (start, 2 * (end - start))
    candidates = size + 16 + int(size * 3 * REMOVE_SHARE)
    while True:
        keys = np.arange(candidates, dtype=np.int64)
        removed_at = _instants(seed, f"entity/{name}/removed", REMOVE_SHARE, keys, window)
        left = np.cumsum(removed_at > end)
        if size == 0 or left[-1] >= size:
            take = int(np.searchsorted(left, size)) + 1 if size else 0
            break
        candidates *= 2
    keys = keys[:take]
    share = CHANGE_SHARE if changeable else 0.0
    pick = hashrng.integers(seed, f"entity/{name}/changed/column", keys, 0, max(1, len(changeable)))
    return ValueTimeline(
        changed_at=_instants(seed, f"entity/{name}/changed", share, keys, window),
        changed_column=np.asarray(changeable or [0], dtype=np.int64)[pick],
        removed_at=removed_at[:take],
    )


def _instants(seed: int, stream: str, share: float, keys: I64, window: tuple[int, int]) -> I64:
    """For a ``share`` of ``keys``, an instant in [first, first + span); ``NEVER`` for the rest."""
    first, span = window
    hit = hashrng.uniform(seed, stream, keys) < share
    at = first + (hashrng.uniform(seed, stream + "/at", keys) * span).astype(np.int64)
    return np.where(hit, at, NEVER)
