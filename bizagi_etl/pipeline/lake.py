"""The Parquet lake: ``{root}/{table}/{column}={value}/part-NNNNN.parquet``.

A partition is written whole into ``{root}/{table}/_staging/`` and then swapped in with two
renames, so readers never see half a partition and a rerun leaves exactly one copy. A crash
while writing leaves the previous partition as it was; after a crash between the two renames,
readers find the previous version in ``_trash/`` and the next write of that partition puts it
back before replacing it. Two writers of the same partition at once are not supported (Dagster
runs one per partition). This module owns every path.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bizagi_etl.connector import SchemaError
from bizagi_etl.pipeline.frames import combine
from bizagi_etl.pipeline.schema import check_identifier

log = logging.getLogger(__name__)

ROWS_PER_PART = 256 * 1024  # rows buffered before a part file is written
ROW_GROUP = 128 * 1024
STAGING, TRASH = "_staging", "_trash"
_VALUE = re.compile(r"\d{4}-\d{2}-\d{2}")
_COLUMNS = ("day", "snapshot")
META_EXTRACTED_AT = b"bizagi_etl.extracted_at"


@dataclass(frozen=True, slots=True)
class WrittenPartition:
    table: str
    column: str  # day or snapshot
    value: str  # YYYY-MM-DD
    path: Path
    files: tuple[Path, ...]
    rows: int


class Lake:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._table_dirs: dict[str, Path] = {}  # checked once: resolve() stats every component

    def __repr__(self) -> str:
        return f"Lake({str(self.root)!r})"

    def table_dir(self, table: str) -> Path:
        known = self._table_dirs.get(table)
        if known is not None:
            return known
        path = (self.root / check_identifier("table", table)).resolve()
        if path.parent != self.root:
            raise SchemaError(f"table {table!r} would leave the lake at {self.root}")
        self._table_dirs[table] = path
        return path

    def partition_dir(self, table: str, column: str, value: str) -> Path:
        if column not in _COLUMNS or not _VALUE.fullmatch(value):
            raise SchemaError(f"partition {column}={value!r}: expected day or snapshot=YYYY-MM-DD")
        return self.table_dir(table) / f"{column}={value}"

    def open_partition(
        self, table: str, column: str, value: str, schema: pa.Schema, extracted_at: dt.datetime
    ) -> PartitionWriter:
        """A writer that streams batches into a new version of one partition (see ``commit``)."""
        target = self.partition_dir(table, column, value)
        self._recover(target)
        staging = self.table_dir(table) / STAGING / f"{target.name}.{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        return PartitionWriter(self, table, column, value, target, staging, schema, extracted_at)

    def write_partition(
        self,
        table: str,
        column: str,
        value: str,
        batches: Sequence[pa.Table],
        schema: pa.Schema,
        *,
        key: Sequence[str],
        extracted_at: dt.datetime,
        before_swap: Callable[[Path], None] | None = None,
    ) -> WrittenPartition:
        """Replace one partition with ``batches``, unified to one schema and sorted by ``key``."""
        data = combine(batches, schema, table)
        if key and data.num_rows:
            data = data.sort_by([(k, "ascending") for k in key])
        writer = self.open_partition(table, column, value, schema, extracted_at)
        try:
            writer.write(data)
            return writer.commit(before_swap)
        except BaseException:
            writer.abort()
            raise

    def _recover(self, target: Path) -> None:
        """Before writing a partition: finish what a crash of an earlier write left behind.

        Only this partition's leftovers are touched, so writers of other partitions of the same
        table (parallel runs) are never disturbed.
        """
        trash, staging = target.parent / TRASH, target.parent / STAGING
        for old in _leftovers(trash, target.name):
            if not target.exists():
                log.warning("lake: restoring %s from an interrupted swap", target)
                os.rename(old, target)
            else:
                shutil.rmtree(old, ignore_errors=True)
        for stale in _leftovers(staging, target.name):
            shutil.rmtree(stale, ignore_errors=True)

    def files(self, table: str, column: str | None = None, value: str | None = None) -> list[Path]:
        """Parquet files of a table, or of one partition; readers never see staging files.

        A partition whose swap was interrupted between its two renames is read from the trash,
        where its previous version waits to be restored by the next write.
        """
        pattern = f"{column}={value}" if column and value else "*=*"
        return sorted(
            p for d in self._partition_dirs(table, pattern) for p in d.glob("part-*.parquet")
        )

    def partitions(self, table: str) -> list[tuple[str, str]]:
        """(column, value) of every partition of a table, in order."""
        found = [d.name.split(".", 1)[0].split("=", 1) for d in self._partition_dirs(table, "*=*")]
        return sorted((c, v) for c, v in found if c in _COLUMNS and _VALUE.fullmatch(v))

    def tables(self, prefix: str = "") -> list[str]:
        """Tables present in the lake, optionally only those whose name starts with ``prefix``."""
        if not self.root.exists():
            return []
        return sorted(
            d.name for d in self.root.iterdir() if d.is_dir() and d.name.startswith(prefix)
            and not d.name.startswith("_")
        )  # fmt: skip

    def _partition_dirs(self, table: str, pattern: str) -> list[Path]:
        base = self.table_dir(table)
        dirs = [d for d in base.glob(pattern) if d.is_dir()]
        present = {d.name for d in dirs}
        for old in sorted((base / TRASH).glob(f"{pattern}.*")) if (base / TRASH).exists() else []:
            name = old.name.rsplit(".", 1)[0]
            if name not in present and not (base / name).exists():
                dirs.append(old)
                present.add(name)
        return dirs

    def rows(self, table: str) -> int:
        """Rows in every partition of a table, from the Parquet footers (no data is read)."""
        return sum(pq.read_metadata(f).num_rows for f in self.files(table))

    def read(self, table: str) -> pa.Table:
        """Every partition of a table (tests and small tables)."""
        files = self.files(table)
        return combine([pq.read_table(f) for f in files], None, table) if files else pa.table({})


class PartitionWriter:
    """Writes one partition's new version under _staging, part file by part file, then swaps.

    Batches are buffered up to ``ROWS_PER_PART`` rows, so memory holds one part, not the
    partition. Batches may bring new columns: each part has the schema of its own batches,
    and readers unify by name.
    """

    def __init__(
        self,
        lake: Lake,
        table: str,
        column: str,
        value: str,
        target: Path,
        staging: Path,
        schema: pa.Schema,
        extracted_at: dt.datetime,
    ) -> None:
        self.lake, self.table, self.column, self.value = lake, table, column, value
        self.target, self.staging, self.schema = target, staging, schema
        self.metadata = {META_EXTRACTED_AT: extracted_at.isoformat().encode()}
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.names: list[str] = []
        self.rows = 0

    def write(self, batch: pa.Table) -> None:
        if batch.num_rows == 0:
            return
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= ROWS_PER_PART:
            self._flush()

    def _flush(self) -> None:
        data = combine(self.pending, self.schema, self.table)
        data = data.replace_schema_metadata({**(data.schema.metadata or {}), **self.metadata})
        name = f"part-{len(self.names):05d}.parquet"
        pq.write_table(data, self.staging / name, compression="zstd", row_group_size=ROW_GROUP)
        self.names.append(name)
        self.rows += data.num_rows
        self.pending, self.pending_rows = [], 0

    def commit(self, before_swap: Callable[[Path], None] | None = None) -> WrittenPartition:
        """Write what is left (a typed empty file for an empty partition) and swap it in."""
        if self.pending or not self.names:
            self._flush()
        if before_swap is not None:
            before_swap(self.staging)
        _swap(self.staging, self.target)
        files = tuple(self.target / n for n in self.names)
        log.debug("lake: %s/%s <- %d rows in %d files", self.table, self.target.name, self.rows,
                  len(files))  # fmt: skip
        return WrittenPartition(self.table, self.column, self.value, self.target, files, self.rows)

    def abort(self) -> None:
        """Drop the new version; the previous partition stays as it was."""
        shutil.rmtree(self.staging, ignore_errors=True)


def _swap(staging: Path, target: Path) -> None:
    if not target.exists():  # a new partition: nothing to put aside
        os.rename(staging, target)
        return
    trash = target.parent / TRASH / f"{target.name}.{uuid.uuid4().hex}"
    trash.parent.mkdir(exist_ok=True)
    os.rename(target, trash)
    os.rename(staging, target)
    shutil.rmtree(trash, ignore_errors=True)


def _leftovers(folder: Path, name: str) -> list[Path]:
    """What earlier writes of partition ``name`` left in ``folder`` (``name.<uuid>``)."""
    try:
        entries = os.scandir(folder)
    except FileNotFoundError:
        return []
    with entries:
        return sorted(folder / e.name for e in entries if e.name.startswith(f"{name}."))


def extracted_at_of(path: Path) -> dt.datetime | None:
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(META_EXTRACTED_AT)
    return dt.datetime.fromisoformat(raw.decode()) if raw else None
