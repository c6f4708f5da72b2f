"""One factory from the stream catalog to assets: extract (API -> lake), load (lake -> DuckDB).

Daily streams share one ``DailyPartitionsDefinition`` and a single-run backfill policy: a year
of backfill is one run that reads ``context.partition_time_window`` and fetches the whole range
in chunks of days (sized from the API's total), replacing each day's partition. Snapshot
streams are unpartitioned assets; each materialization writes that day's snapshot partition in
the lake and the warehouse keeps every snapshot (``analytics.latest_<table>`` gives the newest
row per key).
"""

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from bizagi_etl.pipeline import (
    DAILY,
    ENTITY_VALUES,
    SCHEMA,
    Catalog,
    ExtractResult,
    Lake,
    Stream,
    Warehouse,
    extract_stream,
    extracted_at_of,
    resolve_streams,
)
from dagster_project.resources import BizagiResource, LakehouseResource

OWNERS = ["team:data-platform"]
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(
    start_date=os.environ.get("BIZAGI_START_DATE", "2024-01-01"), timezone="UTC"
)
FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=30), warn_window=dt.timedelta(hours=26)
)


def catalog() -> Catalog:
    """Built-in streams plus the user's from ``BIZAGI_STREAMS_FILE``, read when defs load."""
    path = os.environ.get("BIZAGI_STREAMS_FILE")
    return Catalog.load(Path(path) if path else None)


def orchestrated_streams() -> list[Stream]:
    """Every stream that becomes assets; entity tables share one pair (``entity_values``)."""
    streams = list(catalog().all())
    entities = Stream(
        name=ENTITY_VALUES,
        description="Values of every parameter entity, one table entity_<name> each, "
        "typed from the entity's template",
        path="odata/data/entities(id)/values",
        key=("id",),
        partitioning="snapshot",
        columns=(),
        kind="entity",
    )
    index = [s.name for s in streams].index("entities") + 1
    return [*streams[:index], entities, *streams[index:]]


def extract_key(stream: Stream) -> dg.AssetKey:
    return dg.AssetKey(["bizagi", "lake", stream.name])


def load_key(stream: Stream) -> dg.AssetKey:
    return dg.AssetKey(["bizagi", "warehouse", stream.name])


def window(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """The run's days as a half-open window (a single partition or a whole backfill range)."""
    time_window = context.partition_time_window
    return time_window.start.date(), time_window.end.date()


def stream_assets(stream: Stream) -> list[dg.AssetsDefinition]:
    daily = stream.partitioning == DAILY
    partitions = DAILY_PARTITIONS if daily else None
    backfill = dg.BackfillPolicy.single_run() if daily else None
    where = f"daily on {stream.cursor}" if daily else "a snapshot per run"

    @dg.asset(
        key=extract_key(stream),
        group_name="bizagi_lake",
        kinds={"python", "parquet"},
        description=f"{stream.description}. API -> Parquet lake, {where}.",
        tags={"bizagi/stream": stream.name},
        partitions_def=partitions,
        backfill_policy=backfill,
        owners=OWNERS,
    )
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

    @dg.asset(
        key=load_key(stream),
        deps=[extract_key(stream)],
        group_name="bizagi_warehouse",
        kinds={"duckdb"},
        pool="duckdb",
        freshness_policy=FRESHNESS,
        description=f"{stream.description}. Lake -> DuckDB {SCHEMA}.{stream.name}.",
        tags={"bizagi/stream": stream.name},
        partitions_def=partitions,
        backfill_policy=backfill,
        owners=OWNERS,
    )
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
    """Warehouse tables a stream fills; parameter-entity tables are found in the lake."""
    if stream.name == ENTITY_VALUES:
        return lake.tables(prefix="entity_")
    return list(stream.tables)


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
    main = stream.name if stream.name != ENTITY_VALUES else next(iter(sorted(loaded)), "")
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
