"""The Parquet lake: ``{root}/{table}/{column}={value}/part-NNNNN.parquet``.

This module is the lake in a folder. On object storage (``s3://...``), which has no rename,
``object_lake.ObjectLake`` keeps the same interface with versions and commit markers instead;
``open_lake`` picks one from the location.

Writing. A partition's new version is written whole into its own staging folder,
``{root}/_staging/{table}/{column}={value}.{token}/``, outside the table's folder, so no reader
(this module, DuckDB's ``read_parquet('{table}/day=*/*.parquet')`` or ``'{table}/**/*.parquet'``,
a pyarrow dataset) ever lists it. It is then swapped in with one ``renameat2(RENAME_EXCHANGE)``:
the partition's path names the whole old version, then the whole new one, never nothing and
never both. A new partition is moved in with ``renameat2(RENAME_NOREPLACE)``. The old version,
now at the staging path, moves to ``{root}/_staging/{table}.retired/`` and is deleted once it
is ``keep_replaced`` seconds old (1 by default) by a thread of the writing process, which the
process waits for when it exits: a reader that opened the partition's folder just before the
swap is still listing it, and deleting its files at once would hide the whole day from that
listing (DuckDB's glob did miss one that way). Files a reader has already opened stay readable
anyway. A reader that has listed a partition's file names and opens them after a swap reads
the new version's files under those names: the same day, unless the number of part files
changed, when it fails or reads part of it. Where the exchange is not supported (not Linux, or
a file system without it, e.g. NFS), the swap takes two renames under the table's swap lock;
between them the partition is briefly absent from its folder (this module's readers then read
it from staging, a glob misses it) and a crash there leaves it in staging until the next write
of the table puts it back.

Concurrent runs. A process writing a table holds a shared ``flock`` on
``{root}/_locks/{table}.lock`` while it has staging folders. Writers of the same table, in one
process or several, run side by side: each only touches its own staging folders, and two swaps
of the same partition each land whole (the last one wins). A writer that finds the lock free
takes it exclusively for a moment first: holding it, it knows every leftover in the table's
staging is stale (its writer died: a kill releases every flock) and removes it, putting back
a partition a crash left in staging. So the next write of any window of a table cleans up
after a killed one. Waiting for a lock is bounded by ``lock_timeout``; beyond it a
``LockError`` names the holder (pid, host, since when).

Errors. A root that is a file or lies under one, a folder that cannot be created (``/proc``),
permissions, a read-only or full disk raise ``StorageError`` saying what, where and what to
do; the new version is dropped and the partition keeps its previous version. A full disk first
gets back the space of every replaced version still kept for readers, and ``write_partition``
then tries once more. This module owns every path.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime as dt
import errno
import functools
import logging
import math
import multiprocessing.util
import os
import re
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bizagi_etl.connector import BizagiError, SchemaError
from bizagi_etl.connector.errors import LockError, StorageError
from bizagi_etl.pipeline.frames import combine
from bizagi_etl.pipeline.names import check_identifier
from bizagi_etl.pipeline.settings import DEFAULT_LOCK_TIMEOUT
from bizagi_etl.pipeline.storage import check_folder, storage_error

if sys.platform != "win32":
    import fcntl

if TYPE_CHECKING:
    import pyarrow.dataset as ds

log = logging.getLogger(__name__)

ROWS_PER_PART = 256 * 1024  # rows buffered before a part file is written
ROW_GROUP = 128 * 1024
# Rows a streamed partition (a snapshot) buffers before writing a row group: what its memory
# holds; DuckDB still reads such files in parallel, a row group per thread.
STREAM_ROW_GROUP = 32 * 1024
STAGING, LOCKS = "_staging", "_locks"  # folders of the lake's root, never of a table
TRASH = "_trash"  # earlier versions' folder inside a table: emptied by the next write
OLD = ".old"  # suffix of a version put aside by a two-rename swap
RETIRED = ".retired"  # _staging/{table}.retired/{name}.{token}.{ns}: replaced versions
KEEP_REPLACED = 1.0  # seconds a replaced version is kept for readers listing it
_VALUE = re.compile(r"\d{4}-\d{2}-\d{2}")
_COLUMNS = ("day", "snapshot")
META_EXTRACTED_AT = b"bizagi_etl.extracted_at"


@dataclass(frozen=True, slots=True)
class WrittenPartition:
    table: str
    column: str  # day or snapshot
    value: str  # YYYY-MM-DD
    path: Path | str  # a folder, or an object store's URI (s3://...)
    files: tuple[Path | str, ...]
    rows: int


class Lake:
    freed = 0  # replaced versions deleted early, the disk being full (see write_partition)

    def __init__(
        self,
        root: Path,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        keep_replaced: float = KEEP_REPLACED,
    ) -> None:
        try:
            self.root = Path(root).resolve()
        except (OSError, RuntimeError) as exc:
            raise StorageError(f"lake {root}: the path cannot be resolved: {exc}") from None
        self.lock_timeout = lock_timeout
        self.keep_replaced = keep_replaced
        self._table_dirs: dict[str, Path] = {}  # checked once: resolve() stats every component
        self._mutex = threading.Lock()  # the table locks below, shared by this lake's threads
        self._held: dict[str, _Held] = {}
        check_folder(self.root, f"lake {self.root}", "BIZAGI_LAKE")

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

    def staging_dir(self, table: str) -> Path:
        """Where the table's new versions are written before their swap (outside the table)."""
        return self.root / STAGING / self.table_dir(table).name

    def open_partition(
        self, table: str, column: str, value: str, schema: pa.Schema, extracted_at: dt.datetime
    ) -> PartitionWriter:
        """A writer that streams batches into a new version of one partition (see ``commit``).

        Until it is committed or aborted, it holds the table's lock shared.
        """
        target = self.partition_dir(table, column, value)
        self._hold(table)
        staging = self.staging_dir(table) / f"{target.name}.{uuid.uuid4().hex}"
        try:
            with self._errors(f"creating the staging folder of {table}/{target.name}", staging):
                staging.mkdir(parents=True)
        except BaseException:
            self._release(table)
            raise
        return PartitionWriter(self, table, column, value, target, staging, schema, extracted_at,
                               release=functools.partial(self._release, table))  # fmt: skip

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
        """Replace one partition with ``batches``, unified to one schema and sorted by ``key``.

        A disk that fills up while replaced versions are kept for readers gets their space
        back, and the write is tried once more if that freed anything (here or in another
        writer of this lake meanwhile). A streamed partition (``open_partition``) frees the
        space for a rerun, but is not tried again: its batches are gone.
        """
        data = combine(batches, schema, table)
        if key and data.num_rows:
            data = data.sort_by([(k, "ascending") for k in key])
        freed = self.freed
        try:
            return self._write_once(table, column, value, data, schema, extracted_at, before_swap)
        except StorageError as exc:
            if not disk_full(exc):
                raise
            self.free_replaced()  # the staging folder's own ENOSPC frees nothing by itself
            if self.freed == freed:
                raise
            log.warning("lake: %s/%s=%s: the disk was full; writing it again after deleting "
                        "replaced versions", table, column, value)  # fmt: skip
        return self._write_once(table, column, value, data, schema, extracted_at, before_swap)

    def _write_once(
        self,
        table: str,
        column: str,
        value: str,
        data: pa.Table,
        schema: pa.Schema,
        extracted_at: dt.datetime,
        before_swap: Callable[[Path], None] | None,
    ) -> WrittenPartition:
        writer = self.open_partition(table, column, value, schema, extracted_at)
        try:
            writer.write(data)
            return writer.commit(before_swap)
        except BaseException:
            writer.abort()
            raise

    # -- locks and leftovers -------------------------------------------------------------------

    @contextmanager
    def writing(self, *tables: str) -> Iterator[None]:
        """Hold the tables' locks across many writes (a backfill's thousands of partitions):
        each write would otherwise open, try and sign the lock file again, and those small
        system calls give the GIL away to the fetch threads each time."""
        held: list[str] = []
        try:
            for table in tables:
                self._hold(table)
                held.append(table)
            yield
        finally:
            for table in held:
                self._release(table)

    def _hold(self, table: str) -> None:
        """Hold the table's lock shared (once per lake object: its threads share it). The first
        holder tries it exclusively first, and if it gets it, sweeps the table's leftovers."""
        with self._mutex:
            held = self._held.setdefault(table, _Held())
            if held.users == 0:
                path = self.root / LOCKS / f"{self.table_dir(table).name}.lock"
                with self._errors(f"opening the lock file of {table}", path):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    lock = _FileLock(path)
                try:
                    if lock.try_exclusive():
                        self._sweep(table)
                    lock.shared(self.lock_timeout, f"lake {self.root}: writing {table}")
                except BaseException:
                    lock.close()
                    raise
                held.lock = lock
            held.users += 1

    def _release(self, table: str) -> None:
        with self._mutex:
            held = self._held[table]
            held.users -= 1
            if held.users == 0 and held.lock is not None:
                held.lock.close()
                held.lock = None

    # -- replaced versions ---------------------------------------------------------------------

    def retired_dir(self, table: str) -> Path:
        """Where a table's replaced versions wait to be deleted: beside its staging folder,
        whose listings (the sweep's) they would otherwise lengthen."""
        return self.root / STAGING / f"{self.table_dir(table).name}{RETIRED}"

    def keep_for_readers(self, table: str, version: Path) -> None:
        """Move a replaced version out of the way, to be deleted ``keep_replaced`` seconds
        later by a thread of this process (see the module's docstring). If it cannot be moved,
        it is left for the caller to delete at once."""
        folder = self.retired_dir(table)
        with quietly():
            folder.mkdir(exist_ok=True)
            os.rename(version, folder / f"{version.name}.{time.time_ns()}")
            _RETIRED.add(folder, self.keep_replaced)

    def free_replaced(self) -> None:
        """Delete every replaced version in the lake now, whatever its age (a full disk needs
        their space more than a reader its listing); ``freed`` counts them."""
        with quietly():
            for folder in _entries(self.root / STAGING):
                if folder.name.endswith(RETIRED):
                    self.freed += _drop_old(folder, 0.0)  # only grows: a race loses no retry

    def _sweep(self, table: str) -> None:
        """Holding the table's lock exclusively: every leftover is stale, its writer dead.

        A partition a crash left aside (a two-rename swap, or this module's earlier layout with
        ``{table}/_trash`` and ``{table}/_staging``) is put back if it is missing; the rest goes.
        """
        base, staged = self.table_dir(table), self.staging_dir(table)
        aside = [p for p in _entries(staged) if p.name.endswith(OLD)]
        restored = 0
        with self._errors(f"putting back a partition of {table} a crash left aside", base):
            for old in [*aside, *_entries(base / TRASH)]:
                target = base / old.name.split(".", 1)[0]
                if _is_partition(target.name) and not target.exists():
                    log.warning("lake: restoring %s, which a killed run left aside", target)
                    os.rename(old, target)
                    restored += 1
        if _names(self.retired_dir(table)):  # what killed runs set aside, or ended ones
            _RETIRED.add(self.retired_dir(table), self.keep_replaced)
        stale = [*_entries(staged), *_entries(base / TRASH), *_entries(base / STAGING)]
        for leftover in stale:
            _remove(leftover)
        for legacy in (base / TRASH, base / STAGING):
            with quietly():
                legacy.rmdir()
        if stale or restored:
            log.warning("lake: %s: removed %d leftovers of killed runs, restored %d partitions",
                        table, len(stale), restored)  # fmt: skip

    def _errors(
        self, what: str, where: Path | str, after: str = ""
    ) -> AbstractContextManager[None]:
        return _errors(self.root, what, where, after)

    # -- reading -------------------------------------------------------------------------------

    def files(
        self, table: str, column: str | None = None, value: str | None = None
    ) -> Sequence[Path | str]:
        """Parquet files of a table, or of one partition; readers never see staging files.

        A partition a two-rename swap (no ``RENAME_EXCHANGE``) has put aside and not yet
        replaced is read where it waits.
        """
        pattern = f"{column}={value}" if column and value else "*=*"
        return sorted(
            p for d in self._partition_dirs(table, pattern) for p in d.glob("part-*.parquet")
        )

    def scan(
        self,
        table: str,
        values: Sequence[str] | None = None,
        *,
        columns: Sequence[str] | None = None,
        where: pc.Expression | None = None,
    ) -> pa.Table:
        """Rows of a table's partitions (every one, or those whose value is in ``values``),
        read as one dataset, each with its partition's value in a ``_value`` column.

        Files written at different times may differ in columns: their schemas are unified, and
        a column a file lacks reads as null. ``columns`` not in any file are left out.
        """
        files = self._files_of(table, values)
        if not files:
            return pa.table({"_value": pa.array([], pa.string())})
        fragments = self._dataset(files).get_fragments()
        schemas = [f.physical_schema for f in fragments]
        if columns is not None:  # only what is read must agree
            schemas = [pa.schema([s.field(c) for c in columns if c in s.names]) for s in schemas]
        schema = _unified(schemas)
        names = [c for c in (columns or schema.names) if c in schema.names]
        with self._errors(f"reading {table}", self.table_dir(table)):
            data = self._dataset(files, schema).to_table(
                columns=[*names, "__filename"], filter=where
            )
        paths = data.column("__filename").dictionary_encode().combine_chunks()
        of_path = pa.array([_value_of(Path(p)) for p in paths.dictionary.to_pylist()], pa.string())
        return data.drop_columns(["__filename"]).append_column(
            "_value", of_path.take(paths.indices)
        )

    def _files_of(self, table: str, values: Sequence[str] | None) -> Sequence[Path | str]:
        """Every file of a table, or of the partitions ``values``: a few are listed each on
        its own, many by one listing of the table (a listing costs what the table holds)."""
        if values is not None and len(values) <= _FEW:
            return [f for v in values for f in self.files(table, "*", v)]
        wanted = None if values is None else set(values)
        return [f for f in self.files(table) if wanted is None or _value_of(f) in wanted]

    def partitions(self, table: str) -> list[tuple[str, str]]:
        """(column, value) of every partition of a table, in order."""
        found = [d.name.split(".", 1)[0].split("=", 1) for d in self._partition_dirs(table, "*=*")]
        return sorted((c, v) for c, v in found if c in _COLUMNS and _VALUE.fullmatch(v))

    def tables(self, prefix: str = "") -> list[str]:
        """Tables present in the lake, optionally only those whose name starts with ``prefix``."""
        if not self.root.exists():
            return []
        with self._errors("listing the tables", self.root):
            return sorted(
                d.name for d in self.root.iterdir() if d.is_dir() and d.name.startswith(prefix)
                and not d.name.startswith(("_", "."))  # staging, locks; hidden folders
            )  # fmt: skip

    def _partition_dirs(self, table: str, pattern: str) -> list[Path]:
        base = self.table_dir(table)
        with self._errors(f"listing the partitions of {table}", base):
            dirs = [d for d in base.glob(pattern) if d.is_dir()]
            present = {d.name for d in dirs}
            aside = [
                *sorted(self.staging_dir(table).glob(f"{pattern}.*{OLD}")),
                *sorted((base / TRASH).glob(f"{pattern}.*")),  # the earlier layout's
            ]
            for old in aside:
                name = old.name.split(".", 1)[0]
                if name not in present and not (base / name).exists():
                    dirs.append(old)
                    present.add(name)
        return dirs

    def has_table(self, table: str) -> bool:
        return self.table_dir(table).is_dir()

    def partition_files(self, table: str) -> dict[str, list[Path | str]]:
        """Value -> files of every partition of a table, from one listing (a partition at a
        time costs a listing each: thousands of requests on object storage)."""
        out: dict[str, list[Path | str]] = {}
        for file in self.files(table):
            out.setdefault(_value_of(file), []).append(file)
        return dict(sorted(out.items()))

    def footer(self, file: Path | str) -> pq.FileMetaData:
        """A part file's footer: its rows, schema and extraction instant, without its data."""
        return pq.read_metadata(file)

    def read_file(self, file: Path | str) -> pa.Table:
        return pq.read_table(file)

    def extracted_at(self, file: Path | str) -> dt.datetime | None:
        return extracted_at_in(self.footer(file))

    def _dataset(self, files: Sequence[Path | str], schema: pa.Schema | None = None) -> ds.Dataset:
        import pyarrow.dataset as ds  # imports pandas: only sync and small reads need it

        return ds.dataset([str(f) for f in files], format="parquet", schema=schema)

    def rows(self, table: str) -> int:
        """Rows in every partition of a table, from the Parquet footers (no data is read)."""
        return sum(self.footer(f).num_rows for f in self.files(table))

    def read(self, table: str) -> pa.Table:
        """Every partition of a table, as one table (tests and small tables)."""
        return self.scan(table).drop_columns(["_value"])


