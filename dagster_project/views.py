"""The sql/ views as assets downstream of the warehouse tables."""

from collections.abc import Iterator

import dagster as dg

from bizagi_etl.pipeline import refresh_views
from dagster_project.factory import OWNERS, catalog, load_key, orchestrated_streams
from dagster_project.resources import LakehouseResource

# view -> the streams whose tables it reads
VIEWS = {
    "cases_per_process_day": ("cases",),
    "case_sla": ("cases",),
    "open_workitems": ("inbox",),
}


def view_specs() -> list[dg.AssetSpec]:
    streams = {s.name: s for s in orchestrated_streams()}
    specs = [
        dg.AssetSpec(
            key=dg.AssetKey(["bizagi", "analytics", view]),
            deps=[load_key(streams[name]) for name in sources],
            description=f"analytics.{view} (sql/)",
            group_name="bizagi_analytics",
            kinds={"duckdb", "sql"},
            owners=OWNERS,
        )
        for view, sources in VIEWS.items()
    ]
    snapshots = [s for s in streams.values() if s.partitioning != "daily"]
    specs.append(
        dg.AssetSpec(
            key=dg.AssetKey(["bizagi", "analytics", "latest_snapshots"]),
            deps=[load_key(s) for s in snapshots],
            description="analytics.latest_<table>: the newest row per key of every snapshot table",
            group_name="bizagi_analytics",
            kinds={"duckdb", "sql"},
            owners=OWNERS,
        )
    )
    return specs


@dg.multi_asset(specs=view_specs(), pool="duckdb", can_subset=False, name="bizagi_views")
def bizagi_views(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> Iterator[dg.MaterializeResult]:
    """Apply sql/ in file-name order and the latest_* views of every snapshot table."""
    with lakehouse.warehouse() as warehouse:
        applied = refresh_views(warehouse, catalog().all())
        for table in warehouse.tables():
            if table.startswith("entity_"):
                applied.append(warehouse.create_latest_view(table, ["id"]))
    context.log.info(f"applied {', '.join(applied)}")
    for spec in view_specs():
        yield dg.MaterializeResult(asset_key=spec.key, metadata={"bizagi/applied": applied})
