"""The sql/ views as assets downstream of the warehouse tables."""

from collections.abc import Iterator

import dagster as dg

from bizagi_etl.pipeline import SNAPSHOT, refresh_views
from dagster_project.defs.resources import LakehouseResource
from dagster_project.translator import streams, view_args

__all__ = ["VIEWS", "view_specs", "views"]

# view -> the streams whose tables it reads, and what it is
VIEWS = {
    "cases_per_process_day": (("cases",), "analytics.cases_per_process_day (sql/)"),
    "case_sla": (("cases",), "analytics.case_sla (sql/)"),
    "open_workitems": (("inbox",), "analytics.open_workitems (sql/)"),
}


def view_specs() -> list[dg.AssetSpec]:
    by_name = {s.name: s for s in streams()}
    specs = [
        dg.AssetSpec(**view_args(view, about, [by_name[name] for name in sources]))
        for view, (sources, about) in VIEWS.items()
    ]
    snapshots = [s for s in by_name.values() if s.partitioning == SNAPSHOT]
    about = "analytics.latest_<table>: the newest row per key of every snapshot table"
    specs.append(dg.AssetSpec(**view_args("latest_snapshots", about, snapshots)))
    return specs


def bizagi_views() -> dg.AssetsDefinition:
    @dg.multi_asset(specs=view_specs(), pool="duckdb", can_subset=False, name="bizagi_views")
    def apply_views(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource
    ) -> Iterator[dg.MaterializeResult]:
        """Apply sql/ in file-name order and the latest_* views of every snapshot table."""
        with lakehouse.warehouse() as warehouse:
            applied = refresh_views(warehouse, streams())
        context.log.info(f"applied {', '.join(applied)}")
        for spec in view_specs():
            yield dg.MaterializeResult(asset_key=spec.key, metadata={"bizagi/applied": applied})

    return apply_views


@dg.definitions
def views() -> dg.Definitions:
    return dg.Definitions(assets=[bizagi_views()])
