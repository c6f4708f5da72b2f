"""The lake on object storage (``s3://bucket/prefix``, and what else pyarrow's file systems
open), where there is no rename.

Layout. A partition's versions sit side by side in its folder, each named for when its writer
began: ``{table}/{column}={value}/part-{version}-{NNNNN}.parquet``. A version becomes the
partition when its commit marker ``_commit-{version}.json`` is written, after all of its files;
one object PUT is atomic, so a reader sees the marker whole or not at all.

Readers (``files``, ``scan``, the warehouse's loads) take, per partition, the files of the
version committed last by the store's clock (the markers' modification times): the whole old
version or the whole new one, never a mix, and one copy after a rerun. A writer killed before
its marker leaves files no reader takes. Two writers of one partition each commit a whole
version; the later commit is the partition, as the later swap is in a folder (a store may keep
modification times to the second: a commit tied with another's writes its marker again a second
later). A commit first checks that all its files are still there, and a failed commit takes its
marker back; a marker whose files are gone is never the partition. A folder lake copied as is
(``part-NNNNN.parquet``, no marker) reads as committed until a version replaces it; the folder
lake's leftovers (``_trash``, ``_staging``) are not partitions.

Retiring. What no reader can need is deleted by the next write of the partition and by the first
write of its table in a run (a sweep of the table): versions replaced by one that has been
current for ``RETIRE_AFTER`` (a reader that listed the old one can finish), and files of versions
never committed whose newest file is ``ORPHAN_AFTER`` old (a dead writer's; a live one writes a
part at least every 256k rows). Ages are measured on the store's clock, never a writer's. Until
then a raw ``*.parquet`` glob of a folder may see several versions: read this lake through
``Lake`` (``files``, ``scan``) or the warehouse, not by globbing.

Listings are trusted to be complete after a write (read-after-write consistency, which S3,
GCS, Azure and MinIO give). Credentials come from the store's standard chain: for S3,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, instance roles, ``AWS_REGION``, and
``AWS_ENDPOINT_URL`` for S3-compatible stores; never from the location, which is shown in logs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bizagi_etl.connector import SettingsError
from bizagi_etl.connector.errors import StorageError
from bizagi_etl.pipeline.lake import Lake, PartitionWriter, WrittenPartition, quietly
from bizagi_etl.pipeline.names import check_identifier
from bizagi_etl.pipeline.settings import DEFAULT_LOCK_TIMEOUT, check_lake

if TYPE_CHECKING:
    import pyarrow.dataset as ds

log = logging.getLogger(__name__)

MARKER = "_commit-"  # + version + ".json": the version is committed
CLOCK = "_clock"  # an empty object the lake writes to read the store's time
LEGACY = ""  # the version of part-NNNNN.parquet files without one (a folder lake copied as is)
# A replaced version is deleted once its successor has been current this long (store time):
# a reader that listed it can finish.
RETIRE_AFTER = dt.timedelta(minutes=15)
# Files of a version never committed are deleted once its newest is this old: its writer died
# (a live one writes a part file at least every 256k rows).
ORPHAN_AFTER = dt.timedelta(hours=6)
_COLUMNS = ("day", "snapshot")


class ObjectLake(Lake):
    """The lake's interface over an object store; see the module's text for the guarantees."""

    def __init__(self, root: str, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        check_lake(root)
        self.uri = root.rstrip("/")
        self.lock_timeout = lock_timeout
        self.retire_after = RETIRE_AFTER
        self.orphan_after = ORPHAN_AFTER
        self._swept: set[str] = set()
        try:
            self.fs, base = pafs.FileSystem.from_uri(self.uri)
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            raise SettingsError(
                f"setting 'lake' (BIZAGI_LAKE): {self.uri!r} is not a location pyarrow can open "
                f"(expected a folder or e.g. s3://bucket/prefix): {exc}"
            ) from None
        self.base = base.rstrip("/")
        self.root = self.uri  # type: ignore[assignment]  # what messages and metadata show
        self._table_dirs: dict[str, Path] = {}
        bucket = self.base.split("/", 1)[0]
        with self._errors("opening the bucket", bucket):
            found = self.fs.get_file_info(bucket)
        if found.type == pafs.FileType.NotFound:
            raise StorageError(
                f"lake {self.uri}: bucket {bucket!r} does not exist or is not visible with these "
                f"credentials; create it, or set BIZAGI_LAKE elsewhere"
            )

    def __repr__(self) -> str:
        return f"Lake({self.uri!r})"

    # -- places --------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def uri_of(self, key: str) -> str:
        return f"{self.uri}/{key.removeprefix(self.base + '/')}"

    def _table_key(self, table: str) -> str:
        return self._key(check_identifier("table", table))

    def table_dir(self, table: str) -> Path:
        """The table's key, as a path for messages (no folder exists on an object store)."""
        return Path(self._table_key(table))

    def has_table(self, table: str) -> bool:
        with self._errors(f"looking for table {table}", self._table_key(table)):
            return self.fs.get_file_info(self._table_key(table)).type == pafs.FileType.Directory

    # -- writing -------------------------------------------------------------------------------

    def open_partition(
        self, table: str, column: str, value: str, schema: pa.Schema, extracted_at: dt.datetime
    ) -> PartitionWriter:
        folder = str(self.partition_dir(table, column, value))  # checks table, column, value
        self.sweep(table)
        return ObjectPartitionWriter(self, table, column, value, folder, schema, extracted_at)

    @contextmanager
    def writing(self, *tables: str) -> Iterator[None]:
        """No lock to hold: versions and markers keep concurrent writers apart."""
        yield

    def free_replaced(self) -> None:
        """Nothing set aside here: replaced versions go by their markers (``retire``)."""

    def retire(
        self, folder: str, marker: str, entries: Sequence[pafs.FileInfo] | None = None
    ) -> None:
        """Best effort, after a commit: delete what no reader can need in the partition's
        folder (``_Folder.retirable``), as of the commit's marker's time on the store's clock
        (read from the same listing: no request more). ``entries``: the folder's listing made
        since the marker was written, if the caller has one. A failure only leaves garbage."""
        try:
            if entries is None:
                entries = self._list(folder, recursive=False)
            mtimes = [e.mtime for e in entries if e.base_name == marker and e.mtime]
            self._retire(entries, _aware(mtimes[0]) if mtimes else self.store_now())
        except (OSError, StorageError) as exc:
            log.warning("lake: could not retire old versions in %s (left for later): %s",
                        folder, exc)  # fmt: skip

    def sweep(self, table: str) -> None:
        """Best effort, once per table and lake object, before its first write: retire what
        earlier runs left in every partition of the table (replaced versions, killed writers)."""
        if table in self._swept:
            return
        self._swept.add(table)
        try:
            self._retire(self._list(self._table_key(table), recursive=True), self.store_now())
        except (OSError, StorageError) as exc:
            log.warning("lake: could not sweep %s (left for later): %s", table, exc)

    def store_now(self) -> dt.datetime:
        """The object store's clock (an object written now, and its modification time), so
        no writer's clock decides what is old."""
        key = self._key(CLOCK)
        with self._errors("reading the store's clock", key):
            with self.fs.open_output_stream(key) as out:
                out.write(b"")
            mtime = self.fs.get_file_info(key).mtime
        return _aware(mtime) if mtime is not None else dt.datetime.now(dt.UTC)

    def _retire(self, entries: Sequence[pafs.FileInfo], now: dt.datetime) -> None:
        old = [
            path
            for folder in _folders(entries).values()
            for path in folder.retirable(now, self.retire_after, self.orphan_after)
        ]
        for path in old:
            with quietly():
                self.fs.delete_file(path)
        if old:
            log.debug("lake: retired %d objects no reader needs", len(old))

    # -- reading -------------------------------------------------------------------------------

    def files(
        self, table: str, column: str | None = None, value: str | None = None
    ) -> Sequence[Path | str]:
        """The files of each partition's current version (the one committed last)."""
        if column and value:
            columns = _COLUMNS if column == "*" else (column,)
            folders = [str(self.partition_dir(table, c, value)) for c in columns]
            entries = [e for f in folders for e in self._list(f, recursive=False)]
        else:
            entries = self._list(self._table_key(table), recursive=True)
            if value is not None:
                entries = [e for e in entries if Path(e.path).parent.name.endswith(f"={value}")]
        return [self.uri_of(p) for p in _current_files(entries)]

    def partitions(self, table: str) -> list[tuple[str, str]]:
        entries = self._list(self._table_key(table), recursive=True)
        found = {tuple(Path(p).parent.name.split("=", 1)) for p in _current_files(entries)}
        return sorted((c, v) for c, v in found if c in _COLUMNS)

    def tables(self, prefix: str = "") -> list[str]:
        entries = self._list(self.base, recursive=False)
        return sorted(
            e.base_name for e in entries if e.type == pafs.FileType.Directory
            and e.base_name.startswith(prefix) and not e.base_name.startswith("_")
        )  # fmt: skip

    def footer(self, file: Path | str) -> pq.FileMetaData:
        with self._errors("reading a footer", str(file)):
            return pq.read_metadata(self._path(file), filesystem=self.fs)

    def read_file(self, file: Path | str) -> pa.Table:
        with self._errors("reading", str(file)):
            return pq.read_table(self._path(file), filesystem=self.fs)

    def _dataset(self, files: Sequence[Path | str], schema: pa.Schema | None = None) -> ds.Dataset:
        import pyarrow.dataset as ds

        paths = [self._path(f) for f in files]
        return ds.dataset(paths, format="parquet", schema=schema, filesystem=self.fs)

    def _path(self, file: Path | str) -> str:
        """A file's path in the file system: its URI without the scheme's part."""
        return self._key(str(file).removeprefix(self.uri + "/"))

    def folder_listing(self, folder: str) -> list[pafs.FileInfo]:
        """What one partition's folder holds now."""
        return self._list(folder, recursive=False)

    def _list(self, key: str, *, recursive: bool) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(key, allow_not_found=True, recursive=recursive)
        with self._errors("listing", key):
            return self.fs.get_file_info(selector)


