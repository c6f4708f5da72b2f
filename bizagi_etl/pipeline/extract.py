"""The one function that runs a stream over a window: pages -> typed tables -> lake partitions.

Daily streams are cut into slices, a chunk of days times a process, fetched by a bounded pool
of workers that share one client and one token (``max_concurrency``); slices are consumed in
their own order, so the files and their rows come out the same whatever the interleaving.
Each page is converted to Arrow once and its rows tagged with the UTC day of their cursor;
every day of the window gets a
partition, an empty one included, so a rerun that finds fewer rows still replaces the old
ones. Rows the server returns outside the window are dropped and counted, never written into
a partition that was not asked for. Memory holds one chunk of days as Arrow tables for daily
streams (sorted by key before writing), and one part file's rows for snapshots.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import orjson
import pyarrow as pa

from bizagi_etl.connector import (
    BizagiClient,
    ClientError,
    PagingError,
    QueryStats,
    RequestStats,
    SchemaError,
    entity_type_at,
    iter_pages,
    iter_rows,
    odata,
    total_of,
)
from bizagi_etl.pipeline.arrow_pages import ArrowPages, arrow_pages_for
from bizagi_etl.pipeline.frames import combine, empty_table, to_table
from bizagi_etl.pipeline.lake import Lake, PartitionWriter, WrittenPartition
from bizagi_etl.pipeline.landing import StreamLoad, land
from bizagi_etl.pipeline.streams import (
    DAILY,
    FAMILY,
    Catalog,
    Stream,
    apply_metadata,
    check_attributes,
)

if TYPE_CHECKING:  # loading is the warehouse's job: extracting never imports duckdb
    from bizagi_etl.pipeline.warehouse import Warehouse

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stream, rows so far, pages so far)
Record = dict[str, Any]
MAX_CHUNK_DAYS = 31  # days per query at most: a sparse history needs few requests
ROWS_PER_CHUNK = 5_000  # rows a chunk of days should hold: what memory holds at once
# Without a total from the server, the density of a window is unknown: a week a query keeps
# memory bounded for any history up to ~700 rows a day per chunk target (and far beyond with
# the lake writing per day), at a cost of one query per week per process.
UNKNOWN_TOTAL_CHUNK_DAYS = 7
WRITE_THREADS = 2  # partitions written at once while the next chunk is fetched
RANGE_PAGES = 4  # pages a worker reads in one range of a snapshot query
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(slots=True)
class ExtractResult:
    stream: str
    partitions: list[WrittenPartition] = field(default_factory=list)
    queries: list[QueryStats] = field(default_factory=list)
    outside_window: int = 0  # rows the server sent for days that were not asked for
    seconds: float = 0.0

    def rows(self, table: str | None = None) -> int:
        return sum(p.rows for p in self.partitions if table in (None, p.table))

    @property
    def requests(self) -> int:
        return sum(q.requests for q in self.queries)

    @property
    def pages(self) -> int:
        return sum(q.pages for q in self.queries)

    @property
    def retries(self) -> int:
        return sum(sum(q.retries.values()) for q in self.queries)

    @property
    def token_refreshes(self) -> int:
        return sum(q.token_refreshes for q in self.queries)

    @property
    def server_total(self) -> int | None:
        totals = [q.server_total for q in self.queries]
        return None if any(t is None for t in totals) else sum(t for t in totals if t is not None)


def resolve_streams(client: BizagiClient, catalog: Catalog, names: list[str]) -> list[Stream]:
    """Catalog streams by name; a family (``entity_values``) or one of its members
    (``entity_<name>``) is resolved into member streams listed by the API, once per family."""
    wanted: list[Stream] = []
    members: dict[str, list[Stream]] = {}
    for name in names:
        stream = catalog.get(name)
        if stream.kind != FAMILY:
            wanted.append(stream)
            continue
        if stream.name not in members:
            assert stream.member is not None, f"family {stream.name} declares no member"
            listed = iter_rows(client, stream.members_path)
            members[stream.name] = [stream.member(record) for record in listed]
        found = [m for m in members[stream.name] if name in (stream.name, m.name)]
        if not found:
            raise SchemaError(
                f"unknown stream {name!r}: the API lists no such member of {stream.name} "
                f"(members: {', '.join(m.name for m in members[stream.name]) or 'none'})"
            )
        wanted += found
    return wanted


# A double holds 15 significant digits for sure: a decimal column that may need more is read
# from pages parsed exactly (numbers as Decimal), which costs about a fifth more parsing.
DOUBLE_DIGITS = 15


def needs_exact_numbers(stream: Stream) -> bool:
    """Whether a table of the stream has a decimal column wider than a double is exact."""
    columns = [*stream.columns, *(c for child in stream.children for c in child.columns)]
    return any(pa.types.is_decimal(c.type) and c.type.precision > DOUBLE_DIGITS for c in columns)


def typed_by_metadata(client: BizagiClient, stream: Stream) -> Stream:
    """The stream with the columns the service's ``$metadata`` declares (``apply_metadata``);
    unchanged where the service has none (``fetch_metadata`` warns once) or its records are
    reshaped. The document is fetched once per client and service."""
    if stream.flatten is not None or stream.kind == FAMILY:
        return stream
    path = stream.path.format(process_id="0") if stream.fan_out else stream.path
    entity = entity_type_at(client, path)
    if entity is None:
        return stream
    check_attributes(stream, [p.name for p in entity.properties], f"$metadata of {path}")
    return apply_metadata(stream, entity)


def extract_stream(
    client: BizagiClient,
    stream: Stream,
    lake: Lake,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    extracted_at: dt.datetime | None = None,
    progress: Progress | None = None,
    before_swap: Callable[[Path], None] | None = None,
    chunk_days: int | None = None,
    workers: int | None = None,
) -> ExtractResult:
    """Extract one stream into the lake. Daily streams need ``start`` < ``end`` (end exclusive).

    Columns the service's ``$metadata`` declares are typed from it (``typed_by_metadata``).
    """
    stream = typed_by_metadata(client, stream)
    run = _Run(client, stream, lake, extracted_at or dt.datetime.now(dt.UTC), progress, before_swap)
    began = time.monotonic()
    if stream.partitioning == DAILY:
        if start is None or end is None or not start < end:
            raise ValueError(
                f"stream {stream.name!r} is daily: give start < end, got {start}, {end}"
            )
        days = chunk_days or chunk_days_for(count_at_source(client, stream, start, end), start, end)
        run.daily(start, end, days, workers or client.settings.max_concurrency)
    else:
        run.snapshot(workers or client.settings.max_concurrency)
    run.result.seconds = time.monotonic() - began
    return run.result


def chunk_days_for(total: int | None, start: dt.date, end: dt.date) -> int:
    """Days per chunk so that a chunk holds about ROWS_PER_CHUNK rows, from the API's total.

    Memory holds one chunk, so it follows this constant, not the window; a dense history is
    cut finer (more, smaller queries, which concurrency overlaps), a sparse one coarser. A
    server that reports no total gets UNKNOWN_TOTAL_CHUNK_DAYS.
    """
    if total is None:
        return UNKNOWN_TOTAL_CHUNK_DAYS
    per_day = total / max(1, (end - start).days)
    if per_day <= 0:
        return MAX_CHUNK_DAYS
    return max(1, min(MAX_CHUNK_DAYS, int(ROWS_PER_CHUNK / per_day)))


def stream_paths(client: BizagiClient, stream: Stream) -> Iterator[tuple[str, str | None]]:
    """(path, process id) of each query a stream runs: one, or one per process."""
    if not stream.fan_out:
        yield stream.path, None
        return
    processes = sorted(iter_rows(client, "odata/data/processes"), key=lambda p: p["id"])
    for process in processes:
        yield stream.path.format(process_id=process["id"]), str(process["id"])


def count_at_source(
    client: BizagiClient, stream: Stream, start: dt.date | None = None, end: dt.date | None = None
) -> int | None:
    """What the API reports as the total of a stream (over [start, end) for daily streams), or
    None when the server gives no total (for any of the processes).

    One request per process, sent ``max_concurrency`` at a time: on a slow server a project
    with many processes would otherwise wait for them one by one before extracting anything.
    """
    window = None
    if stream.partitioning == DAILY and stream.cursor and start and end:
        window = odata.window(stream.cursor, midnight(start), midnight(end))
    paths = [path for path, _ in stream_paths(client, stream)]
    workers = client.settings.max_concurrency
    counts = [count for _, count in ordered_map(workers, _total, paths, (client, window))]
    return None if None in counts else sum(c for c in counts if c is not None)


def count_window(
    client: BizagiClient, path: str, cursor: str, start: dt.date, end: dt.date
) -> int | None:
    """What one query path reports as its total over the days [start, end) of ``cursor``."""
    return _total(path, (client, odata.window(cursor, midnight(start), midnight(end))))


def _total(path: str, shared: tuple[BizagiClient, str | None]) -> int | None:
    """The total of one query, asked the standard way: one row and ``$count=true``."""
    client, window = shared
    options: dict[str, Any] = {"$top": 1, "$skip": 0, "$count": True}
    if window:
        options["$filter"] = window
    body = client.get_json(client.url(path, options))
    count = total_of(body)
    if count is None:
        log.info("%s: the server reports no total", path)
    return count


def record_tables(stream: Stream, records: list[Record]) -> dict[str, pa.Table]:
    """Flat records as the stream's tables (its own and its children's), converted exactly as
    an extraction converts them, conformed to the declared schemas."""
    buffers = _Buffers(stream)
    buffers.add(records)
    return {t: combine(b, declared.schema, t) for t, _key, declared, b in buffers.tables()}


def flat_record(stream: Stream, record: Record, process_id: str | None) -> Record:
    """A record as the stream's row: flattened, and tagged with its process when fanned out."""
    flat = stream.flatten(record) if stream.flatten else dict(record)
    if process_id is not None:
        flat["process_id"] = process_id
    return flat


