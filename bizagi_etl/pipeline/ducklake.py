"""DuckDB's side of scaling out: its extensions, object storage credentials, a DuckLake catalog.

The warehouse module opens a DuckLake through ``attach``; the two are the only modules that
import duckdb.

Extensions. ``httpfs`` (object storage), ``aws`` (the standard credential chain), ``postgres``
(a catalog in PostgreSQL) and ``ducklake`` are loaded when a location needs them. Each is
looked for in this order: already installed in DuckDB's extension folder; shipped as a PyPI
wheel (``duckdb-extension-<name>``, installed by ``pip install 'bizagi-etl[scale]'``, which
works offline); DuckDB's own ``INSTALL`` from its repository (needs the internet).

Credentials. An ``s3://`` location gets one DuckDB secret built from the standard chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, profiles, instance
roles), with ``AWS_ENDPOINT_URL`` for an S3-compatible store (MinIO, moto): path-style URLs, TLS
as its scheme says.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import duckdb

from bizagi_etl.connector.errors import SettingsError, WarehouseError
from bizagi_etl.pipeline import sql_literals as lit
from bizagi_etl.pipeline.settings import DUCKLAKE

T = TypeVar("T")

# extension -> the name DuckDB loads it by (the postgres wheel ships postgres_scanner)
_LOADED_AS = {"postgres": "postgres_scanner"}
OBJECT_SCHEMES = ("s3://", "s3a://", "gs://", "gcs://", "r2://", "az://", "abfss://")
CATALOG = "bizagi_warehouse"  # the name a DuckLake is attached as; views live inside it
_CONFLICT = (
    "Failed to commit DuckLake transaction",
    "write-write conflict",
    "Transaction conflict",
)


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Load one DuckDB extension: installed already, from its wheel, or from DuckDB's site."""
    loaded = _LOADED_AS.get(name, name)
    try:
        con.execute(f"LOAD {loaded}")
        return
    except duckdb.Error:
        pass
    try:
        from duckdb_extensions import import_extension

        _writable_extension_folder(con)
        import_extension(name, con=con)  # INSTALLs the wheel's file into DuckDB's folder
    except ImportError:
        _install_online(con, name)
    except duckdb.Error as exc:
        raise WarehouseError(
            f"DuckDB extension {name!r}: installing it from its wheel failed: {exc}; "
            f"reinstall with pip install 'bizagi-etl[scale]'"
        ) from None
    con.execute(f"LOAD {loaded}")


def _writable_extension_folder(con: duckdb.DuckDBPyConnection) -> None:
    """DuckDB installs extensions under ~/.duckdb; where that cannot be written (a service
    user's read-only home), into a folder of the temporary directory instead."""
    home = Path(os.environ["HOME"]) if os.environ.get("HOME") else None
    target = home / ".duckdb" if home is not None and (home / ".duckdb").exists() else home
    if target is not None and os.access(target, os.W_OK):
        return
    folder = Path(tempfile.gettempdir()) / f"bizagi-duckdb-extensions-{os.getuid()}"
    con.execute(f"SET extension_directory = {lit.string(str(folder))}")


def _install_online(con: duckdb.DuckDBPyConnection, name: str) -> None:
    try:
        con.execute(f"INSTALL {name}")
    except duckdb.Error as exc:
        raise WarehouseError(
            f"DuckDB extension {name!r} is needed here and is not installed; downloading it "
            f"failed ({exc}). Install the wheels that ship it offline: "
            f"pip install 'bizagi-etl[scale]' (duckdb-extension-{name})"
        ) from None


def is_object_store(location: str) -> bool:
    return location.lower().startswith(OBJECT_SCHEMES)


def use_object_store(con: duckdb.DuckDBPyConnection) -> None:
    """Let DuckDB read and write object storage with the standard credentials of S3."""
    env = os.environ
    load_extension(con, "httpfs")
    load_extension(con, "aws")
    options = ["TYPE s3", "PROVIDER credential_chain"]
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options.append(f"REGION {lit.string(region)}")
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        scheme, _, host = endpoint.rstrip("/").partition("://")
        if not host:
            raise SettingsError(
                f"AWS_ENDPOINT_URL: expected a URL such as http://127.0.0.1:9000, got {endpoint!r}"
            )
        use_ssl = "true" if scheme.lower() == "https" else "false"
        options += [
            f"ENDPOINT {lit.string(host)}",
            "URL_STYLE 'path'",
            f"USE_SSL {use_ssl}",
        ]
    con.execute(f"CREATE OR REPLACE SECRET bizagi_s3 ({', '.join(options)})")
    # An upload's part is its largest file over 10,000 parts: DuckDB's default 800GB made
    # each part buffer 80 MB, beyond the warehouse's memory limit. 100GB: 10 MB parts.
    con.execute("SET s3_uploader_max_filesize = '100GB'")


def attach(
    con: duckdb.DuckDBPyConnection, location: str, data: str | None, *, read_only: bool = False
) -> None:
    """Attach the DuckLake at ``ducklake:...`` as ``CATALOG`` and make it the default."""
    catalog = location.removeprefix(DUCKLAKE)
    if catalog.startswith("postgres:"):
        load_extension(con, "postgres")
    load_extension(con, "ducklake")
    if is_object_store(data or ""):
        use_object_store(con)
    options = ["DATA_INLINING_ROW_LIMIT 0"]  # rows in Parquet files, not in the catalog
    if data:
        options.append(f"DATA_PATH {lit.string(data)}")
    if read_only:
        options.append("READ_ONLY")
    con.execute(f"ATTACH {lit.string(location)} AS {CATALOG} ({', '.join(options)})")
    con.execute(f"USE {CATALOG}")


def is_conflict(exc: BaseException) -> bool:
    """Two writers committed to the same table at once, or created a new catalog at once: the
    later one may simply retry (the catalog is then there, made whole in one transaction)."""
    text = str(exc)
    if "Failed to initialize DuckLake" in text and "already exists" in text:
        return True
    return isinstance(exc, duckdb.TransactionException) and any(c in text for c in _CONFLICT)


def retrying(what: str, run: Callable[[], T], *, timeout: float, log: Callable[..., None]) -> T:
    """``run()`` again after a DuckLake commit conflict, with jittered exponential backoff,
    for up to ``timeout`` seconds; ``run`` must hold its own whole transaction."""
    deadline, pause, attempt = time.monotonic() + timeout, 0.05, 1
    while True:
        try:
            return run()
        except duckdb.Error as exc:
            if not is_conflict(exc) or time.monotonic() + pause > deadline:
                raise
            log("warehouse: %s: commit conflict with another writer (attempt %d); retrying in "
                "%.2f s", what, attempt, pause)  # fmt: skip
        time.sleep(pause)
        pause, attempt = min(pause * 2, 2.0) * random.uniform(0.75, 1.25), attempt + 1