class PartitionWriter:
    """Writes one partition's new version in its staging folder, part file by part file, then
    swaps it in (``commit``) or drops it (``abort``).

    Batches are written as they come, a row group of ``STREAM_ROW_GROUP`` rows at a time, into
    part files of at most ``ROWS_PER_PART`` rows, so memory holds one row group, not a part or
    the partition. Batches may bring new columns or wider types: such a batch starts a new
    part with its own schema, and readers unify parts by name.
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
        *,
        release: Callable[[], None] = lambda: None,
    ) -> None:
        self.lake, self.table, self.column, self.value = lake, table, column, value
        self.release = release  # the table's lock, once the staging folder is gone
        self.target, self.staging, self.schema = target, staging, schema
        self.metadata = {META_EXTRACTED_AT: extracted_at.isoformat().encode()}
        self.pending: list[pa.Table] = []  # batches of the next row group, one schema
        self.pending_rows = 0
        self.part: pq.ParquetWriter | None = None  # the part file being written
        self.part_rows = 0
        self.names: list[str] = []
        self.rows = 0
        self.done = False  # committed or aborted: the staging folder is gone, the lock released

    def write(self, batch: pa.Table) -> None:
        if batch.num_rows == 0:
            return
        data = combine([batch], self.schema, self.table)
        if self.pending and not data.schema.equals(self.pending[0].schema):
            self._close_part()  # a new column or a wider type: a part of its own
        elif self.part is not None and not data.schema.equals(self.part.schema.remove_metadata()):
            self._close_part()
        self.pending.append(data)
        self.pending_rows += data.num_rows
        if self.pending_rows >= min(STREAM_ROW_GROUP, ROWS_PER_PART - self.part_rows):
            self._write_group()
            if self.part_rows >= ROWS_PER_PART:
                self._close_part()

    def _write_group(self) -> None:
        """Write the pending batches as one row group of the current part (opening it)."""
        if not self.pending:
            return
        data = pa.concat_tables(self.pending)
        data = data.replace_schema_metadata({**(data.schema.metadata or {}), **self.metadata})
        path = self._part_path(len(self.names))
        try:
            with self._errors("writing", path):
                if self.part is None:
                    self.part = self._open(path, data.schema)
                self.part.write_table(data, row_group_size=ROW_GROUP)
        except BaseException:
            self.abort()  # a full disk gets its space back at once
            raise
        self.part_rows += data.num_rows
        self.pending, self.pending_rows = [], 0

    def _close_part(self) -> None:
        self._write_group()
        if self.part is None:
            return
        path = self._part_path(len(self.names))
        try:
            with self._errors("writing", path):
                self.part.close()
        except BaseException:
            self.abort()
            raise
        self.part = None
        self.names.append(path.rsplit("/", 1)[-1] if isinstance(path, str) else path.name)
        self.rows += self.part_rows
        self.part_rows = 0

    def _part_path(self, index: int) -> Path | str:
        return self.staging / f"part-{index:05d}.parquet"

    def _open(self, path: Path | str, schema: pa.Schema) -> pq.ParquetWriter:
        return pq.ParquetWriter(path, schema, compression="zstd")

    def _flush(self) -> None:
        """Write everything pending; an empty partition gets a typed empty file."""
        if not self.names and self.part is None and not self.pending:
            self.pending = [self.schema.empty_table()]
        self._close_part()

    def commit(self, before_swap: Callable[[Path], None] | None = None) -> WrittenPartition:
        """Write what is left (a typed empty file for an empty partition) and swap it in.

        On any failure the new version is dropped and the partition keeps its previous one.
        """
        try:
            self._flush()
            if before_swap is not None:
                before_swap(self.staging)
            with self._errors("swapping in", self.target):
                self.target.parent.mkdir(parents=True, exist_ok=True)
                _swap(self.lake, self.table, self.staging, self.target)
        except BaseException:
            self.abort()
            raise
        if self.staging.exists():  # the replaced version, kept a moment for readers
            self.lake.keep_for_readers(self.table, self.staging)
        self._finish()
        files = tuple(self.target / n for n in self.names)
        log.debug("lake: %s/%s <- %d rows in %d files", self.table, self.target.name, self.rows,
                  len(files))  # fmt: skip
        return WrittenPartition(self.table, self.column, self.value, self.target, files, self.rows)

    def abort(self) -> None:
        """Drop the new version; the previous partition stays as it was. Safe to repeat."""
        self._finish()

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self.part is not None:
            with contextlib.suppress(Exception):  # its file goes with the staging folder
                self.part.close()
            self.part = None
        _remove(self.staging)
        self.release()

    @contextmanager
    def _errors(self, what: str, where: Path | str) -> Iterator[None]:
        after = "the new version was dropped and the partition keeps its previous one"
        try:
            with _errors(self.lake.root, f"{what} partition {self.table}/{self.target.name}",
                         where, after):  # fmt: skip
                yield
        except StorageError as exc:
            if disk_full(exc):  # the space replaced versions hold: for a new attempt, a rerun
                self.lake.free_replaced()
            raise


# -- swapping ------------------------------------------------------------------------------------


def _swap(lake: Lake, table: str, staging: Path, target: Path) -> None:
    """Put ``staging``'s version at ``target``; ``staging`` then holds the old one, or nothing."""
    for _attempt in range(100):  # another writer may create the partition meanwhile
        try:
            try:
                _renameat2(staging, target, RENAME_EXCHANGE)
                return
            except FileNotFoundError:
                if not staging.exists():
                    raise
            try:  # no partition yet
                _renameat2(staging, target, RENAME_NOREPLACE)
                return
            except FileExistsError:
                continue
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            _swap_by_two_renames(lake, table, staging, target)
            return
    raise OSError(errno.EAGAIN, "the partition kept changing under this swap", str(target))


