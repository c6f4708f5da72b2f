"""Resources: the only place Dagster learns about Bizagi, and where the lake and warehouse are."""

import threading
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from bizagi_etl.connector import BizagiClient, BizagiSettings, Secret
from bizagi_etl.pipeline import DEFAULT_MEMORY_LIMIT, Lake, Warehouse


class BizagiResource(dg.ConfigurableResource):
    """A Bizagi project reached with OAuth2 client credentials (see bizagi_etl.connector.settings).

    Give secrets as ``dg.EnvVar("BIZAGI_CLIENT_SECRET")``: the value then never enters run
    config, metadata or the UI. One thread-safe client is created per process on first use.
    """

    base_url: str = Field(description="Project URL, e.g. https://dev-acme-corp.bizagi.com")
    client_id: str = Field(description="OAuth2 application client id")
    client_secret: str = Field(description="OAuth2 application secret (use EnvVar)", repr=False)
    token_url: str = Field(default="", description="Default: {base_url}/oauth2/server/token")
    scope: str = "api"
    auth_method: str = "client_secret_basic"
    page_size: int = 100
    max_pages: int = 100_000
    max_concurrency: int = 4
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 8
    retry_budget: float = 300.0
    max_backoff: float = 30.0
    verify_tls: bool = True
    ca_bundle: str | None = None
    allow_http: bool = False

    _client: BizagiClient | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def settings(self) -> BizagiSettings:
        return BizagiSettings(
            base_url=self.base_url,
            client_id=self.client_id,
            client_secret=Secret(self.client_secret),
            token_url=self.token_url,
            scope=self.scope,
            auth_method=self.auth_method,
            page_size=self.page_size,
            max_pages=self.max_pages,
            max_concurrency=self.max_concurrency,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_retries=self.max_retries,
            retry_budget=self.retry_budget,
            max_backoff=self.max_backoff,
            verify_tls=self.verify_tls,
            ca_bundle=Path(self.ca_bundle) if self.ca_bundle else None,
            allow_http=self.allow_http,
        )

    def client(self) -> BizagiClient:
        """The process's client, created on first use and shared by every thread."""
        with self._lock:
            if self._client is None:
                self._client = BizagiClient(self.settings())
            return self._client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class LakehouseResource(dg.ConfigurableResource):
    """Where extracted data lands: the Parquet lake and the DuckDB file."""

    lake_root: str = Field(default="bizagi-data/lake", description="Lake folder")
    warehouse_path: str = Field(default="bizagi-data/warehouse.duckdb", description="DuckDB file")
    duckdb_memory_limit: str = Field(
        default=DEFAULT_MEMORY_LIMIT,
        description="DuckDB's memory while loading (e.g. '128MB', '2GB'); beyond it, it spills",
    )

    def lake(self) -> Lake:
        return Lake(Path(self.lake_root))

    def warehouse(self) -> Warehouse:
        """Open the warehouse; callers close it (DuckDB allows one writer: pool "duckdb")."""
        return Warehouse(Path(self.warehouse_path), memory_limit=self.duckdb_memory_limit)
