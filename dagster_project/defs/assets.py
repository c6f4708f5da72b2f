"""The extract (API -> lake) and load (lake -> DuckDB) assets of every stream in the catalog.

Daily streams share one ``DailyPartitionsDefinition``. Their backfill policy is one run for a
DuckDB file, or runs of ``BIZAGI_BACKFILL_RUN_DAYS`` (31) days for a DuckLake on PostgreSQL that
land side by side; a run reads ``context.partition_time_window`` and fetches its whole range in
chunks of days (sized from the API's total), replacing each day's partition. Snapshot
streams are unpartitioned assets; each materialization writes that day's snapshot partition in
the lake and the warehouse keeps every snapshot (``analytics.latest_<table>`` gives the newest
row per key). Keys, groups, kinds and descriptions come from ``dagster_project.translator``.

Metadata tells each partition its own truth. A range run still records one materialization per
day (Dagster makes one event per partition of the run from the asset's single output); the
numbers of each day are attached to that day's event with
``context.add_asset_metadata(..., partition_key=day)``, which Dagster merges over the metadata
returned in the ``MaterializeResult`` (``_get_output_asset_events`` in
``dagster/_core/execution/plan/execute_step.py``). What is the same for every day of the run
is returned once: run totals as ``bizagi/run_*`` (window, rows, requests, pages, retries...).

- ``dagster/partition_row_count``: rows of the day (the lake partition written, or the
  warehouse table's rows for that day after the load);
- ``dagster/row_count``: rows the asset holds now: a daily lake table's every day (from the
  Parquet footers), a lake snapshot's rows, the warehouse table's every row;
- ``bizagi/tables``: every table the asset fills, each with ``rows``, ``partition_rows`` (of
  the day, or of the snapshot loaded) and, in the warehouse, its ``columns`` (name -> type);
- ``dagster/table_name`` and ``dagster/column_schema``: the stream's main table. A family
  (``entity_values``) has no main table: it gives neither, its ``dagster/row_count`` and
  ``dagster/partition_row_count`` are sums over its member tables, listed in ``bizagi/tables``.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from bizagi_etl.pipeline import (
    MOVED,
    NEW,
    OPEN,
    SCHEMA,
    ExtractResult,
    Lake,
    Stream,
    SyncReport,
    Warehouse,
    WrittenPartition,
    deleted_table,
    extract_stream,
    resolve_streams,
    stale_partitions,
    sync_stream,
)
from dagster_project.defs.resources import BizagiResource, LakehouseResource
from dagster_project.translator import (
    FRESHNESS,
    LAKE,
    WAREHOUSE,
    asset_args,
    catalog,
    is_daily,
    streams,
    sync_instant,
    warehouse_pool,
)

__all__ = [
    "assets",
    "column_schema",
    "partitions_to_load",
    "span",
    "stream_assets",
    "tables_of",
    "window",
]


def window(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """The run's days as a half-open window (a single partition or a whole backfill range)."""
    time_window = context.partition_time_window
    return time_window.start.date(), time_window.end.date()


def span(start: dt.date, end: dt.date) -> str:
    """A half-open window as logs and metadata show it: ``[2025-03-15, 2025-03-17)``."""
    return f"[{start.isoformat()}, {end.isoformat()})"


def column_schema(columns: Mapping[str, str]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=n, type=t) for n, t in columns.items()])