def _swap_by_two_renames(lake: Lake, table: str, staging: Path, target: Path) -> None:
    """Where the exchange is unsupported: old version aside, new one in, under the table's swap
    lock (so every version put aside that the lock's holder finds is a dead swapper's)."""
    lock_path = lake.root / LOCKS / f"{target.parent.name}.swap"
    lock = _FileLock(lock_path)
    try:
        lock.exclusive(lake.lock_timeout, f"lake {lake.root}: swapping a partition of {table}")
        for old in _entries(staging.parent):
            if old.name.endswith(OLD):
                aside = target.parent / old.name.split(".", 1)[0]
                if aside.exists():
                    _remove(old)
                else:
                    log.warning("lake: restoring %s, which a killed run left aside", aside)
                    os.rename(old, aside)
        if target.exists():
            old = staging.parent / f"{staging.name}{OLD}"
            os.rename(target, old)
            os.rename(staging, target)
            os.rename(old, staging)  # retired by the commit, as after an exchange
        else:
            os.rename(staging, target)
    finally:
        lock.close()


_AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


def _load_renameat2() -> Callable[..., int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not Linux, or a libc without it
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]  # fmt: skip
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _load_renameat2()


def _renameat2(source: Path, target: Path, flags: int) -> None:
    if _RENAMEAT2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available here", str(source))
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(source), None, str(target))


