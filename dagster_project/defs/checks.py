"""Asset checks on the warehouse tables.

- ``rows_match_api`` (error, blocks downstream views): the rows in the warehouse for the run's
  window (or, run on its own, for every loaded day; after a sync, for every day up to the
  window's end) equal the total the API reports for it now (a server that reports no total
  gets a warning, which does not block);
- ``key_unique_not_null`` (error): no repeated and no null keys, in the table and its children;
- ``schema_unchanged`` (warn): every table's columns match those the previous run recorded
  (materializations of the same run, one per day of a range, are never compared together);
- ``days_not_empty`` (warn, daily streams): no day is empty where the 28 days before it had rows.
"""

import datetime as dt

import dagster as dg

from bizagi_etl.pipeline import Stream, Warehouse, count_at_source, resolve_streams
from dagster_project.defs.resources import BizagiResource, LakehouseResource
from dagster_project.translator import (
    WAREHOUSE,
    asset_key,
    catalog,
    is_daily,
    streams,
    sync_instant,
    warehouse_pool,
)

__all__ = ["checks", "stream_checks"]

WARN = dg.AssetCheckSeverity.WARN
HISTORY_DAYS = 28
PAGE = 500  # materializations read at a time while looking for the previous run


def _checked_partitions(
    context: dg.AssetCheckExecutionContext,
    warehouse: Warehouse,
    lakehouse: LakehouseResource,
    table: str,
    daily: bool,
) -> list[str]:
    """Daily: every day of the run's window, or, run on its own, every day in the lake (empty
    days included: an emptied day must still be checked); a sync run, which brings every day
    to the source's current state, every day in the lake up to its window's end. Snapshots:
    the newest one loaded."""
    if not daily:
        return sorted(warehouse.partition_counts(table))[-1:]
    lake = lakehouse.lake()
    landed = [v for _, v in lake.partitions(table)] if lake.has_table(table) else []
    if not (context.has_partition_key or context.has_partition_key_range):
        return landed
    start, end = (t.date() for t in context.partition_time_window)
    window = [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days)]
    if sync_instant(context.run.tags) is None:
        return window
    return sorted(set(window) | {v for v in landed if v < end.isoformat()})