def stream_assets(stream: Stream) -> list[dg.AssetsDefinition]:
    daily = is_daily(stream)

    @dg.asset(**asset_args(stream, LAKE))
    def extract(
        context: dg.AssetExecutionContext, bizagi: BizagiResource, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        start, end = window(context) if daily else (None, None)
        sync_at = sync_instant(context.run.tags) if daily else None
        what = span(start, end) if start and end else "(snapshot)"
        client = bizagi.client()
        lake = lakehouse.lake()
        results, syncs = [], []
        for target in resolve_streams(client, catalog(), [stream.name]):
            progress = _logger(context)
            if sync_at is not None and start and end:
                context.log.info(f"syncing {target.name} as of {sync_at.isoformat()}: {what}")
                syncs.append(sync_stream(client, target, lake, None, start=start, now=sync_at,
                                         window=(start, end), progress=progress))  # fmt: skip
                results += syncs[-1].results
                continue
            context.log.info(f"extracting {target.name} {what}")
            results.append(
                extract_stream(client, target, lake, start=start, end=end, progress=progress)
            )
        report = _LakeReport(stream, results, lake, daily)
        reasons = {d: why for sync in syncs for d, why in sync.rewritten().items()}
        if daily:
            for day in context.partition_keys:
                reason = {"bizagi/sync_reason": reasons.get(day, NEW)} if syncs else {}
                context.add_asset_metadata(report.partition(day) | reason, partition_key=day)
        _record_outside(context, reasons, report.partition)
        metadata = report.run(start, end) | ({"bizagi/sync": _sync_summary(syncs)} if syncs else {})
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(**asset_args(stream, WAREHOUSE), pool=warehouse_pool(), freshness_policy=FRESHNESS)
    def load(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        lake = lakehouse.lake()
        days = window(context) if daily else None
        sync_at = sync_instant(context.run.tags) if daily else None
        syncing = sync_at is not None
        context.log.info(f"loading {stream.name} {span(*days) if days else '(newest snapshot)'}"
                         + (" and every day the sync rewrote" if syncing else ""))  # fmt: skip
        loaded: dict[str, int] = {}
        outside: dict[str, str] = {}
        with lakehouse.warehouse() as warehouse:
            for table in tables_of(stream, lake, deleted=syncing):
                parts: list[tuple[str, Sequence[Path | str]]]
                if syncing:
                    stale = stale_partitions(lake, warehouse, table, stamped=sync_at)
                    files = lake.partition_files(table)
                    parts = [(v, files[v]) for v in stale]
                else:
                    parts = partitions_to_load(lake, table, days)
                if not parts:
                    if not syncing:  # a sync that changed nothing has nothing to load
                        context.log.warning(f"{table}: nothing in the lake to load")
                    continue
                loaded[table] = _load(lake, warehouse, table, parts)
                if table == stream.name and days:
                    first, end = days[0].isoformat(), days[1].isoformat()
                    outside |= {v: "changed" for v, _ in parts if not first <= v < end}
            report = _WarehouseReport.of(stream, warehouse, loaded)
        if daily:
            for day in context.partition_keys:
                context.add_asset_metadata(report.partition(day), partition_key=day)
        _record_outside(context, outside, report.partition)
        return dg.MaterializeResult(metadata=report.run(days, lake))

    return [extract, load]


def tables_of(stream: Stream, lake: Lake, *, deleted: bool = False) -> list[str]:
    """Tables a stream fills; a family's members are found in the lake. With ``deleted``, also
    the record of what vanished at the source, once a sync has written one."""
    tables = [table for table, _key in stream.tables_among(lake.tables())]
    record = deleted_table(stream.name)
    return [*tables, record] if deleted and lake.has_table(record) else tables


def _load(
    lake: Lake,
    warehouse: Warehouse,
    table: str,
    parts: Sequence[tuple[str, Sequence[Path | str]]],
) -> int:
    """Load partitions with the instant each was extracted at (a sync mixes instants)."""
    by_stamp: dict[dt.datetime, list[tuple[str, Sequence[Path | str]]]] = defaultdict(list)
    for value, files in parts:
        by_stamp[lake.extracted_at(files[0]) or dt.datetime.now(dt.UTC)].append((value, files))
    return sum(warehouse.load_partitions(table, group, at) for at, group in by_stamp.items())


def _record_outside(
    context: dg.AssetExecutionContext,
    reasons: Mapping[str, str],
    metadata_of: Callable[[str], dict[str, Any]],
) -> None:
    """A day a sync rewrote outside the run's partitions is a materialization of this run too."""
    inside = set(context.partition_keys) if reasons else set()
    for day, why in sorted(reasons.items()):
        if day not in inside:
            metadata = metadata_of(day) | {"bizagi/sync_reason": why}
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=context.asset_key, partition=day, metadata=metadata
                )
            )


def _sync_summary(syncs: list[SyncReport]) -> dict[str, int]:
    """What the syncs of a run did, and what a full re-extraction would have cost."""
    return {
        "days_new": sum(len(s.plan.days(NEW)) for s in syncs),
        "days_open": sum(len(s.plan.days(OPEN)) for s in syncs),
        "days_moved": sum(len(s.plan.days(MOVED)) for s in syncs),
        "days_rewritten": sum(len(s.rewritten()) for s in syncs),
        "rows_added": sum(s.added for s in syncs),
        "rows_changed": sum(s.changed for s in syncs),
        "rows_deleted": sum(s.deleted for s in syncs),
        "requests": sum(s.requests for s in syncs),
        "full_requests": sum(s.full_requests for s in syncs),
    }


def partitions_to_load(
    lake: Lake, table: str, days: tuple[dt.date, dt.date] | None
) -> list[tuple[str, Sequence[Path | str]]]:
    """Daily: every day of the window present in the lake. Snapshot: the newest snapshot."""
    present = lake.partition_files(table) if lake.has_table(table) else {}
    if days is None:
        chosen = list(present)[-1:]
    else:
        first, end = days[0].isoformat(), days[1].isoformat()
        chosen = [v for v in present if first <= v < end]
    return [(v, present[v]) for v in chosen]


def _logger(context: dg.AssetExecutionContext):  # type: ignore[no-untyped-def]
    every = 50

    def progress(stream: str, rows: int, pages: int) -> None:
        if pages % every == 0:
            context.log.info(f"{stream}: {rows:,} rows, {pages:,} pages")

    return progress


def _main(stream: Stream) -> str | None:
    """The table named like the stream; a family has none."""
    return stream.name if stream.tables else None


def _of_main(main: str | None, rows: Mapping[str, int]) -> int:
    """Rows of the main table, or, for a family, of all its tables."""
    return rows.get(main, 0) if main else sum(rows.values())


