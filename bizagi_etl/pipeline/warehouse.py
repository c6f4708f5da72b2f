"""The DuckDB warehouse: one table per stream in schema ``bizagi``, views in ``analytics``.

A partition is loaded by deleting and inserting it in one transaction, straight from its
Parquet files with ``read_parquet``. New columns are added; a column whose type changes is
widened when that loses nothing (INTEGER to BIGINT, to DOUBLE, a larger DECIMAL) and otherwise
the load fails naming table, column, old and new type, with nothing already landed lost.
Identifiers are quoted and values written as quoted literals (``sql_literals``: binding any
parameter makes DuckDB's Python client import pandas, 46 MB). This is the only module importing
duckdb.

Storage. DuckDB lets one process write a database file, and no other process open it meanwhile,
not even read-only; it locks the file while a connection is open. Opening a warehouse another
run or an analyst's session (read-only included) holds open waits and retries up to
``lock_timeout`` seconds (``BIZAGI_LOCK_TIMEOUT``), then raises ``LockError`` naming the
holder's PID (and, on this host, its command line and start). Once open, the warehouse is this
process's until ``close``. A path that is a folder, lies under a file, or is a file that is not
a DuckDB database, a read-only place, a full disk (while loading, committing, or spilling to
``{path}.tmp``) raise ``StorageError``: the load's transaction is rolled back (a rollback that
cannot run, as after a failed COMMIT, never hides the first error) and every row that landed
before is intact.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import duckdb

from bizagi_etl.connector.errors import (
    LockError,
    SchemaError,
    SettingsError,
    StorageError,
    WarehouseError,
)
from bizagi_etl.pipeline import ducklake
from bizagi_etl.pipeline import sql_literals as lit
from bizagi_etl.pipeline.landing import declared_file
from bizagi_etl.pipeline.names import check_identifier
from bizagi_etl.pipeline.settings import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_MEMORY_LIMIT,
    DUCKLAKE,
    DUCKLAKE_MEMORY_LIMIT,
    check_warehouse,
    shown,
)
from bizagi_etl.pipeline.storage import check_folder, scratch_home, storage_error

if TYPE_CHECKING:  # a process that only loads does without pyarrow (see ensure_table)
    import pyarrow as pa

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA = "bizagi"
VIEWS = "analytics"
SQL_PACKAGE = "bizagi_etl.sql"  # the top-level sql/, shipped inside the package (pyproject.toml)

_ANY_NUMBER = ("DOUBLE", "HUGEINT")
_WIDER: dict[str, tuple[str, ...]] = {
    "TINYINT": ("SMALLINT", "INTEGER", "BIGINT", *_ANY_NUMBER),
    "UTINYINT": ("SMALLINT", "USMALLINT", "INTEGER", "UINTEGER", "BIGINT", *_ANY_NUMBER),
    "SMALLINT": ("INTEGER", "BIGINT", *_ANY_NUMBER),
    "USMALLINT": ("INTEGER", "UINTEGER", "BIGINT", *_ANY_NUMBER),
    "INTEGER": ("BIGINT", *_ANY_NUMBER),
    "UINTEGER": ("BIGINT", *_ANY_NUMBER),
    "BIGINT": ("HUGEINT",),  # not DOUBLE: 2**53 + 1 would not survive
    "FLOAT": ("DOUBLE",),
}
# The lake's folders look like hive partitions; their values are already in _partition.
_READ_OPTIONS = "union_by_name = true, hive_partitioning = false"
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
_LOCKED = "Could not set lock on file"
_HOLDER = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")
# What DuckDB says of the file system -> what it means, what to do (the first match wins).
_FREE = "free space on the disk holding it (DuckDB writes its log and spills there too) and rerun"
_ELSEWHERE = "set BIZAGI_WAREHOUSE to a DuckDB file in a folder this user can write"
_ANY_FILE = ("max_temp_directory_size", "No space left on device", "Disk quota exceeded")
_STORAGE_REASONS = {
    "max_temp_directory_size": (
        "the disk is full (beyond the memory limit DuckDB spills to a folder next to the file, "
        "and could not)",
        _FREE,
    ),
    "No space left on device": ("the disk is full", _FREE),
    "Disk quota exceeded": ("the disk quota is used up", _FREE),
    "Read-only file system": ("the file system is read-only", _ELSEWHERE),
    "Permission denied": ("permission denied", f"give this user write access, or {_ELSEWHERE}"),
    "Operation not permitted": ("operation not permitted", _ELSEWHERE),
    "Not a directory": ("a file stands where a folder should be", _ELSEWHERE),
    "No such file or directory": ("the file cannot be created there", _ELSEWHERE),
    "Is a directory": ("it is a folder, not a file", _ELSEWHERE),
    "not a valid DuckDB database file": (
        "the file is not a DuckDB database (it was left untouched)",
        "set BIZAGI_WAREHOUSE to a DuckDB file, or to a new path for one",
    ),
}


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def table_ref(table: str, schema: str = SCHEMA) -> str:
    return f"{quote(schema)}.{quote(_named(table, schema))}"


class Warehouse:
    """A DuckDB file, or a DuckLake (``ducklake:postgres:<libpq string>``, ``ducklake:<file>``)
    whose data files go to ``data`` (``s3://bucket/prefix/`` or a folder)."""

    def __init__(
        self,
        path: str | Path,
        sql_dir: Path | None = None,
        memory_limit: str | None = None,
        *,
        data: str | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.location = str(path)
        self.ducklake = self.location.startswith(DUCKLAKE)
        self.memory_limit = memory_limit or (
            DUCKLAKE_MEMORY_LIMIT if self.ducklake else DEFAULT_MEMORY_LIMIT
        )
        self.lock_timeout = lock_timeout
        self._temp_limit_stale = False  # see _measure_temp_limit
        self._object_store = False  # DuckDB's S3 secret made (object storage data or lake)
        self._file_cache = True  # DuckDB's external file cache (see _cache_reads)
        check_warehouse(self.location)
        self.name = shown(self.location)
        self.path = Path(self.location)  # the DuckDB file
        self.sql_dir: Traversable = sql_dir or resources.files(SQL_PACKAGE)
        if self.ducklake:
            self.con = self._connect(lambda: self._attach(data))
        else:
            self._prepare_path()
            self.con = self._connect(lambda: duckdb.connect(str(self.path)))
        try:
            self.con.execute(f"SET memory_limit = {lit.string(self.memory_limit)}")
        except (duckdb.Error, ValueError) as exc:
            self.con.close()
            raise SettingsError(
                f"warehouse {self.name}: memory limit {self.memory_limit!r} is not a size DuckDB "
                f"reads (expected e.g. '128MB' or '2GB'): {exc}"
            ) from None
        try:
            schemas = f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}; CREATE SCHEMA IF NOT EXISTS {VIEWS}"
            with self._writing("creating its schemas"):
                self._retry("creating its schemas", lambda: self.con.execute(schemas))
        except BaseException:
            self.con.close()
            raise

    def _attach(self, data: str | None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with the DuckLake attached as its default catalog."""
        con = duckdb.connect()
        try:
            spill = Path(tempfile.gettempdir()) / f"bizagi-duckdb-{os.getpid()}"
            con.execute(f"SET temp_directory = {lit.string(str(spill))}")  # not a .tmp in the cwd
            self._retry("attaching the DuckLake",
                        lambda: ducklake.attach(con, self.location, data))  # fmt: skip
            self._object_store = ducklake.is_object_store(data or "")  # its secret is made
        except duckdb.Error as exc:
            con.close()
            if _LOCKED in str(exc):  # a catalog in a file another process has open: wait
                raise
            raise WarehouseError(
                f"warehouse {self.name}: attaching the DuckLake failed: {shown(str(exc))}"
                f"; check BIZAGI_WAREHOUSE (ducklake:postgres:<libpq connection string> or "
                f"ducklake:<file>; a password goes in PGPASSWORD or ~/.pgpass, not here) and "
                f"BIZAGI_WAREHOUSE_DATA ({data or 'not set'})"
            ) from None
        except BaseException:
            con.close()
            raise
        return con

    def _retry(self, what: str, run: Callable[[], T]) -> T:
        """A DuckLake commit that conflicts with another writer's is run again; a DuckDB file
        has one writer, so nothing to retry."""
        if not self.ducklake:
            return run()
        return ducklake.retrying(what, run, timeout=self.lock_timeout, log=log.info)

    def _prepare_path(self) -> None:
        """A clear StorageError for a path that cannot be a DuckDB file, before DuckDB tries."""
        subject = f"warehouse {self.path}"
        if self.path.is_dir():
            raise StorageError(
                f"{subject}: it is a folder, not a DuckDB file; set BIZAGI_WAREHOUSE to a file "
                f"path, e.g. {self.path / 'warehouse.duckdb'}"
            )
        check_folder(self.path.parent, subject, "BIZAGI_WAREHOUSE", own=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(subject, "BIZAGI_WAREHOUSE", "creating its folder",
                                self.path.parent, exc) from None  # fmt: skip

    def _connect(
        self, opener: Callable[[], duckdb.DuckDBPyConnection]
    ) -> duckdb.DuckDBPyConnection:
        """Open the file (or a DuckLake whose catalog is a file), waiting up to
        ``lock_timeout`` while another process holds it."""
        deadline, pause, waited = time.monotonic() + self.lock_timeout, 0.02, False
        while True:
            try:
                return opener()
            except duckdb.Error as exc:
                message = str(exc)
                if _LOCKED not in message:
                    raise self._storage_error("opening it", exc, landing=False) or exc from None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LockError(
                        f"warehouse {self.name}: still held by {_holder(message)} after waiting "
                        f"{self.lock_timeout:g} s (BIZAGI_LOCK_TIMEOUT); DuckDB lets no other "
                        f"process open a file one has open, even read-only: wait for that run "
                        f"or close that session, then rerun (DuckDB: {message})"
                    ) from None
                if not waited:
                    log.info("warehouse: %s is held by %s; waiting up to %g s", self.name,
                             _holder(message), self.lock_timeout)  # fmt: skip
                    waited = True
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.5)

    def __repr__(self) -> str:
        return f"Warehouse({self.name!r})"

    def close(self) -> None:
        try:
            self.con.close()
        except duckdb.Error as exc:
            raise self._storage_error("closing it", exc, landing=False) or exc from None

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:  # the error that ends the block is the one to report
            self.close()
        except Exception as failed:
            log.warning("warehouse: closing %s after an error failed too: %s", self.name, failed)

    # -- loading -------------------------------------------------------------------------------

    def load_partition(
        self, table: str, partition: str, files: Sequence[str | Path], extracted_at: dt.datetime
    ) -> int:
        """Replace the rows of one partition with those of its Parquet files."""
        return self.load_partitions(table, [(partition, files)], extracted_at)

    def load_partitions(
        self,
        table: str,
        partitions: Sequence[tuple[str, Sequence[str | Path]]],
        extracted_at: dt.datetime,
    ) -> int:
        """Replace the rows of each partition with those of its files, in one transaction.

        Returns the rows the partitions hold afterwards.
        """
        pairs = [(str(f), value) for value, files in partitions for f in files]
        values = sorted({value for value, _ in partitions})
        if not values:
            return 0
        self._measure_temp_limit()
        remote = any(ducklake.is_object_store(f) for f, _ in pairs)
        if remote and not self._object_store:
            ducklake.use_object_store(self.con)  # a lake on object storage
            self._object_store = True
        self._cache_reads(remote)
        what = f"loading {len(values)} partitions of {table}"
        try:
            with self._threads_for(len(pairs), remote):
                rows = self._retry(what, lambda: self._replace(table, pairs, values, extracted_at))
        except duckdb.Error as exc:
            disk = self._storage_error(what, exc)
            if disk is not None:
                self._temp_limit_stale = "max_temp_directory_size" in str(exc)
                raise disk from None
            if isinstance(exc, duckdb.OutOfMemoryException):
                raise WarehouseError(
                    f"warehouse {self.name}: {what} needs more than the memory limit "
                    f"({self.memory_limit}; BIZAGI_DUCKDB_MEMORY_LIMIT); nothing of this load "
                    f"landed: {exc}"
                ) from None
            raise
        log.debug("warehouse: %s <- %d partitions, %d rows", table, len(values), rows)
        return rows

    def _replace(
        self, table: str, pairs: list[tuple[str, str]], values: list[str], extracted_at: dt.datetime
    ) -> int:
        """Delete the partitions' rows and insert their files' in one transaction; rolled back
        whole on any failure."""
        ref = table_ref(table)
        self.con.execute("BEGIN TRANSACTION")
        try:
            files = lit.strings(f for f, _ in pairs)
            self.con.execute(  # one statement: a row at a time costs 0.1 ms a row, 2,000 days
                f"CREATE OR REPLACE TEMP TABLE _load_files AS SELECT "
                f"unnest({files}) AS file, unnest({lit.strings(v for _, v in pairs)}) AS part"
            )
            self._evolve(table, self._parquet_columns(files))
            self.con.execute(
                f"DELETE FROM {ref} WHERE _partition IN (SELECT unnest({lit.strings(values)}))"
            )
            # The partitions' rows afterwards are the rows inserted (all others were deleted).
            # Counting them again in the transaction needed 128-256MB for 3M rows (DuckDB 1.5).
            row = self.con.execute(
                f"INSERT INTO {ref} BY NAME SELECT p.* EXCLUDE (_load_file), f.part AS _partition, "
                f"{lit.instant(extracted_at)} AS _extracted_at "
                f"FROM read_parquet({files}, {_READ_OPTIONS}, filename = '_load_file') p "
                f"JOIN _load_files f ON p._load_file = f.file"
            ).fetchone()
            self.con.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return int(row[0]) if row else 0

    def _cache_reads(self, remote: bool) -> None:
        """DuckDB keeps what it reads of files in memory (its external file cache). Worth it
        on object storage, where a load reads each footer twice (its columns, then its rows);
        not for local files, which the OS caches anyway: 21 MB less at a 1M-case load."""
        if remote != self._file_cache:
            self.con.execute(f"SET enable_external_file_cache = {str(remote).lower()}")
            self._file_cache = remote

    @contextmanager
    def _threads_for(self, files: int, remote: bool) -> Iterator[None]:
        """A load of one local file into a DuckDB file runs on one thread; others on DuckDB's
        usual number.

        Measured in fresh processes on two cores: a 200k-row snapshot's single file loaded in
        0.44 s at 196 MB peak on one thread against 0.59 s at 215 MB on two; 100k cases' 2,070
        files loaded in 1.6-1.8 s on two threads against 2.0 s on one. Not measured, so left
        as they were: files on object storage, where threads also hide the store's latency,
        and a DuckLake."""
        if files > 1 or remote or self.ducklake:
            yield
            return
        self.con.execute("SET threads = 1")
        try:
            yield
        finally:
            try:
                self.con.execute("RESET threads")
            except duckdb.Error as exc:  # a connection a failed load broke: its error counts
                log.debug("warehouse: could not reset threads after a load: %s", exc)

    def _rollback(self) -> None:
        """Undo a failed load. DuckDB may have ended the transaction already (a COMMIT that
        failed, e.g. on a full disk, leaves none): a rollback that cannot run must not hide
        why the load failed, so its own error is only logged."""
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error as exc:
            log.debug("warehouse: rollback after a failed load: %s", exc)

    def _measure_temp_limit(self) -> None:
        """After its temp folder's disk was full, DuckDB keeps the space it found then (a few
        KiB) as its limit for spilling: measured again before the next load, that load can
        spill once space is freed, without reopening the warehouse."""
        if self._temp_limit_stale:
            try:
                self.con.execute("RESET max_temp_directory_size")
                self._temp_limit_stale = False
            except duckdb.Error as failed:
                log.debug("warehouse: could not reset max_temp_directory_size: %s", failed)

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """DuckDB's file system errors while writing, as a StorageError; others unchanged."""
        try:
            yield
        except duckdb.Error as exc:
            raise self._storage_error(what, exc) or exc from None

    def _storage_error(
        self, what: str, exc: duckdb.Error, *, landing: bool = True
    ) -> StorageError | None:
        """A StorageError for what DuckDB says of the file system, or None for other errors."""
        message = str(exc)
        mine = str(self.path) in message  # not, say, a Parquet file of the lake
        found = [
            meaning
            for cause, meaning in _STORAGE_REASONS.items()
            if cause in message and (mine or cause in _ANY_FILE)
        ]
        if found:
            reason, todo = found[0]
        elif isinstance(exc, duckdb.FatalException):
            reason = "DuckDB stopped this connection after a fatal error"
            todo = "reopen the warehouse (DuckDB replays its log) and rerun"
        else:
            return None
        landed = "nothing of it landed, and what landed before is intact; " if landing else ""
        return StorageError(
            f"warehouse {self.name}: {what} failed: {reason}; {landed}{todo} (DuckDB: {message})"
        )

    def _parquet_columns(self, files: str) -> list[tuple[str, str]]:
        """Columns and DuckDB types of ``files``, a ``VARCHAR[]`` literal."""
        rows = self.con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({files}, {_READ_OPTIONS})"
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def _evolve(self, table: str, incoming: list[tuple[str, str]]) -> None:
        ref = table_ref(table)
        existing = self.columns(table)
        if not existing:
            columns = ", ".join(f"{quote(n)} {t}" for n, t in incoming)
            self.con.execute(
                f"CREATE TABLE {ref} ({columns}, _partition VARCHAR, _extracted_at TIMESTAMPTZ)"
            )
            return
        for name, new_type in incoming:
            old_type = existing.get(name)
            if old_type is None:
                log.info("warehouse: %s gains column %s %s", table, name, new_type)
                self.con.execute(f"ALTER TABLE {ref} ADD COLUMN {quote(name)} {new_type}")
            elif old_type != new_type and not _fits(new_type, old_type):
                if not _fits(old_type, new_type):
                    raise SchemaError(
                        f"table {SCHEMA}.{table}, column {name!r}: type changed from {old_type} "
                        f"to {new_type}, which cannot be widened without loss; nothing was loaded"
                    )
                log.info("warehouse: widening %s.%s from %s to %s", table, name, old_type, new_type)
                self.con.execute(f"ALTER TABLE {ref} ALTER {quote(name)} TYPE {new_type}")

    # -- reading -------------------------------------------------------------------------------

    def columns(self, table: str, *, schema: str = SCHEMA) -> dict[str, str]:
        """Name -> type of a table's (or a view's) columns; empty if there is no such one."""
        rows = self.con.execute(
            f"SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog "
            f"= current_database() AND table_schema = {lit.string(schema)} AND table_name = "
            f"{lit.string(_named(table, schema))} ORDER BY ordinal_position"
        ).fetchall()
        return {str(n): str(t) for n, t in rows}

    def count(self, table: str, partition: str | None = None, *, schema: str = SCHEMA) -> int:
        """Rows of a table (or a view), or of one of its partitions; 0 if there is none."""
        if not self.columns(table, schema=schema):
            return 0
        where = f"WHERE _partition = {lit.string(partition)}" if partition else ""
        row = self.con.execute(
            f"SELECT count(*) FROM {table_ref(table, schema)} {where}"
        ).fetchone()
        return int(row[0]) if row else 0

    def views(self) -> list[str]:
        """The views of schema ``analytics``."""
        return self._relations(VIEWS, "VIEW")

    def tables(self) -> list[str]:
        """The tables of schema ``bizagi``."""
        return self._relations(SCHEMA, "BASE TABLE")

    def _relations(self, schema: str, kind: str) -> list[str]:
        rows = self.con.execute(
            f"SELECT table_name FROM information_schema.tables WHERE table_catalog = "
            f"current_database() AND table_schema = {lit.string(schema)} "
            f"AND table_type = {lit.string(kind)} ORDER BY table_name"
        ).fetchall()
        return [str(r[0]) for r in rows]

    # -- DDL and views -------------------------------------------------------------------------

    def ensure_table(self, table: str, schema: pa.Schema) -> None:
        """Create an empty table from a declared schema, so views can refer to it before loads.

        DuckDB itself names the types, reading them from an empty Parquet file of that schema
        exactly as it will read the lake's files later (registering the Arrow table instead
        would make DuckDB's Python client import pandas).
        """
        if self.columns(table):
            return
        with self.scratch() as folder:
            self.ensure_table_like(table, declared_file(table, schema, folder))

    def ensure_table_like(self, table: str, empty_file: str | Path) -> None:
        """Create an empty table with the columns of ``empty_file``, a Parquet file, unless the
        table exists (``landing.declared_file`` writes one for a schema)."""
        if self.columns(table):
            return
        columns = self._parquet_columns(lit.strings([str(empty_file)]))
        with self._writing(f"creating table {table}"):
            self._retry(f"creating table {table}", lambda: self._evolve(table, columns))

    def scratch(self) -> tempfile.TemporaryDirectory[str]:
        """A private folder for files the warehouse reads once (see ``scratch_home``)."""
        return tempfile.TemporaryDirectory(prefix=".bizagi-declared-",
                                           dir=scratch_home(self.location))  # fmt: skip

    def apply_sql(self) -> list[str]:
        """Run every ``sql/*.sql`` file in file-name order; returns their names.

        Finding none is an error, not an empty success: the views are part of the product, and
        an install without them would leave every analytics query failing later.
        """
        files = sorted(
            (p for p in self.sql_dir.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name
        )
        if not files:
            raise WarehouseError(
                f"no SQL views found in {self.sql_dir}: expected sql/*.sql "
                f"(package {SQL_PACKAGE}); reinstall bizagi-etl"
            )
        for path in files:
            text = path.read_text(encoding="utf-8")
            with self._writing(f"applying {path.name}"):
                self._retry(f"applying {path.name}", lambda: self.con.execute(text))  # noqa: B023
        return [path.name for path in files]

    def create_latest_view(self, table: str, key: Sequence[str]) -> str:
        """``analytics.latest_<table>``: the rows of the newest snapshot, one per key. A row the
        source no longer has is in older snapshots only, so it is not "latest"."""
        view = f"{VIEWS}.{quote('latest_' + check_identifier('table', table))}"
        keys = ", ".join(quote(check_identifier("column", k)) for k in key)
        ref = table_ref(table)
        sql = (
            f"CREATE OR REPLACE VIEW {view} AS SELECT * EXCLUDE (_rank) FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY _extracted_at DESC) "
            f"AS _rank FROM {ref} WHERE _partition = (SELECT max(_partition) FROM {ref})"
            f") WHERE _rank = 1"
        )
        with self._writing(f"creating view {view}"):
            self._retry(f"creating view {view}", lambda: self.con.execute(sql))
        return f"latest_{table}"

    def partition_counts(self, table: str) -> dict[str, int]:
        """Rows per partition of a table (empty when the table does not exist)."""
        if not self.columns(table):
            return {}
        rows = self.con.execute(
            f"SELECT _partition, count(*) FROM {table_ref(table)} GROUP BY 1 ORDER BY 1"
        ).fetchall()
        return {str(p): int(n) for p, n in rows}

    def partition_stamps(self, table: str) -> dict[str, dt.datetime]:
        """When the rows of each partition were extracted (the newest stamp loaded)."""
        if not self.columns(table):
            return {}
        rows = self.con.execute(
            f"SELECT _partition, max(_extracted_at) FROM {table_ref(table)} GROUP BY 1"
        ).fetchall()
        return {str(p): at for p, at in rows}

    def key_problems(
        self, table: str, key: Sequence[str], partitions: Sequence[str] | None = None
    ) -> tuple[int, int]:
        """(rows whose key repeats another row's, rows with a null key part) in the partitions."""
        keys = ", ".join(quote(check_identifier("column", k)) for k in key)
        nulls = " OR ".join(f"{quote(k)} IS NULL" for k in key)
        where = (
            f"WHERE _partition IN (SELECT unnest({lit.strings(partitions)}))" if partitions else ""
        )
        row = self.con.execute(
            f"SELECT count(*) - count(DISTINCT ({keys})), count(*) FILTER (WHERE {nulls}) "
            f"FROM {table_ref(table)} {where}"
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """Rows of ``sql``; ``params`` are bound (which imports pandas: see sql_literals)."""
        return (self.con.execute(sql, list(params)) if params else self.con.execute(sql)).fetchall()


def _named(table: str, schema: str) -> str:
    """A table's name checked; a view's (``analytics.latest_<table>`` may exceed a table
    name's 63 characters) only quoted, which is enough in a literal or a quoted identifier."""
    return check_identifier("table", table) if schema == SCHEMA else table


def _holder(message: str) -> str:
    """Who holds the file, from DuckDB's lock error: its PID and, when it runs on this host,
    its command line and start."""
    found = _HOLDER.search(message)
    if not found:
        return "another process"
    program, pid = found.group(1), int(found.group(2))
    known = _process(pid)
    return f"PID {pid} ({known})" if known else f"PID {pid} ({program})"


def _process(pid: int) -> str | None:
    """``command line, on host since start`` of a process of this host, from /proc (Linux)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    since = dt.datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), dt.UTC)
    text = command.decode(errors="replace")
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"{text}, on {socket.gethostname()} since {since.isoformat(timespec='seconds')}"


def _fits(source: str, target: str) -> bool:
    """Values of type ``source`` go into a ``target`` column without loss."""
    if source == target or target in _WIDER.get(source, ()):
        return True
    small, big = _DECIMAL.match(source), _DECIMAL.match(target)
    if small and big:
        (p1, s1), (p2, s2) = map(int, small.groups()), map(int, big.groups())
        return s2 >= s1 and p2 - s2 >= p1 - s1
    return False
