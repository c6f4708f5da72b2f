"""Jobs and schedules: daily partitions early each morning (UTC), snapshots and views after."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from dagster_project.defs.views import view_specs
from dagster_project.translator import (
    LAKE,
    WAREHOUSE,
    asset_key,
    is_daily,
    streams,
)

__all__ = ["daily_job", "schedules", "snapshot_job"]

if TYPE_CHECKING:  # the job type define_asset_job returns is not exported by dagster
    from dagster._core.definitions.partitions.partitioned_schedule import (
        UnresolvedPartitionedAssetScheduleDefinition,
    )
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
) -> list[dg.ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition]:
    daily = dg.build_schedule_from_partitioned_job(
        daily_job,
        name="bizagi_daily_schedule",
        hour_of_day=1,
        minute_of_hour=30,
        description="01:30 UTC: the last complete day of every daily stream",
    )
    snapshots = dg.ScheduleDefinition(
        name="bizagi_snapshots_schedule",
        job=snapshot_job,
        cron_schedule="30 2 * * *",
        execution_timezone="UTC",
        description="02:30 UTC: today's snapshots, then the views",
    )
    return [daily, snapshots]


@dg.definitions
def automation() -> dg.Definitions:
    daily, snapshots = daily_job(), snapshot_job()
    return dg.Definitions(jobs=[daily, snapshots], schedules=schedules(daily, snapshots))
