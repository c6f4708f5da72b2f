"""The extract (API -> lake) and load (lake -> DuckDB) assets of every stream in the catalog.

Daily streams share one ``DailyPartitionsDefinition`` and a single-run backfill policy: a year
of backfill is one run that reads ``context.partition_time_window`` and fetches the whole range
in chunks of days (sized from the API's total), replacing each day's partition. Snapshot
streams are unpartitioned assets; each materialization writes that day's snapshot partition in
the lake and the warehouse keeps every snapshot (``analytics.latest_<table>`` gives the newest
row per key). Keys, groups, kinds and descriptions come from ``dagster_project.translator``.
"""

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from bizagi_etl.pipeline import (
    SCHEMA,
    ExtractResult,
    Lake,
    Stream,
    Warehouse,
    extract_stream,
    extracted_at_of,
    resolve_streams,
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
)

__all__ = ["assets", "partitions_to_load", "stream_assets", "tables_of", "window"]


def window(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """The run's days as a half-open window (a single partition or a whole backfill range)."""
    time_window = context.partition_time_window
    return time_window.start.date(), time_window.end.date()


def stream_assets(stream: Stream) -> list[dg.AssetsDefinition]:
    daily = is_daily(stream)

    @dg.asset(**asset_args(stream, LAKE))
    def extract(
        context: dg.AssetExecutionContext, bizagi: BizagiResource, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        start, end = window(context) if daily else (None, None)
        client = bizagi.client()
        lake = lakehouse.lake()
        results = []
        for target in resolve_streams(client, catalog(), [stream.name]):
            context.log.info(f"extracting {target.name} {start or ''}..{end or ''}")
            results.append(
                extract_stream(
                    client, target, lake, start=start, end=end, progress=_logger(context)
                )
            )
        return dg.MaterializeResult(metadata=_extract_metadata(results, lake))

    @dg.asset(**asset_args(stream, WAREHOUSE), pool="duckdb", freshness_policy=FRESHNESS)
    def load(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        lake = lakehouse.lake()
        days = window(context) if daily else None
        loaded: dict[str, int] = {}
        with lakehouse.warehouse() as warehouse:
            for table in tables_of(stream, lake):
                parts = partitions_to_load(lake, table, days)
                if not parts:
                    context.log.warning(f"{table}: nothing in the lake to load")
                    continue
                at = extracted_at_of(parts[0][1][0]) or dt.datetime.now(dt.UTC)
                loaded[table] = warehouse.load_partitions(table, parts, at)
            return dg.MaterializeResult(metadata=_load_metadata(stream, warehouse, loaded, lake))

    return [extract, load]


def tables_of(stream: Stream, lake: Lake) -> list[str]:
    """Tables a stream fills; a family's members are found in the lake."""
    return [table for table, _key in stream.tables_among(lake.tables())]


def partitions_to_load(
    lake: Lake, table: str, days: tuple[dt.date, dt.date] | None
) -> list[tuple[str, Sequence[Path]]]:
    """Daily: every day of the window present in the lake. Snapshot: the newest snapshot."""
    present = [v for c, v in lake.partitions(table)] if lake.table_dir(table).exists() else []
    if days is None:
        chosen = present[-1:]
    else:
        first, end = days[0].isoformat(), days[1].isoformat()
        chosen = [v for v in present if first <= v < end]
    column = "day" if days is not None else "snapshot"
    return [(v, lake.files(table, column, v)) for v in chosen]


def _logger(context: dg.AssetExecutionContext):  # type: ignore[no-untyped-def]
    every = 50

    def progress(stream: str, rows: int, pages: int) -> None:
        if pages % every == 0:
            context.log.info(f"{stream}: {rows:,} rows, {pages:,} pages")

    return progress


def _extract_metadata(results: list[ExtractResult], lake: Lake) -> dict[str, Any]:
    totals = [r.server_total for r in results]
    tables = sorted({p.table for r in results for p in r.partitions})
    return {
        "dagster/row_count": sum(r.rows(r.stream) for r in results),
        "bizagi/tables": {t: sum(r.rows(t) for r in results) for t in tables},
        "bizagi/partitions": sum(len(r.partitions) for r in results),
        "bizagi/pages": sum(r.pages for r in results),
        "bizagi/requests": sum(r.requests for r in results),
        "bizagi/retries": sum(r.retries for r in results),
        "bizagi/token_refreshes": sum(r.token_refreshes for r in results),
        "bizagi/api_total": None if None in totals else sum(t or 0 for t in totals),
        "bizagi/outside_window": sum(r.outside_window for r in results),
        "bizagi/lake_path": dg.MetadataValue.path(str(lake.root)),
    }


def _load_metadata(
    stream: Stream, warehouse: Warehouse, loaded: dict[str, int], lake: Lake
) -> dict[str, Any]:
    main = stream.name if stream.tables else next(iter(sorted(loaded)), "")
    columns = warehouse.columns(main) if main else {}
    return {
        "dagster/table_name": f"{SCHEMA}.{main}" if main else "",
        "dagster/row_count": warehouse.count(main) if main else 0,
        "dagster/partition_row_count": loaded.get(main, 0),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=n, type=t) for n, t in columns.items()]
        ),
        "bizagi/tables": {t: warehouse.count(t) for t in sorted(loaded)},
        "bizagi/loaded_rows": loaded,
        "bizagi/lake_path": dg.MetadataValue.path(str(lake.root)),
    }


@dg.definitions
def assets() -> dg.Definitions:
    return dg.Definitions(assets=[a for stream in streams() for a in stream_assets(stream)])
