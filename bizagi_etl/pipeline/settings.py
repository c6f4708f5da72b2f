"""Where a run lands and what it covers: the lake, the warehouse, the streams file, the start.

The CLI, scripts and the Dagster code location all read these the same way (the connector's
one parser), so ``BIZAGI_LAKE=...`` means the same everywhere and a bad value names its
variable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bizagi_etl.connector import SettingsError, env_values

# DuckDB's buffer pool defaults to 80 % of the machine's memory, so a backfill's load grew with
# its rows (+250 MB from 100k to 1M cases). Capped, it spills to disk instead: loading 1M cases
# and their 6.7M parameters peaked at 281 MB with 128MB and 229 MB with 64MB, in 3.5 s both
# (32MB: 200 MB, 4.3 s). BIZAGI_DUCKDB_MEMORY_LIMIT changes it.
DEFAULT_MEMORY_LIMIT = "64MB"
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
}


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    lake: Path = Path("bizagi-data/lake")  # the Parquet lake's folder
    warehouse: Path = Path("bizagi-data/warehouse.duckdb")  # the DuckDB file
    duckdb_memory_limit: str = (
        DEFAULT_MEMORY_LIMIT  # DuckDB's memory while loading; beyond it, it spills
    )
    streams_file: Path | None = None  # the user's own streams (TOML)
    start_date: dt.date = dt.date(2024, 1, 1)  # first day of the daily partitions (UTC)
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT  # seconds to wait for another run's lock

    def __post_init__(self) -> None:
        if not self.lock_timeout >= 0:  # also refuses NaN
            raise SettingsError(
                f"setting 'lock_timeout' (BIZAGI_LOCK_TIMEOUT): expected seconds >= 0, "
                f"got {self.lock_timeout!r}"
            )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> PipelineSettings:
        """Settings from ``BIZAGI_*`` variables; keyword overrides that are not None win."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(**{**env_values(cls, PIPELINE_ENV_VARS, environ), **given})
