"""The connector: how to reach a Bizagi project (or any OData v4 service) and page its data.

Settings, OAuth2 client credentials, an HTTP client with retries and redaction, OData literals,
paging and the connection check. It knows nothing of files or tables; the pipeline and the
emulator build on it, never the reverse.
"""

from bizagi_etl.connector import odata
from bizagi_etl.connector.check import CheckReport, diagnose, run_check
from bizagi_etl.connector.client import BizagiClient, RequestStats
from bizagi_etl.connector.errors import (
    AuthError,
    BizagiError,
    ClientError,
    HTTPStatusError,
    LockError,
    PagingError,
    ResponseError,
    SchemaError,
    ServerError,
    SettingsError,
    StorageError,
    TransportError,
    WarehouseError,
)
from bizagi_etl.connector.metadata import (
    EntityType,
    Property,
    ServiceMetadata,
    entity_type_at,
    fetch_metadata,
    parse_csdl,
    service_root,
)
from bizagi_etl.connector.paging import (
    AUTO_PAGE_SIZE,
    Page,
    QueryStats,
    iter_pages,
    iter_rows,
    total_of,
)
from bizagi_etl.connector.settings import ENV_VARS, BizagiSettings, Secret, env_values

__all__ = [
    "AUTO_PAGE_SIZE",
    "ENV_VARS",
    "AuthError",
    "BizagiClient",
    "BizagiError",
    "BizagiSettings",
    "CheckReport",
    "ClientError",
    "EntityType",
    "HTTPStatusError",
    "LockError",
    "Page",
    "PagingError",
    "Property",
    "QueryStats",
    "RequestStats",
    "ResponseError",
    "SchemaError",
    "Secret",
    "ServerError",
    "ServiceMetadata",
    "SettingsError",
    "StorageError",
    "TransportError",
    "WarehouseError",
    "diagnose",
    "entity_type_at",
    "env_values",
    "fetch_metadata",
    "iter_pages",
    "iter_rows",
    "odata",
    "parse_csdl",
    "run_check",
    "service_root",
    "total_of",
]
