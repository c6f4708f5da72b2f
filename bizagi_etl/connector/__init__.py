"""The connector: how to reach a Bizagi project (or any OData v4 service) and page its data.

Settings, OAuth2 client credentials, an HTTP client with retries and redaction, OData literals,
paging and the connection check. It knows nothing of files or tables; the pipeline and the
emulator build on it, never the reverse.

Names load on first use (PEP 562): a process that only loads a warehouse reads the errors
without importing httpx.
"""

import importlib
from typing import TYPE_CHECKING, Any

from bizagi_etl.lazy import lazy_exports

_EXPORTS = {
    "bizagi_etl.connector.check": ("CheckReport", "diagnose", "run_check"),
    "bizagi_etl.connector.client": ("BizagiClient", "RequestStats"),
    "bizagi_etl.connector.errors": (
        "AuthError", "BizagiError", "ClientError", "HTTPStatusError", "LockError",
        "PagingError", "ResponseError", "SchemaError", "ServerError", "SettingsError",
        "StorageError", "TransportError", "WarehouseError",
    ),
    "bizagi_etl.connector.metadata": (
        "EntityType", "Property", "ServiceMetadata", "entity_type_at", "fetch_metadata",
        "parse_csdl", "service_root",
    ),
    "bizagi_etl.connector.paging": (
        "AUTO_PAGE_SIZE", "Page", "QueryStats", "iter_pages", "iter_rows", "total_of",
    ),
    "bizagi_etl.connector.settings": ("ENV_VARS", "BizagiSettings", "Secret", "env_values"),
}  # fmt: skip
# ``odata`` is a submodule: ``from bizagi_etl.connector import odata`` imports it as such.
__all__ = sorted(["odata", *(name for names in _EXPORTS.values() for name in names)])
_exported = lazy_exports(__name__, {n: m for m, names in _EXPORTS.items() for n in names})


def __getattr__(name: str) -> Any:
    if name == "odata":  # a submodule, not a name of one
        return importlib.import_module(f"{__name__}.odata")
    return _exported(name)


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
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
