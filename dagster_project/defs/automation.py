"""Jobs and schedules."""

import dagster as dg

from dagster_project.automation import daily_job, schedules, snapshot_job


@dg.definitions
def automation() -> dg.Definitions:
    daily, snapshots = daily_job(), snapshot_job()
    return dg.Definitions(jobs=[daily, snapshots], schedules=schedules(daily, snapshots))
