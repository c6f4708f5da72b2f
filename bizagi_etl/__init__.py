"""bizagi-etl: land a Bizagi project's OData API in Parquet and DuckDB.

Three packages, imports flowing one way (emulator -> connector <- pipeline):

- ``bizagi_etl.connector``: settings, OAuth2, the HTTP client, OData and paging;
- ``bizagi_etl.pipeline``: streams, typed frames, the lake, the warehouse and runs;
- ``bizagi_etl.emulator``: a faithful local Bizagi for demos, tests and benchmarks.

The connector's API is also offered here:

    from bizagi_etl import BizagiClient, BizagiSettings, iter_rows

    with BizagiClient(BizagiSettings.from_env()) as client:
        for process in iter_rows(client, "odata/data/processes"):
            print(process["name"])
"""

from typing import TYPE_CHECKING

from bizagi_etl.lazy import lazy_exports

__version__ = "0.1.0"

_CONNECTOR = (
    "AuthError", "BizagiClient", "BizagiError", "BizagiSettings", "ClientError",
    "HTTPStatusError", "Page", "PagingError", "QueryStats", "RequestStats", "ResponseError",
    "SchemaError", "Secret", "ServerError", "SettingsError", "TransportError", "WarehouseError",
    "iter_pages", "iter_rows",
)  # fmt: skip
__all__ = ["__version__", *_CONNECTOR]
__getattr__ = lazy_exports(__name__, dict.fromkeys(_CONNECTOR, "bizagi_etl.connector"))

if TYPE_CHECKING:
    from bizagi_etl.connector import (
        AuthError,
        BizagiClient,
        BizagiError,
        BizagiSettings,
        ClientError,
        HTTPStatusError,
        Page,
        PagingError,
        QueryStats,
        RequestStats,
        ResponseError,
        SchemaError,
        Secret,
        ServerError,
        SettingsError,
        TransportError,
        WarehouseError,
        iter_pages,
        iter_rows,
    )
