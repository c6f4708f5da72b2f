"""Bring a daily stream's lake (and warehouse) to the server's current state, reading only the
days where something can have changed.

A day of cases is first extracted the day after, when most of its cases are still open; they
close, change and vanish later, and cases expose no modified-at cursor. What the API offers is
``$filter`` on case attributes and a cheap total per window (``$count``). So a sync reads:

- **new days**: from the last day landed (it was incomplete then) up to today;
- **open days**: days that held an open case in the lake (``closed`` false): its state,
  parameters and workitems can still move, and it can be deleted;
- **moved days**: days whose count at the source differs from the lake's, which is how a
  deleted or aborted case of a closed day shows. Counts are compared per query path (process)
  over the whole history first, and only a window that differs is split in two, down to days,
  so the requests follow what changed, not the length of the history.

Closed cases are taken as final (Bizagi does not reopen them), and a case never moves to
another day (its ``creationDate`` does not change). A server that reports no totals gives
nothing to compare: every landed day is read again. Cases that vanished are recorded in the
lake table ``<stream>_deleted`` (``case_id``, ``process_id``, the day it was created, when the
sync found it gone), partitioned by the day of the sync, and loaded like any table.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bizagi_etl.connector import AUTO_PAGE_SIZE, BizagiClient, SchemaError
from bizagi_etl.pipeline.extract import (
    ExtractResult,
    Progress,
    chunk_days_for,
    count_window,
    extract_stream,
    load_result,
    stream_paths,
)
from bizagi_etl.pipeline.lake import Lake
from bizagi_etl.pipeline.streams import DAILY, Stream
from bizagi_etl.pipeline.warehouse import Warehouse

NEW, OPEN, MOVED = "new", "open", "moved"
DELETED_COLUMNS = pa.schema([
    pa.field("case_id", pa.int64()), pa.field("process_id", pa.string()),
    pa.field("created_day", pa.date32()), pa.field("detected_at", pa.timestamp("us", tz="UTC")),
])  # fmt: skip


@dataclass(slots=True)
class Landed:
    """What the lake holds of one day: rows per query path (process), and open rows."""

    by_path: Counter[str | None] = field(default_factory=Counter)
    rows: int = 0
    open: int = 0


@dataclass(slots=True)
class SyncPlan:
    stream: str
    reasons: dict[dt.date, str] = field(default_factory=dict)  # day -> new, open or moved
    count_requests: int = 0
    landed_days: int = 0
    paths: int = 0  # queries per window: one, or one per process

    def days(self, reason: str | None = None) -> list[dt.date]:
        return sorted(d for d, r in self.reasons.items() if reason in (None, r))


@dataclass(slots=True)
class SyncReport:
    plan: SyncPlan
    results: list[ExtractResult] = field(default_factory=list)
    added: int = 0
    changed: int = 0
    deleted: int = 0
    loaded: dict[str, int] = field(default_factory=dict)
    full_requests: int = 0  # what re-extracting every day would have cost, estimated

    @property
    def requests(self) -> int:
        return self.plan.count_requests + sum(r.requests for r in self.results)


def sync_stream(
    client: BizagiClient,
    stream: Stream,
    lake: Lake,
    warehouse: Warehouse | None,
    *,
    start: dt.date,
    now: dt.datetime,
    progress: Progress | None = None,
) -> SyncReport:
    """Plan (``plan_sync``), read the planned days, record what vanished, load what moved.

    ``now`` is the instant of the sync (UTC): its day is the last, incomplete one, read again
    next time; cases found gone are recorded as found at ``now``.
    """
    if stream.partitioning != DAILY:
        raise SchemaError(f"stream {stream.name!r} is a snapshot: sync brings daily streams")
    landed = landed_days(lake, stream)
    plan = plan_sync(client, stream, landed, start=start, today=now.date())
    report = SyncReport(plan=plan)
    gone: list[dict[str, Any]] = []
    for lo, hi in _ranges(plan.days()):
        days = _days(lo, hi)
        before = _rows(lake, stream, days)
        report.results.append(extract_stream(client, stream, lake, start=lo, end=hi,
                                             extracted_at=now, progress=progress))  # fmt: skip
        after = _rows(lake, stream, days)
        report.added += len(after.keys() - before.keys())
        report.changed += sum(1 for k in after.keys() & before.keys() if after[k] != before[k])
        gone += [{"case_id": int(k), "process_id": process, "created_day": day,
                  "detected_at": now}
                 for k, (_, process, day) in before.items() if k not in after]  # fmt: skip
    report.deleted = len(gone)
    report.full_requests = _full_cost(client, plan, landed_days(lake, stream), start, now)
    if gone:
        report.results.append(_record_deleted(lake, f"{stream.name}_deleted", gone, now))
    if warehouse is not None:
        for result in report.results:
            report.loaded |= load_result(warehouse, result, now)
    return report


def plan_sync(
    client: BizagiClient,
    stream: Stream,
    landed: dict[dt.date, Landed],
    *,
    start: dt.date,
    today: dt.date,
) -> SyncPlan:
    """The days a sync must read, and why, spending count requests only where it must."""
    plan = SyncPlan(stream=stream.name, landed_days=len(landed))
    first = min(landed, default=start)
    last = max(landed, default=start)
    for day in _days(last if landed else start, today + dt.timedelta(days=1)):
        plan.reasons[day] = NEW
    for day, state in landed.items():
        if state.open and day not in plan.reasons:
            plan.reasons[day] = OPEN
    assert stream.cursor is not None
    paths = list(stream_paths(client, stream))
    plan.paths = len(paths)
    end = max(landed) + dt.timedelta(days=1) if landed else first
    for path, process in paths:  # days already planned are skipped as the windows narrow
        _drill(client, stream.cursor, path, process, landed, first, end, None, plan)
    return plan


def _drill(
    client: BizagiClient,
    cursor: str,
    path: str,
    process: str | None,
    landed: dict[dt.date, Landed],
    lo: dt.date,
    hi: dt.date,
    server: int | None,
    plan: SyncPlan,
) -> int | None:
    """Split [lo, hi) until the windows whose count moved are single days; marks them."""
    if lo >= hi or all(d in plan.reasons for d in _days(lo, hi)):
        return server
    if server is None:
        server = count_window(client, path, cursor, lo, hi)
        plan.count_requests += 1
        if server is None:  # no totals: nothing to compare, every day is read again
            for day in _days(lo, hi):
                plan.reasons.setdefault(day, MOVED)
            return None
    local = sum(landed[d].by_path[process] for d in _days(lo, hi) if d in landed)
    if server == local:
        return server
    if hi - lo == dt.timedelta(days=1):
        plan.reasons.setdefault(lo, MOVED)
        return server
    mid = lo + dt.timedelta(days=(hi - lo).days // 2)
    left = _drill(client, cursor, path, process, landed, lo, mid, None, plan)
    right = None if left is None else server - left  # the parent's count minus the left half
    _drill(client, cursor, path, process, landed, mid, hi, right, plan)
    return server


def landed_days(
    lake: Lake, stream: Stream, only: Sequence[str] | None = None
) -> dict[dt.date, Landed]:
    """What the lake holds of each day of a daily stream (or of the days in ``only``)."""
    table = stream.name
    if not lake.table_dir(table).is_dir():
        return {}
    values = only if only is not None else [v for c, v in lake.partitions(table) if c == "day"]
    process = "process_id" if stream.fan_out else None
    out: dict[dt.date, Landed] = {}
    for value in values:
        state = Landed()
        for file in lake.files(table, "day", value):
            names = set(pq.read_schema(file).names)
            columns = [c for c in (process, "closed") if c and c in names]
            data = pq.read_table(file, columns=columns).to_pydict()
            owners = data.get(process or "", [None] * pq.read_metadata(file).num_rows)
            state.by_path.update(owners)
            state.rows += len(owners)
            state.open += sum(1 for c in data.get("closed", []) if c is False)
        out[dt.date.fromisoformat(value)] = state
    return out


def _rows(lake: Lake, stream: Stream, days: list[dt.date]) -> dict[Any, tuple[int, Any, dt.date]]:
    """id -> (digest of its row and its child rows, process, day) for the days in the lake:
    what a sync compares before and after reading them again."""
    rows: dict[Any, tuple[int, Any, dt.date]] = {}
    present = {v for c, v in lake.partitions(stream.name)} if lake.table_dir(
        stream.name).is_dir() else set()  # fmt: skip
    for day in days:
        if day.isoformat() not in present:
            continue
        children = {c.name: _by_parent(lake, c.name, c.key[0], day) for c in stream.children}
        for row in _read(lake, stream.name, day):
            key = row[stream.key[0]]
            extra = tuple(tuple(children[c].get(key, ())) for c in sorted(children))
            rows[key] = (hash((_plain(row), extra)), row.get("process_id"), day)
    return rows


def _read(lake: Lake, table: str, day: dt.date) -> list[dict[str, Any]]:
    if not lake.table_dir(table).is_dir():
        return []
    files = lake.files(table, "day", day.isoformat())
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def _by_parent(lake: Lake, table: str, parent: str, day: dt.date) -> dict[Any, list[tuple]]:
    grouped: dict[Any, list[tuple]] = {}
    for row in _read(lake, table, day):
        grouped.setdefault(row[parent], []).append(_plain(row))
    return grouped


def _plain(row: dict[str, Any]) -> tuple:
    """A row's values, sorted by column, without the bookkeeping that changes on every run."""
    return tuple(sorted((k, repr(v)) for k, v in row.items() if not k.startswith("_")))