def stream_checks(stream: Stream) -> list[dg.AssetChecksDefinition]:
    asset = asset_key(stream, WAREHOUSE)
    daily = is_daily(stream)

    @dg.asset_check(asset=asset, name="rows_match_api", blocking=True, pool=warehouse_pool(),
                    description="Rows in the warehouse equal the API's reported total")  # fmt: skip
    def rows_match_api(
        context: dg.AssetCheckExecutionContext,
        bizagi: BizagiResource,
        lakehouse: LakehouseResource,
    ) -> dg.AssetCheckResult:
        client = bizagi.client()
        landed, expected, detail, unknown = 0, 0, {}, []
        with lakehouse.warehouse() as warehouse:
            for target in resolve_streams(client, catalog(), [stream.name]):
                parts = _checked_partitions(context, warehouse, lakehouse, target.name, daily)
                counts = warehouse.partition_counts(target.name)
                rows = sum(counts.get(p, 0) for p in parts)
                start, end = _days(parts) if daily else (None, None)
                total = count_at_source(client, target, start, end) if parts else 0
                if total is None:
                    unknown.append(target.name)
                landed, expected = landed + rows, expected + (total or 0)
                detail[target.name] = {"warehouse": rows, "api": total, "partitions": len(parts)}
        if unknown:  # nothing to compare with: a warning, which does not block the views
            note = f"the API reports no total for {', '.join(unknown)}: rows cannot be compared"
            return dg.AssetCheckResult(
                passed=False,
                severity=WARN,
                metadata={
                    "warehouse_rows": landed,
                    "api_total": None,
                    "tables": detail,
                    "note": note,
                },
            )
        return dg.AssetCheckResult(
            passed=landed == expected,
            metadata={"warehouse_rows": landed, "api_total": expected, "tables": detail},
        )

    @dg.asset_check(asset=asset, name="key_unique_not_null", pool=warehouse_pool(),
                    description="Keys are unique and never null")  # fmt: skip
    def key_unique_not_null(
        context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource
    ) -> dg.AssetCheckResult:
        problems: dict[str, dict[str, int]] = {}
        with lakehouse.warehouse() as warehouse:
            for table, key in _keyed_tables(stream, lakehouse):
                parts = _checked_partitions(context, warehouse, lakehouse, table, daily)
                duplicates, nulls = warehouse.key_problems(table, key, parts) if parts else (0, 0)
                problems[table] = {"duplicate_keys": duplicates, "null_keys": nulls}
        bad = any(v["duplicate_keys"] or v["null_keys"] for v in problems.values())
        return dg.AssetCheckResult(passed=not bad, metadata={"tables": problems})

    @dg.asset_check(asset=asset, name="schema_unchanged",
                    description="Columns match those of the previous run (warns)")  # fmt: skip
    def schema_unchanged(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        current, previous = _compared_runs(context.instance, asset)
        if current is None or previous is None:
            return dg.AssetCheckResult(
                passed=True, severity=WARN, metadata={"note": "no earlier run to compare with"}
            )
        now, before = _schemas(current), _schemas(previous)
        ids = {"run_id": current.run_id, "previous_run_id": previous.run_id}
        if now is None or before is None:
            note = "a run recorded no columns per table (bizagi/tables)"
            return dg.AssetCheckResult(passed=True, severity=WARN, metadata={"note": note, **ids})
        drift = _drift(now, before)
        return dg.AssetCheckResult(
            passed=not any(drift.values()), severity=WARN, metadata={**drift, **ids}
        )

    checks = [rows_match_api, key_unique_not_null, schema_unchanged]
    if daily:

        @dg.asset_check(
            asset=asset,
            name="days_not_empty",
            pool=warehouse_pool(),
            description="No empty day where the history says there should be rows",
        )
        def days_not_empty(
            context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource
        ) -> dg.AssetCheckResult:
            with lakehouse.warehouse() as warehouse:
                counts = warehouse.partition_counts(stream.name)
                parts = _checked_partitions(context, warehouse, lakehouse, stream.name, daily)
            empty = [p for p in parts if counts.get(p, 0) == 0 and _usual(counts, p) >= 1]
            return dg.AssetCheckResult(
                passed=not empty,
                severity=WARN,
                metadata={"empty_days": empty, "checked_days": len(parts)},
            )

        checks.append(days_not_empty)
    return checks


def _keyed_tables(
    stream: Stream, lakehouse: LakehouseResource
) -> list[tuple[str, tuple[str, ...]]]:
    return stream.tables_among(lakehouse.lake().tables())


def _days(parts: list[str]) -> tuple[dt.date | None, dt.date | None]:
    if not parts:
        return None, None
    return dt.date.fromisoformat(parts[0]), dt.date.fromisoformat(parts[-1]) + dt.timedelta(days=1)


def _usual(counts: dict[str, int], day: str) -> float:
    """Mean rows per day over the HISTORY_DAYS days before ``day`` that are loaded."""
    end = dt.date.fromisoformat(day)
    before = [(end - dt.timedelta(days=i)).isoformat() for i in range(1, HISTORY_DAYS + 1)]
    known = [counts[d] for d in before if d in counts]
    return sum(known) / len(known) if known else 0.0


def _compared_runs(
    instance: dg.DagsterInstance, asset: dg.AssetKey
) -> tuple[dg.EventLogRecord | None, dg.EventLogRecord | None]:
    """The newest materialization (this run's, when it materialized the asset) and the newest
    of an earlier run. A range run records one materialization per day: all of them are
    skipped, however many, so a run is never compared with itself."""
    current: dg.EventLogRecord | None = None
    cursor = None
    while True:
        page = instance.fetch_materializations(asset, limit=PAGE, cursor=cursor)
        for record in page.records:
            if current is None:
                current = record
            elif record.run_id != current.run_id:
                return current, record
        if not page.has_more:
            return current, None
        cursor = page.cursor


def _schemas(record: dg.EventLogRecord) -> dict[str, dict[str, str]] | None:
    """Table -> column -> type, from a materialization's ``bizagi/tables``; None if it has none
    (written before tables carried their columns)."""
    materialization = record.asset_materialization
    value = materialization.metadata.get("bizagi/tables") if materialization else None
    tables = getattr(value, "value", None)
    if not isinstance(tables, dict):
        return None
    if not all(isinstance(t, dict) and isinstance(t.get("columns"), dict) for t in tables.values()):
        return None
    return {name: dict(t["columns"]) for name, t in tables.items()}


def _drift(
    now: dict[str, dict[str, str]], before: dict[str, dict[str, str]]
) -> dict[str, list[str]]:
    """Tables and columns added or removed, and columns whose type changed (``table.column``)."""
    common = set(now) & set(before)
    added = [f"{t}.{c}" for t in common for c in now[t] if c not in before[t]]
    removed = [f"{t}.{c}" for t in common for c in before[t] if c not in now[t]]
    changed = [
        f"{t}.{c}: {before[t][c]} -> {now[t][c]}"
        for t in common
        for c in now[t]
        if c in before[t] and now[t][c] != before[t][c]
    ]
    return {
        "added": sorted(added),
        "removed": sorted(removed),
        "type_changed": sorted(changed),
        "added_tables": sorted(set(now) - set(before)),
        "removed_tables": sorted(set(before) - set(now)),
    }


@dg.definitions
def checks() -> dg.Definitions:
    return dg.Definitions(
        asset_checks=[check for stream in streams() for check in stream_checks(stream)]
    )