# -- locks -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Held:
    """A table's lock as this lake object holds it: opened by the first user, closed by the
    last (its threads share one shared flock)."""

    lock: _FileLock | None = None
    users: int = 0


class _FileLock:
    """``flock`` on a file that is never deleted; an exclusive holder writes who it is in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def try_exclusive(self) -> bool:
        if not self._try(_EXCLUSIVE):
            return False
        self._sign()
        return True

    def exclusive(self, timeout: float, what: str) -> None:
        self._wait(_EXCLUSIVE, timeout, what)
        self._sign()

    def shared(self, timeout: float, what: str) -> None:
        self._wait(_SHARED, timeout, what)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None

    def _try(self, operation: int) -> bool:
        if sys.platform == "win32":  # no flock: runs on one lake are not serialized there
            return True
        assert self.fd is not None
        try:
            fcntl.flock(self.fd, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _wait(self, operation: int, timeout: float, what: str) -> None:
        deadline, pause = time.monotonic() + timeout, 0.005
        while not self._try(operation):
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockError(
                    f"{what}: another run holds {self.path} (held by {self._holder()}) after "
                    f"waiting {timeout:g} s (BIZAGI_LOCK_TIMEOUT); wait for it to finish, or "
                    f"stop it, then rerun"
                )
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.2)

    def _sign(self) -> None:
        assert self.fd is not None
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        text = f"pid {os.getpid()} on {socket.gethostname()} since {now}\n".encode()
        with quietly():
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, text, 0)

    def _holder(self) -> str:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        return text or "a process that did not sign it"


_EXCLUSIVE = 0 if sys.platform == "win32" else fcntl.LOCK_EX
_SHARED = 0 if sys.platform == "win32" else fcntl.LOCK_SH


# -- helpers -----------------------------------------------------------------------------------


@contextmanager
def _errors(root: Path | str, what: str, where: Path | str, after: str = "") -> Iterator[None]:
    """OSErrors of the file system as a StorageError saying what, where and what to do."""
    try:
        yield
    except BizagiError:
        raise
    except OSError as exc:
        raise storage_error(f"lake {root}", "BIZAGI_LAKE", what, where, exc, after) from exc


def _entries(folder: Path) -> list[Path]:
    return sorted(folder / name for name in _names(folder))


def disk_full(exc: StorageError) -> bool:
    """Whether a StorageError was a full disk or quota."""
    return getattr(exc.__cause__, "errno", None) in (errno.ENOSPC, errno.EDQUOT)


class _Retirements:
    """Deletes replaced versions as they come of age: one thread per retired folder in this
    process, running until the last version this process set aside there is old enough (the
    versions of other processes sharing the lake are theirs to wait for; old ones go too)."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Start empty; in a forked child, the parent's threads did not come along, and its
        mutex may have been held by one of them."""
        self._mutex = threading.Lock()
        self._due: dict[Path, tuple[float, float]] = {}  # folder -> (when, keep_replaced)
        self._threads: dict[Path, threading.Thread] = {}
        self._finalized_in = 0  # the pid whose multiprocessing exit waits for the threads

    def add(self, folder: Path, keep: float) -> None:
        """A version was set aside in ``folder`` now: delete it ``keep`` seconds from now."""
        with self._mutex:
            self._due[folder] = (time.monotonic() + keep, keep)
            if folder in self._threads:
                return  # it looks at _due again before it stops
            thread = threading.Thread(target=self._run, args=(folder,),
                                      name=f"lake-retired {folder}", daemon=True)  # fmt: skip
            try:
                thread.start()
            except RuntimeError as exc:  # no thread to be had: the next write deletes them
                log.debug("lake: no thread to delete replaced versions in %s: %s", folder, exc)
                return
            self._threads[folder] = thread
            if self._finalized_in != os.getpid():  # a multiprocessing child skips atexit
                multiprocessing.util.Finalize(None, finish_replacing, exitpriority=0)
                self._finalized_in = os.getpid()

    def _run(self, folder: Path) -> None:
        while True:
            with self._mutex:
                when, keep = self._due[folder]
            wait = when - time.monotonic()
            if wait > 0:
                time.sleep(wait + 0.01)
                continue
            _drop_old(folder, keep)
            with self._mutex:
                if self._due[folder][0] > time.monotonic():
                    continue  # a version came meanwhile
                del self._due[folder], self._threads[folder]
                return

    def wait(self, seconds: float) -> None:
        """Let the threads finish, ``seconds`` at most in all."""
        deadline = time.monotonic() + seconds
        with self._mutex:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


_RETIRED = _Retirements()
os.register_at_fork(after_in_child=_RETIRED.forget)


@atexit.register
def finish_replacing() -> None:
    """Wait for this process's threads to delete what it replaced, so a run leaves no copy
    behind: ``KEEP_REPLACED`` seconds after its last write, and a little for the deleting. A
    longer ``keep_replaced`` is not waited for: the next write of the table deletes what is
    left. Run at exit, by a multiprocessing child's finaliser, and by a caller about to
    replace the process's image (exec runs no ``atexit`` handler)."""
    _RETIRED.wait(KEEP_REPLACED + 2.0)