def load_result(
    warehouse: Warehouse, result: ExtractResult, extracted_at: dt.datetime
) -> dict[str, int]:
    """Load every partition an extraction wrote, one transaction per table; rows per table."""
    return land(warehouse, [StreamLoad.of(result, extracted_at)])


class _Run:
    def __init__(
        self,
        client: BizagiClient,
        stream: Stream,
        lake: Lake,
        extracted_at: dt.datetime,
        progress: Progress | None,
        before_swap: Callable[[Path], None] | None,
    ) -> None:
        self.client = client
        self.stream = stream
        self.lake = lake
        self.extracted_at = extracted_at
        self.progress = progress
        self.before_swap = before_swap
        self.result = ExtractResult(stream=stream.name)
        self.rows_seen = 0
        self.pages_seen = 0
        self.checked = False  # key and cursor checked against the first records
        self.exact = needs_exact_numbers(stream)
        self._lock = threading.Lock()  # progress counters, shared by the worker threads

    def snapshot(self, workers: int) -> None:
        """Stream pages straight into the new partition: memory holds a part and the ranges
        in flight, not the set."""
        value = self.extracted_at.date().isoformat()
        writers: dict[str, PartitionWriter] = {}
        try:  # a writer opened before a later one fails is dropped too (its lock, its folder)
            for table, _key, declared, _batches in _Buffers(self.stream).tables():
                writers[table] = self.lake.open_partition(
                    table, "snapshot", value, declared.schema, self.extracted_at
                )
            for path, process_id in self._paths():
                for buffers in self._snapshot_query(path, process_id, workers):
                    for table, _key, _declared, batches in buffers.tables():
                        for batch in batches:
                            writers[table].write(batch)
            for writer in writers.values():
                self.result.partitions.append(writer.commit(self.before_swap))
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise

    def _snapshot_query(
        self, path: str, process_id: str | None, workers: int
    ) -> Iterator[_Buffers]:
        """One query's rows, a page or a range at a time, in the server's order.

        The first page gives the total and the size of the server's pages. With workers to
        spare and rows beyond that page, the rest is cut into ranges of ``RANGE_PAGES`` pages
        (``$skip``/``$top``) read by the pool and taken in order, so the server prepares the
        next pages while this process converts and writes. Without a total, pages follow one
        another through the server's links.
        """
        stats = QueryStats(path=path)
        self.result.queries.append(stats)
        pages = iter_pages(self.client, path, stats=stats, exact=self.exact)
        first = next(pages, None)
        if first is None:
            return
        yield self._converted(first.rows, process_id)
        size, total = len(first.rows), first.server_total
        no_top = self.client.settings.page_size == 0  # asked to leave paging to the server
        if workers <= 1 or no_top or total is None or not size or total <= size:
            for page in pages:
                yield self._converted(page.rows, process_id)
            return
        pages.close()  # its next link is the first range's
        reader = arrow_pages_for(self.stream)
        step = size if reader else size * RANGE_PAGES  # a page a range: one request, no links
        ranges = [(skip, min(step, total - skip)) for skip in range(size, total, step)]
        query = _Query(path, process_id, size, first.rows[0], reader)
        try:  # the first range alone: a server may refuse $skip (it pages by $skiptoken only)
            probe = self._range(ranges[0], query)
        except ClientError as exc:
            if exc.status not in (400, 501):
                raise
            log.warning("%s: the server refused a $skip range (%s); following its links one "
                        "page after another instead", path, exc)  # fmt: skip
            yield from self._after_first_page(path, process_id)
            return
        self.result.queries.append(probe.stats)
        yield probe.buffers
        for _range, fetched in ordered_map(workers, self._range, ranges[1:], query):
            self.result.queries.append(fetched.stats)
            yield fetched.buffers

    def _after_first_page(self, path: str, process_id: str | None) -> Iterator[_Buffers]:
        """The query's pages through the server's links, its first page (already written)
        asked again and left out."""
        stats = QueryStats(path=path)
        self.result.queries.append(stats)
        for page in iter_pages(self.client, path, stats=stats, exact=self.exact):
            if page.number > 1:
                yield self._converted(page.rows, process_id)

    def _range(self, rows: tuple[int, int], query: _Query) -> _Slice:
        """One range of a query's rows, converted (runs in a worker thread): straight into
        Arrow where the stream allows and the page is as declared, else the general way."""
        if query.reader is not None:
            fetched = self._arrow_range(rows, query, query.reader)
            if fetched is not None:
                return fetched
        fetched = _Slice(stats=QueryStats(path=query.path), buffers=_Buffers(self.stream))
        pages = iter_pages(self.client, query.path, page_size=query.page_size,
                           stats=fetched.stats, exact=self.exact, rows=rows)  # fmt: skip
        for page in pages:
            if page.number == 1 and page.rows and page.rows[0] == query.first_row:
                raise _ignored_skip(query.path, rows[0])
            fetched.buffers.add(self._converted_records(page.rows, query.process_id))
        return fetched

    def _arrow_range(
        self, rows: tuple[int, int], query: _Query, reader: ArrowPages
    ) -> _Slice | None:
        """A one-page range read by ``reader``, or, when the page is not as declared, from the
        same body the general way; None when the body is not the page asked for (an error,
        a short page), to be read again through the pager, which says what is wrong."""
        skip, limit = rows
        url = self.client.url(query.path, {"$top": limit, "$skip": skip})
        request = RequestStats()
        body = self.client.get_json_bytes(url, request)
        stats = QueryStats(path=query.path, requests=request.requests, pages=1,
                           retries=request.retries, bytes=request.bytes)  # fmt: skip
        fetched = _Slice(stats=stats, buffers=_Buffers(self.stream))
        table = reader.read(body)
        if table is not None and table.num_rows == limit:
            key = self.stream.key[0] if self.stream.key else None
            if key and table.column(key)[0].as_py() == query.first_row.get(self._source(key)):
                raise _ignored_skip(query.path, skip)
            self._count_rows(table.num_rows)
            fetched.buffers.batches[self.stream.name].append(table)
        else:
            decoded = _page_rows(body, self.exact)
            if decoded is None or len(decoded) != limit:
                return None
            if decoded[0] == query.first_row:
                raise _ignored_skip(query.path, skip)
            fetched.buffers.add(self._converted_records(decoded, query.process_id))
        stats.rows = limit
        return fetched

    def _source(self, column: str) -> str:
        return next((c.source for c in self.stream.columns if c.name == column), column)

    def _converted(self, rows: list[Record], process_id: str | None) -> _Buffers:
        buffers = _Buffers(self.stream)
        buffers.add(self._converted_records(rows, process_id))
        return buffers

    def _converted_records(self, rows: list[Record], process_id: str | None) -> list[Record]:
        records = [self._flat(r, process_id) for r in rows]
        self._count(records, 1)
        return records

    def daily(self, start: dt.date, end: dt.date, chunk_days: int, workers: int) -> None:
        """Slices (chunk of days x process) fetched by a bounded pool; each chunk is split by
        day as soon as its last slice is in, and its days written on a small pool of writers
        while the next chunk is fetched."""
        chunks = list(day_chunks(start, end, chunk_days))
        paths = list(self._paths())
        slices = [(i, path, process_id) for i in range(len(chunks)) for path, process_id in paths]
        waiting = [len(paths)] * len(chunks)
        pending: dict[int, _Buffers] = {}
        tables = [table for table, *_ in _Buffers(self.stream).tables()]
        with self.lake.writing(*tables), _OrderedWrites(WRITE_THREADS) as writes:
            for (i, _path, _pid), fetched in ordered_map(workers, self._slice, slices, chunks):
                self.result.queries.append(fetched.stats)
                self.result.outside_window += fetched.outside_window
                pending.setdefault(i, _Buffers(self.stream)).extend(fetched.buffers)
                waiting[i] -= 1
                if waiting[i] == 0:
                    for day, buffers in pending.pop(i).split_by_day(chunks[i]).items():
                        writes.submit(self._write, buffers, "day", day.isoformat())
                    # memory holds the chunk being written and the one being fetched, no more
                    self.result.partitions += writes.finished(keep=len(chunks[i]))
            self.result.partitions += writes.finished(keep=0)

    def _slice(self, item: tuple[int, str, str | None], chunks: list[list[dt.date]]) -> _Slice:
        """One process over one chunk of days, routed to days (runs in a worker thread)."""
        index, path, process_id = item
        days = chunks[index]
        lo, hi = midnight(days[0]), midnight(days[-1] + dt.timedelta(days=1))
        assert self.stream.cursor is not None
        fetched = _Slice(stats=QueryStats(path=path), buffers=_Buffers(self.stream))
        window = odata.window(self.stream.cursor, lo, hi)
        pages = iter_pages(self.client, path, filter=window, stats=fetched.stats, exact=self.exact)
        for page in pages:
            records = [self._flat(r, process_id) for r in page.rows]
            self._count(records, 1)
            kept, days, outside = self._route(records, lo, hi)
            fetched.outside_window += outside
            fetched.buffers.add(kept, days)  # one conversion per page, split by day later
        return fetched

    def _count_rows(self, rows: int) -> None:
        with self._lock:
            self.rows_seen += rows
            self.pages_seen += 1
            if self.progress:
                self.progress(self.stream.name, self.rows_seen, self.pages_seen)

    def _count(self, records: list[Record], pages: int) -> None:
        with self._lock:
            if records and not self.checked:  # before the first page is written anywhere
                check_attributes(self.stream, records[0], f"the records of {self.stream.path}")
                self.checked = True
            self.rows_seen += len(records)
            self.pages_seen += pages
            if self.progress:
                self.progress(self.stream.name, self.rows_seen, self.pages_seen)

    def _paths(self) -> Iterator[tuple[str, str | None]]:
        return stream_paths(self.client, self.stream)

    def _flat(self, record: Record, process_id: str | None) -> Record:
        return flat_record(self.stream, record, process_id)

    def _route(
        self, records: list[Record], lo: dt.datetime, hi: dt.datetime
    ) -> tuple[list[Record], list[dt.date], int]:
        """Records inside [lo, hi), the UTC day of each one's cursor, and how many fell out."""
        cursor = self.stream.cursor
        kept: list[Record] = []
        days: list[dt.date] = []
        outside = 0
        for record in records:
            when = utc_instant(record.get(cursor) if cursor else None)
            if when is None or not lo <= when < hi:
                outside += 1
                log.warning(
                    "%s: row %s outside the window %s..%s (cursor %r), not written",
                    self.stream.name, record.get("id"), lo, hi, record.get(cursor or ""),
                )  # fmt: skip
                continue
            kept.append(record)
            days.append(when.date())
        return kept, days, outside

    def _write(self, buffers: _Buffers, column: str, value: str) -> list[WrittenPartition]:
        """Write one partition of every table of the stream (in a writer thread); each table's
        rows come sorted by key (``split_by_day``), so the lake does not sort them again."""
        written = []
        for table, _key, declared, batches in buffers.tables():
            written.append(self.lake.write_partition(
                table, column, value, batches, declared.schema, key=(),
                extracted_at=self.extracted_at, before_swap=self.before_swap,
            ))  # fmt: skip
        return written


