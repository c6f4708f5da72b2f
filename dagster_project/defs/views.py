"""The sql/ views as assets downstream of the warehouse tables.

Each view asset reports what it answers after the refresh, queried from DuckDB:
``dagster/table_name``, ``dagster/row_count`` and ``dagster/column_schema``. ``latest_snapshots``
stands for many views (``analytics.latest_<table>`` of every snapshot table): it lists each in
``bizagi/views`` (rows and columns) and, having no one table, gives no table name or column
schema; its ``dagster/row_count`` is the sum over those views.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from bizagi_etl.pipeline import SNAPSHOT, Stream, Warehouse, refresh_views
from bizagi_etl.pipeline import VIEWS as ANALYTICS
from dagster_project.defs.assets import column_schema
from dagster_project.defs.resources import LakehouseResource
from dagster_project.translator import streams, view_args, warehouse_pool

__all__ = ["LATEST", "VIEWS", "view_specs", "views"]

# view -> the streams whose tables it reads, and what it is
VIEWS = {
    "cases_per_process_day": (("cases",), "analytics.cases_per_process_day (sql/)"),
    "case_sla": (("cases",), "analytics.case_sla (sql/)"),
    "open_workitems": (("inbox",), "analytics.open_workitems (sql/)"),
}
LATEST = "latest_snapshots"


def _snapshot_streams() -> list[Stream]:
    return [s for s in streams() if s.partitioning == SNAPSHOT]


def view_specs() -> list[dg.AssetSpec]:
    by_name = {s.name: s for s in streams()}
    specs = [
        dg.AssetSpec(**view_args(view, about, [by_name[name] for name in sources]))
        for view, (sources, about) in VIEWS.items()
    ]
    about = "analytics.latest_<table>: the newest row per key of every snapshot table"
    specs.append(dg.AssetSpec(**view_args(LATEST, about, _snapshot_streams())))
    return specs


def _view(warehouse: Warehouse, view: str) -> dict[str, Any]:
    """Rows and columns (name -> type) of one analytics view."""
    columns = warehouse.columns(view, schema=ANALYTICS)
    return {"rows": warehouse.count(view, schema=ANALYTICS), "columns": columns}


def _latest_views(warehouse: Warehouse) -> list[str]:
    """The ``latest_<table>`` views present for the tables of the snapshot streams."""
    present = set(warehouse.views())
    tables = set(warehouse.tables())
    wanted = {f"latest_{t}" for s in _snapshot_streams() for t, _ in s.tables_among(tables)}
    return sorted(wanted & present)


def view_metadata(warehouse: Warehouse, view: str) -> dict[str, Any]:
    """The metadata of one view asset, ``latest_snapshots`` included."""
    if view != LATEST:
        found = _view(warehouse, view)
        return {
            "dagster/table_name": f"{ANALYTICS}.{view}",
            "dagster/row_count": found["rows"],
            "dagster/column_schema": column_schema(found["columns"]),
        }
    each = {f"{ANALYTICS}.{v}": _view(warehouse, v) for v in _latest_views(warehouse)}
    return {
        "dagster/row_count": sum(v["rows"] for v in each.values()),
        "bizagi/views": each,
    }


def bizagi_views() -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=view_specs(), pool=warehouse_pool(), can_subset=False, name="bizagi_views"
    )
    def apply_views(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource
    ) -> Iterator[dg.MaterializeResult]:
        """Apply sql/ in file-name order and the latest_* views of every snapshot table."""
        with lakehouse.warehouse() as warehouse:
            applied = refresh_views(warehouse, streams())
            context.log.info(f"applied {', '.join(applied)}")
            metadata = {
                spec.key: view_metadata(warehouse, spec.key.path[-1]) for spec in view_specs()
            }
        for key, found in metadata.items():
            yield dg.MaterializeResult(asset_key=key, metadata={**found, "bizagi/applied": applied})

    return apply_views


@dg.definitions
def views() -> dg.Definitions:
    return dg.Definitions(assets=[bizagi_views()])
