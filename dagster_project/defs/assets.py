"""Assets and checks for every stream of the catalog (built-ins and BIZAGI_STREAMS_FILE)."""

import dagster as dg

from dagster_project.checks import all_checks
from dagster_project.factory import orchestrated_streams, stream_assets
from dagster_project.views import bizagi_views


@dg.definitions
def assets() -> dg.Definitions:
    built = [a for stream in orchestrated_streams() for a in stream_assets(stream)]
    return dg.Definitions(assets=[*built, bizagi_views], asset_checks=all_checks())