def _drop_old(folder: Path, keep: float) -> int:
    """Delete the replaced versions in ``folder`` that are ``keep`` seconds old (best effort);
    returns how many."""
    now, gone = time.time_ns(), 0
    with quietly():
        for name in _names(folder):
            if _age(name, now) >= keep:
                _remove(folder / name)
                gone += 1
    return gone


def _names(folder: Path) -> list[str]:
    """A folder's entry names, unsorted (``_entries`` sorts paths: dearer for a long folder);
    none if there is no such folder."""
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in entries]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _age(retired: str, now_ns: int) -> float:
    """Seconds since a replaced version was retired, by the stamp in its name, either way: a
    stamp ahead of this clock (another clock, or this one stepped back) must not keep it for
    ever. A name without a stamp is no version of this module's: as good as old."""
    stamp = retired.rpartition(".")[2]
    return abs(now_ns - int(stamp)) / 1e9 if stamp.isdigit() else math.inf


def _is_partition(name: str) -> bool:
    column, _, value = name.partition("=")
    return column in _COLUMNS and bool(_VALUE.fullmatch(value))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with quietly():
            path.unlink()


@contextmanager
def quietly() -> Iterator[None]:
    """Best-effort file operations: an OSError is only logged (cleanup of what no one reads)."""
    try:
        yield
    except OSError as exc:
        log.debug("lake: ignored %s", exc)


