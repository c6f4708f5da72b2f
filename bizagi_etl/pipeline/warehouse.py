"""The DuckDB warehouse: one table per stream in schema ``bizagi``, views in ``analytics``.

A partition is loaded by deleting and inserting it in one transaction, straight from its
Parquet files with ``read_parquet``. New columns are added; a column whose type changes is
widened when that loses nothing (INTEGER to BIGINT, to DOUBLE, a larger DECIMAL) and otherwise
the load fails naming table, column, old and new type, with nothing already landed lost.
Identifiers are quoted and values bound, never pasted. This is the only module importing duckdb.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import TracebackType

import duckdb
import pyarrow as pa

from bizagi_etl.connector import SchemaError, SettingsError, WarehouseError
from bizagi_etl.pipeline.schema import check_identifier
from bizagi_etl.pipeline.settings import DEFAULT_MEMORY_LIMIT

log = logging.getLogger(__name__)

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


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def table_ref(table: str) -> str:
    return f"{SCHEMA}.{quote(check_identifier('table', table))}"


class Warehouse:
    def __init__(
        self, path: Path, sql_dir: Path | None = None, memory_limit: str | None = None
    ) -> None:
        self.memory_limit = memory_limit or DEFAULT_MEMORY_LIMIT
        self.path = Path(path)
        self.sql_dir: Traversable = sql_dir or resources.files(SQL_PACKAGE)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(self.path))
        try:
            self.con.execute("SET memory_limit = ?", [self.memory_limit])
        except duckdb.Error as exc:
            self.con.close()
            raise SettingsError(
                f"warehouse {self.path}: memory limit {self.memory_limit!r} is not a size DuckDB "
                f"reads (expected e.g. '128MB' or '2GB'): {exc}"
            ) from None
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {VIEWS}")

    def __repr__(self) -> str:
        return f"Warehouse({str(self.path)!r})"

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- loading -------------------------------------------------------------------------------

    def load_partition(
        self, table: str, partition: str, files: Sequence[Path], extracted_at: dt.datetime
    ) -> int:
        """Replace the rows of one partition with those of its Parquet files."""
        return self.load_partitions(table, [(partition, files)], extracted_at)

    def load_partitions(
        self,
        table: str,
        partitions: Sequence[tuple[str, Sequence[Path]]],
        extracted_at: dt.datetime,
    ) -> int:
        """Replace the rows of each partition with those of its files, in one transaction.

        Returns the rows the partitions hold afterwards.
        """
        ref = table_ref(table)
        pairs = [(str(f), value) for value, files in partitions for f in files]
        values = sorted({value for value, _ in partitions})
        if not values:
            return 0
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(  # one statement: executemany costs 0.1 ms a row, 2,000 days
                "CREATE OR REPLACE TEMP TABLE _load_files AS SELECT "
                "unnest(?::VARCHAR[]) AS file, unnest(?::VARCHAR[]) AS part",
                [[f for f, _ in pairs], [v for _, v in pairs]],
            )
            self._evolve(table, self._parquet_columns([f for f, _ in pairs]))
            self.con.execute(f"DELETE FROM {ref} WHERE _partition IN (SELECT unnest(?))", [values])
            self.con.execute(
                f"INSERT INTO {ref} BY NAME SELECT p.* EXCLUDE (_load_file), f.part AS _partition, "
                f"?::TIMESTAMPTZ AS _extracted_at "
                f"FROM read_parquet(?, {_READ_OPTIONS}, filename = '_load_file') p "
                f"JOIN _load_files f ON p._load_file = f.file",
                [extracted_at, [f for f, _ in pairs]],
            )
            row = self.con.execute(
                f"SELECT count(*) FROM {ref} WHERE _partition IN (SELECT unnest(?))", [values]
            ).fetchone()
            self.con.execute("COMMIT")
        except duckdb.OutOfMemoryException as exc:
            self.con.execute("ROLLBACK")
            raise WarehouseError(
                f"warehouse {self.path}: loading {len(values)} partitions of {table} needs more "
                f"than the memory limit ({self.memory_limit}; BIZAGI_DUCKDB_MEMORY_LIMIT); "
                f"nothing of this load landed: {exc}"
            ) from None
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        rows = int(row[0]) if row else 0
        log.debug("warehouse: %s <- %d partitions, %d rows", table, len(values), rows)
        return rows

    def _parquet_columns(self, sources: list[str]) -> list[tuple[str, str]]:
        rows = self.con.execute(
            f"DESCRIBE SELECT * FROM read_parquet(?, {_READ_OPTIONS})", [sources]
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

    def columns(self, table: str) -> dict[str, str]:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [SCHEMA, check_identifier("table", table)],
        ).fetchall()
        return {str(n): str(t) for n, t in rows}

    def count(self, table: str, partition: str | None = None) -> int:
        if not self.columns(table):
            return 0
        where, params = ("WHERE _partition = ?", [partition]) if partition else ("", [])
        row = self.con.execute(
            f"SELECT count(*) FROM {table_ref(table)} {where}", params
        ).fetchone()
        return int(row[0]) if row else 0

    def tables(self) -> list[str]:
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
            "AND table_type = 'BASE TABLE' ORDER BY table_name",
            [SCHEMA],
        ).fetchall()
        return [str(r[0]) for r in rows]

    # -- DDL and views -------------------------------------------------------------------------

    def ensure_table(self, table: str, schema: pa.Schema) -> None:
        """Create an empty table from a declared schema, so views can refer to it before loads.

        DuckDB itself names the types, exactly as it will read them from Parquet later.
        """
        if self.columns(table):
            return
        self.con.register("_declared", schema.empty_table())
        try:
            described = self.con.execute("DESCRIBE SELECT * FROM _declared").fetchall()
        finally:
            self.con.unregister("_declared")
        self._evolve(table, [(str(r[0]), str(r[1])) for r in described])

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
            self.con.execute(path.read_text(encoding="utf-8"))
        return [path.name for path in files]

    def create_latest_view(self, table: str, key: Sequence[str]) -> str:
        """``analytics.latest_<table>``: the newest row of each key across snapshots."""
        view = f"{VIEWS}.{quote('latest_' + check_identifier('table', table))}"
        keys = ", ".join(quote(check_identifier("column", k)) for k in key)
        self.con.execute(
            f"CREATE OR REPLACE VIEW {view} AS SELECT * EXCLUDE (_rank) FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY {keys} "
            f"ORDER BY _partition DESC, _extracted_at DESC) AS _rank FROM {table_ref(table)}"
            f") WHERE _rank = 1"
        )
        return f"latest_{table}"

    def partition_counts(self, table: str) -> dict[str, int]:
        """Rows per partition of a table (empty when the table does not exist)."""
        if not self.columns(table):
            return {}
        rows = self.con.execute(
            f"SELECT _partition, count(*) FROM {table_ref(table)} GROUP BY 1 ORDER BY 1"
        ).fetchall()
        return {str(p): int(n) for p, n in rows}

    def key_problems(
        self, table: str, key: Sequence[str], partitions: Sequence[str] | None = None
    ) -> tuple[int, int]:
        """(rows whose key repeats another row's, rows with a null key part) in the partitions."""
        keys = ", ".join(quote(check_identifier("column", k)) for k in key)
        nulls = " OR ".join(f"{quote(k)} IS NULL" for k in key)
        where, params = (
            ("WHERE _partition IN (SELECT unnest(?))", [list(partitions)])
            if partitions
            else ("", [])
        )
        row = self.con.execute(
            f"SELECT count(*) - count(DISTINCT ({keys})), count(*) FILTER (WHERE {nulls}) "
            f"FROM {table_ref(table)} {where}",
            params,
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        return self.con.execute(sql, list(params)).fetchall()


def _fits(source: str, target: str) -> bool:
    """Values of type ``source`` go into a ``target`` column without loss."""
    if source == target or target in _WIDER.get(source, ()):
        return True
    small, big = _DECIMAL.match(source), _DECIMAL.match(target)
    if small and big:
        (p1, s1), (p2, s2) = map(int, small.groups()), map(int, big.groups())
        return s2 >= s1 and p2 - s2 >= p1 - s1
    return False
