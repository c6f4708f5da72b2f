"""One translator from the stream catalog to Dagster: asset keys, groups, kinds, owners,
descriptions and partitions. Assets, checks, views and jobs all ask it, so a stream is named
and described the same way everywhere.

Each stream has two assets: ``bizagi/lake/<stream>`` (API -> Parquet lake) and
``bizagi/warehouse/<stream>`` (lake -> DuckDB). The ``sql/`` views are
``bizagi/analytics/<view>``. A family stream (``entity_values``) is one asset pair for all its
member tables, which are known only from the API.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from bizagi_etl.connector import SettingsError
from bizagi_etl.pipeline import DAILY, SCHEMA, Catalog, PipelineSettings, Stream

__all__ = [
    "ANALYTICS",
    "DAILY_PARTITIONS",
    "DUCKDB_POOL",
    "FRESHNESS",
    "LAKE",
    "OWNERS",
    "RANGE_END",
    "RANGE_START",
    "SYNC_AT",
    "WAREHOUSE",
    "asset_args",
    "asset_key",
    "catalog",
    "is_daily",
    "markdown",
    "streams",
    "sync_instant",
    "view_args",
    "warehouse_pool",
]

LAKE, WAREHOUSE, ANALYTICS = "lake", "warehouse", "analytics"
OWNERS = ["team:data-platform"]
# The pool of every step that writes or reads a DuckDB file warehouse (limit 1 in the instance:
# a DuckDB file takes one writer). A DuckLake takes many writers and needs none.
DUCKDB_POOL = "duckdb"
# A run over a range of partitions carries these tags (dagster does not export the names).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# A run the daily schedule launches syncs (reads what changed, not only its window) as of the
# tick's instant, so a retried run reads what the first attempt would have.
SYNC_AT = "bizagi/sync_at"


@dataclass(frozen=True, slots=True)
class _Layer:
    group: str
    kinds: frozenset[str]


_LAYERS = {
    LAKE: _Layer("bizagi_lake", frozenset({"python", "parquet"})),
    WAREHOUSE: _Layer("bizagi_warehouse", frozenset({"duckdb"})),
    ANALYTICS: _Layer("bizagi_analytics", frozenset({"duckdb", "sql"})),
}

# One partitions definition for every daily asset and job, from BIZAGI_START_DATE (read when
# definitions load: a bad date fails loading, naming the variable).
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(
    start_date=PipelineSettings.from_env().start_date.isoformat(), timezone="UTC"
)
FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=30), warn_window=dt.timedelta(hours=26)
)


def catalog() -> Catalog:
    """Built-in streams plus the user's from ``BIZAGI_STREAMS_FILE``."""
    return Catalog.load(PipelineSettings.from_env().streams_file)


def streams() -> tuple[Stream, ...]:
    """Every stream that becomes assets, in catalog order."""
    return catalog().all()


def is_daily(stream: Stream) -> bool:
    return stream.partitioning == DAILY


def warehouse_pool() -> str | None:
    """The Dagster pool of steps that open the warehouse: ``duckdb`` for a DuckDB file or a
    DuckLake catalog in a file (one process at a time), none for a DuckLake on PostgreSQL
    (``BIZAGI_WAREHOUSE=ducklake:postgres:...``), whose writers commit concurrently."""
    return None if PipelineSettings.from_env().shared_warehouse else DUCKDB_POOL


def _backfill_policy() -> dg.BackfillPolicy:
    """One run for the whole backfill (a DuckDB file), or runs of at most ``run_days`` days
    each that execute side by side (a DuckLake; ``BIZAGI_BACKFILL_RUN_DAYS``)."""
    days = PipelineSettings.from_env().run_days
    if days is None:
        return dg.BackfillPolicy.single_run()
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=days)


def asset_key(stream: Stream | str, layer: str) -> dg.AssetKey:
    name = stream if isinstance(stream, str) else stream.name
    return dg.AssetKey(["bizagi", layer, name])


def asset_args(stream: Stream, layer: str) -> dict[str, Any]:
    """Keyword arguments of ``@dg.asset`` for a stream's lake or warehouse asset."""
    daily = is_daily(stream)
    if layer == LAKE:
        where = f"daily on {stream.cursor}" if daily else "a snapshot per run"
        what, deps = f"API -> Parquet lake, {where}.", []
    else:
        tables = ", ".join(f"{SCHEMA}.{t}" for t in stream.tables)
        what = f"Lake -> DuckDB {tables or SCHEMA + '.' + stream.tables_label}."
        deps = [asset_key(stream, LAKE)]
    return {
        "key": asset_key(stream, layer),
        "deps": deps,
        "group_name": _LAYERS[layer].group,
        "kinds": set(_LAYERS[layer].kinds),
        "owners": OWNERS,
        "description": markdown(f"{stream.description}. {what}"),
        "tags": {"bizagi/stream": stream.name},
        "partitions_def": DAILY_PARTITIONS if daily else None,
        "backfill_policy": _backfill_policy() if daily else None,
    }


def view_args(view: str, description: str, sources: list[Stream]) -> dict[str, Any]:
    """Keyword arguments of ``dg.AssetSpec`` for one ``analytics`` view."""
    return {
        "key": asset_key(view, ANALYTICS),
        "deps": [asset_key(s, WAREHOUSE) for s in sources],
        "group_name": _LAYERS[ANALYTICS].group,
        "kinds": set(_LAYERS[ANALYTICS].kinds),
        "owners": OWNERS,
        "description": markdown(description),
    }


_PLACEHOLDER = re.compile(r"(?<!`)\b([\w.]*<\w+>[\w.]*)")


def markdown(text: str) -> str:
    """Text safe for the UI's Markdown: ``entity_<name>`` in code, not eaten as an HTML tag."""
    return _PLACEHOLDER.sub(r"`\1`", text)


def sync_instant(tags: Mapping[str, str]) -> dt.datetime | None:
    """The instant a run syncs as of, if the daily schedule launched it to sync."""
    raw = tags.get(SYNC_AT)
    if not raw:
        return None
    try:
        instant = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"run tag {SYNC_AT!r}: expected an ISO instant, got {raw!r}") from None
    # A naive instant is UTC, as everywhere in the pipeline, not the machine's local time.
    return (instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
