"""Where a run lands and what it covers: the lake, the warehouse, the streams file, the start.

The CLI, scripts and the Dagster code location all read these the same way (the connector's
one parser), so ``BIZAGI_LAKE=...`` means the same everywhere and a bad value names its
variable.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bizagi_etl.connector.errors import SettingsError
from bizagi_etl.connector.settings import env_values

# DuckDB's buffer pool defaults to 80 % of the machine's memory, so a backfill's load grew with
# its rows (+250 MB from 100k to 1M cases). Capped, it spills to disk instead: loading 1M cases
# and their 6.7M parameters peaked at 281 MB with 128MB and 229 MB with 64MB, in 3.5 s both
# (32MB: 200 MB, 4.3 s). BIZAGI_DUCKDB_MEMORY_LIMIT changes it.
DEFAULT_MEMORY_LIMIT = "64MB"
# A DuckLake's tables are Parquet files read from object storage, so a query's sort or window
# holds what a DuckDB file would page from its own blocks: latest_entity_product (100k rows,
# a window and ORDER BY ALL) failed at 64MB and ran at 128MB. A DuckLake is for machines that
# outgrew a laptop, so its default is larger.
DUCKLAKE_MEMORY_LIMIT = "256MB"
# Seconds a run waits for what another run holds (a lake table being swept, the warehouse file,
# an analyst's DuckDB session on it) before giving up with a LockError naming the holder.
DEFAULT_LOCK_TIMEOUT = 300.0

# setting name -> environment variable
PIPELINE_ENV_VARS = {
    "lake": "BIZAGI_LAKE",
    "warehouse": "BIZAGI_WAREHOUSE",
    "duckdb_memory_limit": "BIZAGI_DUCKDB_MEMORY_LIMIT",
    "streams_file": "BIZAGI_STREAMS_FILE",
    "start_date": "BIZAGI_START_DATE",
    "lock_timeout": "BIZAGI_LOCK_TIMEOUT",
    "warehouse_data": "BIZAGI_WAREHOUSE_DATA",
    "backfill_run_days": "BIZAGI_BACKFILL_RUN_DAYS",
}
DUCKLAKE = "ducklake:"  # the prefix of a warehouse location that is a DuckLake
SHARED_CATALOGS = ("ducklake:postgres:",)  # catalogs many processes write (the one tested)
# Days a Dagster backfill run covers when the warehouse takes many writers (a DuckLake on a
# database server): a month's runs land side by side; a DuckDB file takes one writer, so its
# backfill is one run.
SHARED_BACKFILL_RUN_DAYS = 31


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    # The Parquet lake: a folder, or object storage (s3://bucket/prefix, gs://..., abfs://...)
    lake: str = "bizagi-data/lake"
    # A DuckDB file, or a DuckLake: ducklake:postgres:<libpq connection string>, ducklake:<file>
    warehouse: str = "bizagi-data/warehouse.duckdb"
    # DuckDB's memory while loading; beyond it, it spills (default: 64MB for a DuckDB file,
    # 256MB for a DuckLake)
    duckdb_memory_limit: str | None = None
    streams_file: Path | None = None  # the user's own streams (TOML)
    start_date: dt.date = dt.date(2024, 1, 1)  # first day of the daily partitions (UTC)
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT  # seconds to wait for another run's lock
    # A DuckLake's data files: s3://bucket/prefix/ or a folder (default: next to a file catalog)
    warehouse_data: str | None = None
    # Days per run of a Dagster backfill (default: one run; 31 for a DuckLake on PostgreSQL)
    backfill_run_days: int | None = None

    def __post_init__(self) -> None:
        if not self.lock_timeout >= 0:  # also refuses NaN
            raise SettingsError(
                f"setting 'lock_timeout' (BIZAGI_LOCK_TIMEOUT): expected seconds >= 0, "
                f"got {self.lock_timeout!r}"
            )
        check_lake(self.lake)
        check_warehouse(self.warehouse)
        if self.backfill_run_days is not None and self.backfill_run_days < 1:
            raise SettingsError(
                f"setting 'backfill_run_days' (BIZAGI_BACKFILL_RUN_DAYS): expected a whole "
                f"number of days >= 1, got {self.backfill_run_days!r}"
            )

    @property
    def shared_warehouse(self) -> bool:
        """The warehouse takes many writers at once: a DuckLake whose catalog is a database
        server. A DuckDB file, or a DuckLake catalog in a file, takes one process at a time."""
        return self.warehouse.startswith(SHARED_CATALOGS)

    @property
    def run_days(self) -> int | None:
        """Days per Dagster backfill run; None: the whole backfill is one run."""
        if self.backfill_run_days is not None:
            return self.backfill_run_days
        return SHARED_BACKFILL_RUN_DAYS if self.shared_warehouse else None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> PipelineSettings:
        """Settings from ``BIZAGI_*`` variables; keyword overrides that are not None win."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(**{**env_values(cls, PIPELINE_ENV_VARS, environ), **given})


_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def shown(location: str) -> str:
    """A location fit for logs and errors: a password in a connection string is masked."""
    return _URL_PASSWORD.sub(r"\1***@", _PASSWORD.sub(r"\1***", location))


def check_lake(location: str) -> None:
    """A lake on object storage is ``scheme://bucket/prefix``: credentials and options come
    from the environment, never from the location, which logs and metadata show."""
    if "://" not in location:
        return
    parts = urlsplit(location)
    if parts.password is not None or parts.query or parts.fragment:
        raise SettingsError(
            "setting 'lake' (BIZAGI_LAKE): expected scheme://bucket/prefix with nothing "
            "else; credentials and options come from the environment (AWS_ACCESS_KEY_ID, "
            "AWS_ENDPOINT_URL...), never from the location, which logs and metadata show"
        )


def check_warehouse(location: str) -> None:
    """A DuckLake's catalog string carries no password: libpq reads it from elsewhere."""
    if shown(location) != location:
        raise SettingsError(
            f"setting 'warehouse' (BIZAGI_WAREHOUSE): {shown(location)} carries a password, "
            f"which every log and Dagster's UI would show; give it to libpq instead: "
            f"PGPASSWORD, ~/.pgpass or a service file (PGSERVICE)"
        )