class ObjectPartitionWriter(PartitionWriter):
    """Writes a partition's new version beside the old one, then commits it with its marker."""

    def __init__(
        self,
        lake: ObjectLake,
        table: str,
        column: str,
        value: str,
        folder: str,
        schema: pa.Schema,
        extracted_at: dt.datetime,
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        self.version = f"{now:%Y%m%dT%H%M%S%f}Z{uuid.uuid4().hex[:8]}"
        self.folder = folder
        target = Path(folder)  # for messages; the object lake speaks in keys
        super().__init__(lake, table, column, value, target, target, schema, extracted_at)
        self.store = lake
        self.extracted_at = extracted_at

    def _part_path(self, index: int) -> str:
        return f"{self.folder}/part-{self.version}-{index:05d}.parquet"

    def _open(self, path: Path | str, schema: pa.Schema) -> pq.ParquetWriter:
        return pq.ParquetWriter(str(path), schema, compression="zstd", filesystem=self.store.fs)

    def commit(self, before_swap: Callable[[Path], None] | None = None) -> WrittenPartition:
        """Write what is left, then the marker that makes this version the partition."""
        marker = f"{self.folder}/{MARKER}{self.version}.json"
        marking = False
        try:
            self._flush()
            if before_swap is not None:
                before_swap(self.target)
            self._check_files()
            marking = True
            self._put_marker(marker)
            listing = self._win_a_tie(marker)
        except BaseException:
            if marking:  # the PUT may have landed even if this process never heard back
                with quietly():
                    self.store.fs.delete_file(marker)
            self.abort()
            raise
        self.done = True
        self.store.retire(self.folder, marker.rsplit("/", 1)[-1], listing)
        files = tuple(self.store.uri_of(f"{self.folder}/{n}") for n in self.names)
        log.debug("lake: %s/%s <- %d rows in %d files (version %s)", self.table,
                  self.target.name, self.rows, len(files), self.version)  # fmt: skip
        return WrittenPartition(self.table, self.column, self.value,
                                self.store.uri_of(self.folder), files, self.rows)  # fmt: skip

    def _check_files(self) -> None:
        """Every file of this version is still there: a run's sweep takes a writer idle for
        ``ORPHAN_AFTER`` for a dead one, and a marker must never name a partial version."""
        present = {e.base_name for e in self.store.folder_listing(self.folder)}
        missing = [n for n in self.names if n not in present]
        if missing:
            raise StorageError(
                f"lake {self.store.uri}: partition {self.table}/{self.target.name}: "
                f"files of this version vanished before its commit ({len(missing)} of "
                f"{len(self.names)}: another run's sweep took this writer, idle over "
                f"{self.store.orphan_after}, for a dead one's); the partition keeps its previous "
                f"version; rerun"
            )

    def _put_marker(self, marker: str) -> None:
        body = json.dumps({"version": self.version, "files": self.names, "rows": self.rows,
                           "extracted_at": self.extracted_at.isoformat()})  # fmt: skip
        with self._errors("committing", marker), self.store.fs.open_output_stream(
            marker, metadata={"Content-Type": "application/json"}
        ) as out:  # fmt: skip
            out.write(body.encode())

    def _win_a_tie(self, marker: str) -> list[pafs.FileInfo] | None:
        """The later commit is the partition. A store that keeps modification times to the
        second cannot tell two commits of one second apart, and the order falls back to the
        later-begun: this commit then writes its marker again, a second later. Returns the
        folder's listing as of the marker's last write, for retiring (None: not listed)."""
        for _attempt in range(3):
            listing = self.store.folder_listing(self.folder)
            state = _folders(listing).get(self.folder)
            current = state.current() if state else None
            if state is None or current in (None, self.version):
                return listing
            if state.committed_at(current) != state.committed_at(self.version):
                return listing  # committed after this one: it is the partition
            time.sleep(1.0)
            self._put_marker(marker)
        return None

    def _finish(self) -> None:
        """Drop this version's files: no marker names them, so no reader took them."""
        if self.done:
            return
        self.done = True
        if self.part is not None:
            with quietly():
                self.part.close()
            self.part = None
        for index in range(len(self.names) + 1):
            with quietly():
                self.store.fs.delete_file(self._part_path(index))


def _version_of(name: str) -> str | None:
    """The version a file or marker of a partition belongs to (``LEGACY`` for a file written
    by the folder lake, ``part-NNNNN.parquet``)."""
    if name.startswith(MARKER) and name.endswith(".json"):
        return name[len(MARKER) : -len(".json")]
    if _LEGACY_PART.fullmatch(name):
        return LEGACY
    if name.startswith("part-") and name.endswith(".parquet"):
        return name[len("part-") :].rsplit("-", 1)[0]
    return None


_LEGACY_PART = re.compile(r"part-\d{5}\.parquet")
_PARTITION = re.compile(r"(day|snapshot)=\d{4}-\d{2}-\d{2}")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class _Folder:
    """What one partition folder's listing says: each version's files and commit instant."""

    markers: dict[str, pafs.FileInfo] = field(default_factory=dict)
    files: dict[str, list[pafs.FileInfo]] = field(default_factory=lambda: defaultdict(list))

    def committed_at(self, version: str) -> dt.datetime | None:
        marker = self.markers.get(version)
        return _aware(marker.mtime) if marker is not None and marker.mtime else None

    def order(self, version: str) -> tuple[dt.datetime, str]:
        """Commits in order: by the store's clock, then (within its precision, a second on
        some stores) the later-begun version."""
        return (self.committed_at(version) or _EPOCH, version)

    def current(self) -> str | None:
        """The version committed last; a folder without markers but with the folder lake's
        files holds those."""
        live = [v for v in self.markers if self.files.get(v)]  # a commit has at least one file
        if live:
            return max(live, key=self.order)
        return LEGACY if self.files.get(LEGACY) else None

    def retirable(
        self, now: dt.datetime, retire_after: dt.timedelta, orphan_after: dt.timedelta
    ) -> list[str]:
        """Paths no reader can need: versions committed before one that has been current for
        ``retire_after``, and files of versions never committed, idle for ``orphan_after``."""
        current = self.current()
        settled = [self.order(v) for v in self.markers if self.files.get(v)
                   and now - (self.committed_at(v) or now) >= retire_after]  # fmt: skip
        cut = max(settled, default=None)
        old: list[str] = []
        for version in {*self.files, *self.markers} - {current}:
            files = [f.path for f in self.files.get(version, [])]
            if version in self.markers and not files:  # its files are gone: a dropped commit
                old.append(self.markers[version].path)
            elif version in self.markers or version == LEGACY:
                if cut is not None and self.order(version) < cut:
                    marker = self.markers.get(version)
                    old += files + ([marker.path] if marker is not None else [])
            elif files:
                newest = max(_aware(f.mtime) if f.mtime else now for f in self.files[version])
                if now - newest >= orphan_after:
                    old += files
        return old


def _folders(entries: Sequence[pafs.FileInfo]) -> dict[str, _Folder]:
    """The listing of one or many partition folders, folder by folder. Only partition folders
    count: not the folder lake's leftovers (``_trash``, ``_staging``) a copy may bring."""
    folders: dict[str, _Folder] = defaultdict(_Folder)
    for entry in entries:
        folder, _, name = entry.path.rpartition("/")
        parent, _, partition = folder.rpartition("/")
        version = _version_of(name)
        inside = parent.rpartition("/")[2]  # the table, or a leftover folder inside it
        if version is None or not _PARTITION.fullmatch(partition) or inside.startswith("_"):
            continue
        if name.startswith(MARKER):
            folders[folder].markers[version] = entry
        else:
            folders[folder].files[version].append(entry)
    return folders


def _current_files(entries: Sequence[pafs.FileInfo]) -> list[str]:
    """Paths of the files of each partition's current version, sorted."""
    out = []
    for folder in _folders(entries).values():
        current = folder.current()
        if current is not None:
            out += [f.path for f in folder.files.get(current, [])]
    return sorted(out)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
