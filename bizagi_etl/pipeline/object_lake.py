"""The lake on object storage (``s3://bucket/prefix``, and what else pyarrow's file systems
open: ``gs://``, ``abfs://``, ``hdfs://``), where there is no rename.

Layout. A partition's versions sit side by side in its folder, each named for when its writer
began: ``{table}/{column}={value}/part-{version}-{NNNNN}.parquet``. A version becomes the
partition once its commit marker ``_commit-{version}.json`` is written, after all of its files;
one object PUT is atomic, so a reader sees the marker whole or not at all.

Readers (``files``, ``scan``, the warehouse's loads) take, per partition, the files of the
newest committed version: the whole old one or the whole new one, never a mix. A writer killed
before its marker leaves files no reader takes; a rerun commits a newer version. Two writers of
one partition each commit a whole version, and the one that began later is the partition.

Old versions are deleted by a later commit of the same partition, once a newer version has been
the partition for ``retire_after`` (so a reader that listed the old one can finish reading it).
Until then a raw ``*.parquet`` glob of the folder sees both: read this lake through ``Lake``
(``files``, ``scan``) or through the warehouse, not by globbing.

Listings are trusted to be complete after a write (read-after-write consistency, which S3,
GCS, Azure and MinIO give). Credentials come from the store's standard chain: for S3,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, instance roles, ``AWS_REGION``, and
``AWS_ENDPOINT_URL`` for S3-compatible stores.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bizagi_etl.connector import SettingsError
from bizagi_etl.connector.errors import StorageError
from bizagi_etl.pipeline.lake import Lake, PartitionWriter, WrittenPartition
from bizagi_etl.pipeline.schema import check_identifier
from bizagi_etl.pipeline.settings import DEFAULT_LOCK_TIMEOUT

if TYPE_CHECKING:
    import pyarrow.dataset as ds

log = logging.getLogger(__name__)

MARKER = "_commit-"  # + version + ".json": the version is committed
RETIRE_AFTER = dt.timedelta(minutes=15)
_COLUMNS = ("day", "snapshot")


class ObjectLake(Lake):
    """The lake's interface over an object store; see the module's text for the guarantees."""

    def __init__(self, root: str, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.uri = root.rstrip("/")
        self.lock_timeout = lock_timeout
        self.retire_after = RETIRE_AFTER
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
        return ObjectPartitionWriter(self, table, column, value, folder, schema, extracted_at)

    @contextmanager
    def writing(self, *tables: str) -> Iterator[None]:
        """No lock to hold: versions and markers keep concurrent writers apart."""
        yield

    def retire(self, folder: str) -> None:
        """Delete the versions older than the newest one that has been the partition for
        ``retire_after``: no reader can still be reading them."""
        entries = self._list(folder, recursive=False)
        now = dt.datetime.now(dt.UTC)
        settled = [
            _version_of(e.base_name)
            for e in entries
            if e.base_name.startswith(MARKER) and e.mtime is not None
            and now - _aware(e.mtime) >= self.retire_after
        ]  # fmt: skip
        if not settled:
            return
        newest = max(v for v in settled if v)
        versions = [(e.path, _version_of(e.base_name)) for e in entries]
        old = [path for path, version in versions if version and version < newest]
        for path in old:
            with _quiet():
                self.fs.delete_file(path)
        if old:
            log.debug("lake: %s: retired %d objects of versions older than %s", folder, len(old),
                      newest)  # fmt: skip

    # -- reading -------------------------------------------------------------------------------

    def files(
        self, table: str, column: str | None = None, value: str | None = None
    ) -> Sequence[Path | str]:
        """The files of the newest committed version of each partition (or of one)."""
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
        try:
            self._flush()
            if before_swap is not None:
                before_swap(self.target)
            body = json.dumps({"version": self.version, "files": self.names, "rows": self.rows,
                               "extracted_at": self.extracted_at.isoformat()})  # fmt: skip
            with self._errors("committing", marker), self.store.fs.open_output_stream(
                marker, metadata={"Content-Type": "application/json"}
            ) as out:  # fmt: skip
                out.write(body.encode())
        except BaseException:
            self.abort()
            raise
        self.done = True
        self.store.retire(self.folder)
        files = tuple(self.store.uri_of(f"{self.folder}/{n}") for n in self.names)
        log.debug("lake: %s/%s <- %d rows in %d files (version %s)", self.table,
                  self.target.name, self.rows, len(files), self.version)  # fmt: skip
        return WrittenPartition(self.table, self.column, self.value,
                                self.store.uri_of(self.folder), files, self.rows)  # fmt: skip

    def _finish(self) -> None:
        """Drop this version's files: no marker names them, so no reader took them."""
        if self.done:
            return
        self.done = True
        if self.part is not None:
            with _quiet():
                self.part.close()
            self.part = None
        for index in range(len(self.names) + 1):
            with _quiet():
                self.store.fs.delete_file(self._part_path(index))


@contextmanager
def _quiet() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        log.debug("lake: ignored %s", exc)


def _version_of(name: str) -> str | None:
    """The version a file or marker of a partition belongs to."""
    if name.startswith(MARKER) and name.endswith(".json"):
        return name[len(MARKER) : -len(".json")]
    if name.startswith("part-") and name.endswith(".parquet"):
        return name[len("part-") :].rsplit("-", 1)[0]
    return None


def _current_files(entries: Sequence[pafs.FileInfo]) -> list[str]:
    """Paths of the files of each partition's newest committed version, sorted."""
    committed: dict[str, str] = {}
    files: dict[tuple[str, str], list[str]] = defaultdict(list)
    for entry in entries:
        folder, _, name = entry.path.rpartition("/")
        version = _version_of(name)
        if version is None:
            continue
        if name.startswith(MARKER):
            committed[folder] = max(committed.get(folder, version), version)
        else:
            files[(folder, version)].append(entry.path)
    return sorted(p for folder, v in committed.items() for p in files.get((folder, v), []))


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