class _LakeReport:
    """What an extraction wrote: per day (or snapshot) and table, and the run's totals."""

    def __init__(self, stream: Stream, results: list[ExtractResult], lake: Lake, daily: bool):
        self.results, self.lake = results, lake
        self.main = _main(stream)
        self.written: dict[str, dict[str, WrittenPartition]] = defaultdict(dict)
        for result in results:
            for p in result.partitions:
                self.written[p.value][p.table] = p
        self.tables = sorted({p.table for r in results for p in r.partitions})
        self.run_rows = {t: sum(r.rows(t) for r in results) for t in self.tables}
        # a daily table holds every day in the lake; a snapshot is what this run wrote
        self.rows = {t: lake.rows(t) for t in self.tables} if daily else dict(self.run_rows)

    def partition(self, day: str) -> dict[str, Any]:
        parts = self.written.get(day, {})
        day_rows = {t: parts[t].rows if t in parts else 0 for t in self.tables}
        metadata: dict[str, Any] = {
            "dagster/partition_row_count": _of_main(self.main, day_rows),
            "bizagi/tables": {
                t: {"rows": self.rows[t], "partition_rows": day_rows[t]} for t in self.tables
            },
        }
        where = parts.get(self.main or "") or next(iter(parts.values()), None)
        if where is not None:
            metadata["bizagi/partition_path"] = dg.MetadataValue.path(str(where.path))
        return metadata

    def run(self, start: dt.date | None, end: dt.date | None) -> dict[str, Any]:
        results = self.results
        totals = [r.server_total for r in results]
        metadata: dict[str, Any] = {"dagster/row_count": _of_main(self.main, self.rows)}
        if start and end:
            metadata["bizagi/run_window"] = span(start, end)
        else:
            metadata["bizagi/tables"] = {
                t: {"rows": self.rows[t], "partition_rows": self.run_rows[t]} for t in self.tables
            }
        return metadata | {
            "bizagi/run_rows": _of_main(self.main, self.run_rows),
            "bizagi/run_tables": self.run_rows,
            "bizagi/run_partitions": sum(len(r.partitions) for r in results),
            "bizagi/run_pages": sum(r.pages for r in results),
            "bizagi/run_requests": sum(r.requests for r in results),
            "bizagi/run_retries": sum(r.retries for r in results),
            "bizagi/run_token_refreshes": sum(r.token_refreshes for r in results),
            "bizagi/run_api_total": None if None in totals else sum(t or 0 for t in totals),
            "bizagi/run_outside_window": sum(r.outside_window for r in results),
            "bizagi/run_seconds": round(sum(r.seconds for r in results), 3),
            "bizagi/lake_path": dg.MetadataValue.path(str(self.lake.root)),
        }


class _WarehouseReport:
    """The stream's tables in the warehouse after a load: rows per partition, and columns."""

    def __init__(
        self,
        stream: Stream,
        counts: dict[str, dict[str, int]],
        columns: dict[str, dict[str, str]],
        loaded: dict[str, int],
    ) -> None:
        self.main = _main(stream)
        self.counts, self.columns, self.loaded = counts, columns, loaded
        self.rows = {t: sum(c.values()) for t, c in counts.items()}

    @classmethod
    def of(cls, stream: Stream, warehouse: Warehouse, loaded: dict[str, int]) -> "_WarehouseReport":
        present = set(warehouse.tables())
        tables = [t for t, _ in stream.tables_among(present) if t in present]
        counts = {t: warehouse.partition_counts(t) for t in tables}
        columns = {t: warehouse.columns(t) for t in tables}
        return cls(stream, counts, columns, loaded)

    def _tables(self, partition_rows: Mapping[str, int]) -> dict[str, Any]:
        return {
            f"{SCHEMA}.{t}": {
                "rows": self.rows[t],
                "partition_rows": partition_rows.get(t, 0),
                "columns": self.columns[t],
            }
            for t in self.counts
        }

    def partition(self, day: str) -> dict[str, Any]:
        day_rows = {t: c.get(day, 0) for t, c in self.counts.items()}
        return {
            "dagster/partition_row_count": _of_main(self.main, day_rows),
            "bizagi/tables": self._tables(day_rows),
        }

    def run(self, days: tuple[dt.date, dt.date] | None, lake: Lake) -> dict[str, Any]:
        metadata: dict[str, Any] = {"dagster/row_count": _of_main(self.main, self.rows)}
        if self.main:
            metadata["dagster/table_name"] = f"{SCHEMA}.{self.main}"
            metadata["dagster/column_schema"] = column_schema(self.columns.get(self.main, {}))
        if days:
            metadata["bizagi/run_window"] = span(*days)
        else:  # the snapshot just loaded
            metadata["bizagi/tables"] = self._tables(self.loaded)
        return metadata | {
            "bizagi/run_loaded_rows": {f"{SCHEMA}.{t}": n for t, n in self.loaded.items()},
            "bizagi/lake_path": dg.MetadataValue.path(str(lake.root)),
        }


@dg.definitions
def assets() -> dg.Definitions:
    return dg.Definitions(assets=[a for stream in streams() for a in stream_assets(stream)])
