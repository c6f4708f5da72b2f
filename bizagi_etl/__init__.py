"""bizagi-etl: land a Bizagi project's OData API in Parquet and DuckDB.

from bizagi_etl import BizagiClient, BizagiSettings, iter_rows

with BizagiClient(BizagiSettings.from_env()) as client:
    for process in iter_rows(client, "odata/data/processes"):
        print(process["name"])
"""

__version__ = "0.1.0"

from bizagi_etl.client import BizagiClient, RequestStats  # after __version__: client.py reads it
from bizagi_etl.errors import (
    AuthError,
    BizagiError,
    ClientError,
    HTTPStatusError,
    PagingError,
    ResponseError,
    SchemaError,
    ServerError,
    SettingsError,
    TransportError,
    WarehouseError,
)
from bizagi_etl.paging import Page, QueryStats, iter_pages, iter_rows
from bizagi_etl.settings import BizagiSettings, Secret

__all__ = [
    "AuthError",
    "BizagiClient",
    "BizagiError",
    "BizagiSettings",
    "ClientError",
    "HTTPStatusError",
    "Page",
    "PagingError",
    "QueryStats",
    "RequestStats",
    "ResponseError",
    "SchemaError",
    "Secret",
    "ServerError",
    "SettingsError",
    "TransportError",
    "WarehouseError",
    "__version__",
    "iter_pages",
    "iter_rows",
]
