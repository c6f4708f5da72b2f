"""Resources from the environment: secrets through EnvVar, never in config or the UI."""

import os

import dagster as dg

from bizagi_etl.pipeline import DEFAULT_MEMORY_LIMIT
from dagster_project.resources import BizagiResource, LakehouseResource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "bizagi": BizagiResource(
                base_url=dg.EnvVar("BIZAGI_BASE_URL"),
                client_id=dg.EnvVar("BIZAGI_CLIENT_ID"),
                client_secret=dg.EnvVar("BIZAGI_CLIENT_SECRET"),
                token_url=os.environ.get("BIZAGI_TOKEN_URL", ""),
                scope=os.environ.get("BIZAGI_SCOPE", "api"),
                auth_method=os.environ.get("BIZAGI_AUTH_METHOD", "client_secret_basic"),
                page_size=int(os.environ.get("BIZAGI_PAGE_SIZE", "100")),
                max_concurrency=int(os.environ.get("BIZAGI_MAX_CONCURRENCY", "4")),
                allow_http=os.environ.get("BIZAGI_ALLOW_HTTP", "").lower() in ("1", "true", "yes"),
            ),
            "lakehouse": LakehouseResource(
                lake_root=os.environ.get("BIZAGI_LAKE", "bizagi-data/lake"),
                warehouse_path=os.environ.get("BIZAGI_WAREHOUSE", "bizagi-data/warehouse.duckdb"),
                duckdb_memory_limit=os.environ.get(
                    "BIZAGI_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT
                ),
            ),
        }
    )
