"""Jobs and schedules: daily partitions early each morning (UTC), snapshots and views after.

The daily schedule syncs: its run's partitions are the days from the last one landed (read
again: it was the newest then) to the last complete day, and each daily asset brings the
days before them to the source's current state too (``bizagi_etl.pipeline.sync``: cases that
closed, changed or vanished), recording those days as materializations of the same run. With
nothing landed yet, the run is the last complete day; a backfill lands the history.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import dagster as dg

from bizagi_etl.pipeline import Lake
from dagster_project.defs.resources import LakehouseResource
from dagster_project.defs.views import view_specs
from dagster_project.translator import (
    DAILY_PARTITIONS,
    LAKE,
    RANGE_END,
    RANGE_START,
    SYNC_AT,
    WAREHOUSE,
    asset_key,
    is_daily,
    streams,
)

__all__ = ["daily_job", "schedules", "snapshot_job", "sync_window"]

if TYPE_CHECKING:  # the job type define_asset_job returns is not exported by dagster
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def daily_job() -> UnresolvedAssetJobDefinition:
    keys = [asset_key(s, layer) for s in streams() if is_daily(s) for layer in (LAKE, WAREHOUSE)]
    return dg.define_asset_job(
        "bizagi_daily",
        selection=dg.AssetSelection.assets(*keys),
        description="Daily streams for one day (or a range, in one run): API -> lake -> DuckDB",
    )


def snapshot_job() -> UnresolvedAssetJobDefinition:
    keys = [
        asset_key(s, layer) for s in streams() if not is_daily(s) for layer in (LAKE, WAREHOUSE)
    ]
    views = [spec.key for spec in view_specs()]
    return dg.define_asset_job(
        "bizagi_snapshots",
        selection=dg.AssetSelection.assets(*keys, *views),
        description="Snapshot streams, then the analytics views",
    )


def schedules(
    daily_job: UnresolvedAssetJobDefinition, snapshot_job: UnresolvedAssetJobDefinition
) -> list[dg.ScheduleDefinition]:
    @dg.schedule(
        job=daily_job,
        name="bizagi_daily_schedule",
        cron_schedule="30 1 * * *",
        execution_timezone="UTC",
        description="01:30 UTC: the new days of every daily stream, and the days that changed",
    )
    def daily(context: dg.ScheduleEvaluationContext, lakehouse: LakehouseResource) -> dg.RunRequest:
        tick = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        first, last = sync_window(lakehouse.lake(), tick)
        tags = {RANGE_START: first, RANGE_END: last, SYNC_AT: tick.astimezone(dt.UTC).isoformat()}
        return dg.RunRequest(run_key=f"sync-{last}", tags=tags)

    snapshots = dg.ScheduleDefinition(
        name="bizagi_snapshots_schedule",
        job=snapshot_job,
        cron_schedule="30 2 * * *",
        execution_timezone="UTC",
        description="02:30 UTC: today's snapshots, then the views",
    )
    return [daily, snapshots]


def sync_window(lake: Lake, tick: dt.datetime) -> tuple[str, str]:
    """First and last partition of a sync run at ``tick``: from the oldest of the daily
    streams' newest landed days to the last complete day, within the partitions."""
    last = tick.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    newest = [_newest_day(lake, s.name) for s in streams() if is_daily(s)]
    first = min((d for d in newest if d is not None), default=last)
    floor = DAILY_PARTITIONS.start.date()
    return max(min(first, last), floor).isoformat(), max(last, floor).isoformat()


def _newest_day(lake: Lake, table: str) -> dt.date | None:
    if not lake.has_table(table):
        return None
    days = [v for c, v in lake.partitions(table) if c == "day"]
    return dt.date.fromisoformat(days[-1]) if days else None


@dg.definitions
def automation() -> dg.Definitions:
    daily, snapshots = daily_job(), snapshot_job()
    return dg.Definitions(jobs=[daily, snapshots], schedules=schedules(daily, snapshots))
