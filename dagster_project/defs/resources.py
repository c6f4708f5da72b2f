"""Resources: the only place Dagster learns about Bizagi, and where the lake and warehouse are.

Both are built from the library's own settings objects and environment parser
(``BizagiSettings``, ``PipelineSettings``), so every ``BIZAGI_*`` variable means here what it
means to the CLI, with the same defaults; a bad value fails definition loading with the CLI's
message, naming the variable. The three credentials stay ``EnvVar``s, read when a run starts,
so the secret never enters run config, metadata or the UI.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from bizagi_etl.connector import ENV_VARS, BizagiClient, BizagiSettings, env_values
from bizagi_etl.pipeline import Lake, PipelineSettings, Warehouse, open_lake

__all__ = [
    "BizagiResource",
    "LakehouseResource",
    "bizagi_from_env",
    "lakehouse_from_env",
    "resources",
]

# the library's defaults, so the resource and the CLI never disagree
_BIZAGI: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(BizagiSettings)}
_PIPELINE: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(PipelineSettings)}
CREDENTIALS = ("base_url", "client_id", "client_secret")


class BizagiResource(dg.ConfigurableResource):
    """A Bizagi project reached with OAuth2 client credentials: every field of
    ``bizagi_etl.connector.BizagiSettings``, validated by it. One thread-safe client is created
    per process on first use."""

    base_url: str = Field(description="Project URL, e.g. https://dev-acme-corp.bizagi.com")
    client_id: str = Field(description="OAuth2 application client id")
    client_secret: str = Field(description="OAuth2 application secret (use EnvVar)", repr=False)
    token_url: str = Field(default=_BIZAGI["token_url"],
                           description="Default: {base_url}/oauth2/server/token")  # fmt: skip
    scope: str = _BIZAGI["scope"]
    auth_method: str = _BIZAGI["auth_method"]
    page_size: int | None = Field(
        default=_BIZAGI["page_size"],
        description="$top per page; unset: automatic (1000, halved while pages are slow); "
        "0: the server pages",
    )
    max_pages: int = _BIZAGI["max_pages"]
    max_concurrency: int = _BIZAGI["max_concurrency"]
    connect_timeout: float = _BIZAGI["connect_timeout"]
    read_timeout: float = _BIZAGI["read_timeout"]
    max_retries: int = _BIZAGI["max_retries"]
    retry_budget: float = _BIZAGI["retry_budget"]
    request_deadline: float = Field(
        default=_BIZAGI["request_deadline"],
        description="Seconds one attempt may take: connect, headers and body together",
    )
    max_response_bytes: int = Field(
        default=_BIZAGI["max_response_bytes"],
        description="Largest answer read (decoded bytes); beyond it the request fails",
    )
    max_backoff: float = _BIZAGI["max_backoff"]
    verify_tls: bool = _BIZAGI["verify_tls"]
    ca_bundle: str | None = None
    allow_http: bool = _BIZAGI["allow_http"]
    filter_encoding: str = Field(
        default=_BIZAGI["filter_encoding"],
        description="'bizagi' ($filter decoded twice) or 'standard' (decoded once)",
    )

    _client: BizagiClient | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def settings(self) -> BizagiSettings:
        values = {name: getattr(self, name) for name in _BIZAGI}
        values["ca_bundle"] = Path(self.ca_bundle) if self.ca_bundle else None
        return BizagiSettings(**values)

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
    """Where extracted data lands: the Parquet lake and the warehouse."""

    lake_root: str = Field(
        default=str(_PIPELINE["lake"]), description="Lake folder, or s3://bucket/prefix"
    )
    warehouse_path: str = Field(
        default=str(_PIPELINE["warehouse"]),
        description="DuckDB file, or ducklake:postgres:<libpq string> / ducklake:<file>",
    )
    warehouse_data: str | None = Field(
        default=None, description="A DuckLake's data files: s3://bucket/prefix/ or a folder"
    )
    duckdb_memory_limit: str | None = Field(
        default=None,
        description="DuckDB's memory while loading (e.g. '128MB', '2GB'; default 64MB for a "
        "DuckDB file, 256MB for a DuckLake); beyond it, it spills",
    )
    lock_timeout: float = Field(
        default=_PIPELINE["lock_timeout"],
        description="Seconds to wait for another run's lock on a lake table or the warehouse",
    )

    def lake(self) -> Lake:
        return open_lake(self.lake_root, lock_timeout=self.lock_timeout)

    def warehouse(self) -> Warehouse:
        """Open the warehouse; callers close it (a DuckDB file takes one writer: pool
        "duckdb"; a DuckLake takes many)."""
        return Warehouse(self.warehouse_path, memory_limit=self.duckdb_memory_limit,
                         data=self.warehouse_data, lock_timeout=self.lock_timeout)  # fmt: skip


def bizagi_from_env(environ: dict[str, str] | None = None) -> BizagiResource:
    """The resource from ``BIZAGI_*``: every value set is parsed now (a bad one fails loading,
    named); with the credentials present, the whole settings object is validated now too."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = env_values(BizagiSettings, ENV_VARS, env)
    if all(env.get(ENV_VARS[name]) for name in CREDENTIALS):
        BizagiSettings.from_env(env)  # the CLI's validation, and its messages
    for name in CREDENTIALS:
        values[name] = dg.EnvVar(ENV_VARS[name])
    if values.get("ca_bundle") is not None:
        values["ca_bundle"] = str(values["ca_bundle"])
    return BizagiResource(**values)


def lakehouse_from_env(environ: dict[str, str] | None = None) -> LakehouseResource:
    settings = PipelineSettings.from_env(environ)
    return LakehouseResource(
        lake_root=settings.lake,
        warehouse_path=settings.warehouse,
        warehouse_data=settings.warehouse_data,
        duckdb_memory_limit=settings.duckdb_memory_limit,
        lock_timeout=settings.lock_timeout,
    )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={"bizagi": bizagi_from_env(), "lakehouse": lakehouse_from_env()}
    )