_FEW = 8  # partitions a scan lists one by one rather than listing the whole table


def _unified(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """One schema for files written at different times. Wider types win; a column whose
    files disagree beyond that (a number one day, text another, as an inferred attribute can)
    is read as text, which every Parquet type casts to, rather than failing every read."""
    try:
        return pa.unify_schemas(list(schemas), promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    types: dict[str, set[pa.DataType]] = {}
    for schema in schemas:
        for field in schema:
            types.setdefault(field.name, set()).add(field.type)
    fields = [pa.field(n, next(iter(t)) if len(t) == 1 else pa.string()) for n, t in types.items()]
    return pa.schema(fields)


def _value_of(file: Path | str) -> str:
    """The partition value of a part file: its folder is ``{column}={value}`` (plus a staging
    suffix while a two-rename swap has put it aside)."""
    return Path(file).parent.name.split(".", 1)[0].split("=", 1)[1]


def open_lake(location: str | Path, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Lake:
    """The lake at a folder, or on object storage for a URI (``s3://bucket/prefix``...)."""
    text = str(location)
    if "://" in text and not text.startswith("file://"):
        from bizagi_etl.pipeline.object_lake import ObjectLake  # pyarrow's file systems

        return ObjectLake(text, lock_timeout=lock_timeout)
    return Lake(Path(text.removeprefix("file://")), lock_timeout=lock_timeout)


def extracted_at_of(path: Path) -> dt.datetime | None:
    return extracted_at_in(pq.read_metadata(path))


def extracted_at_in(footer: pq.FileMetaData) -> dt.datetime | None:
    """The extraction instant a part file's footer records (the schema's metadata is kept
    among the footer's keys), for a caller that reads the footer for its rows too."""
    raw = (footer.metadata or {}).get(META_EXTRACTED_AT)
    return dt.datetime.fromisoformat(raw.decode()) if raw else None