class _OrderedWrites:
    """Partition writes on a small thread pool (Parquet encoding and file system calls release
    the GIL), their results taken in the order they were submitted."""

    def __init__(self, threads: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bizagi-write")
        self.queue: deque[Future[list[WrittenPartition]]] = deque()

    def submit(self, write: Callable[..., list[WrittenPartition]], *args: Any) -> None:
        self.queue.append(self.pool.submit(write, *args))

    def finished(self, keep: int) -> list[WrittenPartition]:
        """Wait for the oldest writes until at most ``keep`` are left; what they wrote."""
        out: list[WrittenPartition] = []
        while len(self.queue) > keep:
            out += self.queue.popleft().result()
        return out

    def __enter__(self) -> _OrderedWrites:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _ignored_skip(path: str, skip: int) -> PagingError:
    return PagingError(
        f"{path}: $skip={skip} answered the collection's first row again: the server ignores "
        "$skip; set BIZAGI_MAX_CONCURRENCY=1 to follow its links one page at a time"
    )


def _page_rows(body: bytes, exact: bool) -> list[Record] | None:
    """The rows of a collection page's body, parsed as the client parses them (exactly where
    a column needs it); None for anything but a collection page."""
    try:
        page = json.loads(body, parse_float=Decimal) if exact else orjson.loads(body)
    except ValueError:
        return None
    value = page.get("value") if isinstance(page, dict) else None
    return value if isinstance(value, list) else None


@dataclass(frozen=True, slots=True)
class _Query:
    """What every range of one snapshot query shares."""

    path: str
    process_id: str | None
    page_size: int  # rows the server served on the first page
    first_row: Record  # a range starting with it means the server ignored $skip
    reader: ArrowPages | None  # reads a page straight into Arrow, where the stream allows


@dataclass(slots=True)
class _Slice:
    """What one worker fetched: Arrow batches by day, and its query's statistics."""

    stats: QueryStats
    buffers: _Buffers
    outside_window: int = 0


def ordered_map(
    workers: int,
    fn: Callable[[_T, Any], _R],
    items: Sequence[_T],
    shared: Any,
) -> Iterator[tuple[_T, _R]]:
    """``fn(item, shared)`` for each item on a bounded pool, results in the order of ``items``.

    At most ``2 * workers`` items are in flight, so memory holds a few slices whatever the
    window; output does not depend on which worker finishes first.
    """
    if workers <= 1:
        for item in items:
            yield item, fn(item, shared)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bizagi-extract")
    queue: deque[tuple[_T, Future[_R]]] = deque()
    upcoming = iter(items)
    try:
        for item in islice(upcoming, 2 * workers):
            queue.append((item, pool.submit(fn, item, shared)))
        while queue:
            item, future = queue.popleft()
            result = future.result()
            for more in islice(upcoming, 1):
                queue.append((more, pool.submit(fn, more, shared)))
            yield item, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Buffers:
    """Arrow batches of one partition, for the stream's table and its children."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.batches: dict[str, list[pa.Table]] = defaultdict(list)

    def extend(self, other: _Buffers) -> None:
        for table, batches in other.batches.items():
            self.batches[table].extend(batches)

    def add(self, records: list[Record], days: list[dt.date] | None = None) -> None:
        """Convert records (and their children) to Arrow; with ``days``, tag rows by day."""
        if not records:
            return
        s = self.stream
        parent = to_table(records, s.columns, s.name, s.child_sources)
        self.batches[s.name].append(_tag(parent, days))
        for child in s.children:
            table, counts = child.table(records)
            if table is not None:
                # each row has its parent's day: repeated in numpy, not looked up row by row
                child_days = None
                if days is not None:
                    child_days = np.repeat(np.array(days, dtype="datetime64[D]"), counts)
                self.batches[child.name].append(_tag(table, child_days))

    def split_by_day(self, days: Sequence[dt.date]) -> dict[dt.date, _Buffers]:
        """Buffers for each of ``days`` (empty ones included) from day-tagged batches: per table,
        one concat and one sort by (day, key), then a zero-copy slice per day."""
        out = {day: _Buffers(self.stream) for day in days}
        for table, key, declared, batches in self.tables():
            if not batches:
                continue
            data = combine(batches, declared.schema, table)
            data = data.sort_by([(DAY_TAG, "ascending"), *((k, "ascending") for k in key)])
            tags = data.column(DAY_TAG).to_numpy()  # datetime64[D], sorted
            data = data.drop_columns([DAY_TAG])
            edges = [*days, days[-1] + dt.timedelta(days=1)]
            starts = np.searchsorted(tags, np.array(edges, dtype="datetime64[D]"))
            for day, lo, hi in zip(days, starts[:-1], starts[1:], strict=True):
                if hi > lo:
                    out[day].batches[table].append(data.slice(lo, hi - lo))
        return out

    def tables(self) -> Iterator[tuple[str, tuple[str, ...], pa.Table, list[pa.Table]]]:
        s = self.stream
        yield s.name, s.key, empty_table(s.columns), self.batches.get(s.name, [])
        for child in s.children:
            yield (
                child.name,
                child.key,
                empty_table(child.columns),
                self.batches.get(child.name, []),
            )


DAY_TAG = "__bizagi_day"


def _tag(table: pa.Table, days: list[dt.date] | np.ndarray | None) -> pa.Table:
    return table if days is None else table.append_column(DAY_TAG, pa.array(days, pa.date32()))


def day_chunks(start: dt.date, end: dt.date, size: int) -> Iterator[list[dt.date]]:
    days = [start + dt.timedelta(days=i) for i in range((end - start).days)]
    for i in range(0, len(days), max(1, size)):
        yield days[i : i + size]


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def utc_instant(value: Any) -> dt.datetime | None:
    """An ISO date-time text as a UTC instant (naive means UTC); None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