def _record_deleted(
    lake: Lake, table: str, gone: list[dict[str, Any]], now: dt.datetime
) -> ExtractResult:
    """Append what vanished to today's partition of ``table`` (earlier syncs of the day kept)."""
    value = now.date().isoformat()
    earlier = [pq.read_table(f) for f in lake.files(table, "day", value)] if lake.table_dir(
        table
    ).is_dir() else []  # fmt: skip
    rows = pa.Table.from_pylist(gone, schema=DELETED_COLUMNS)
    written = lake.write_partition(table, "day", value, [*earlier, rows], DELETED_COLUMNS,
                                   key=("case_id",), extracted_at=now)  # fmt: skip
    return ExtractResult(stream=table, partitions=[written])


def _full_cost(
    client: BizagiClient, plan: SyncPlan, landed: dict[dt.date, Landed], start: dt.date,
    now: dt.datetime,
) -> int:  # fmt: skip
    """Requests a full re-extraction of every day up to now would spend, as extract_stream
    spends them: a count per path, a query per chunk of days per path, a request per page."""
    first, end = min(landed, default=start), now.date() + dt.timedelta(days=1)
    rows = sum(s.rows for s in landed.values())
    chunks = math.ceil((end - first).days / chunk_days_for(rows, first, end))
    size = client.settings.page_size or AUTO_PAGE_SIZE
    return plan.paths * (1 + chunks) + max(math.ceil(rows / size), plan.paths * chunks)


def _days(lo: dt.date, hi: dt.date) -> list[dt.date]:
    return [lo + dt.timedelta(days=i) for i in range((hi - lo).days)]


def _ranges(days: list[dt.date]) -> Iterator[tuple[dt.date, dt.date]]:
    """Contiguous runs of days as half-open windows."""
    run: list[dt.date] = []
    for day in days:
        if run and day != run[-1] + dt.timedelta(days=1):
            yield run[0], run[-1] + dt.timedelta(days=1)
            run = []
        run.append(day)
    if run:
        yield run[0], run[-1] + dt.timedelta(days=1)
