"""The lake and the warehouse under attack: concurrent runs, readers during swaps, kill -9,
full disks, locks held by other processes, and paths that cannot hold them.

Everything here is real: processes, files, DuckDB, tmpfs mounts for a full or read-only disk
(created under the test's folder and always unmounted).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from conftest import unfinished

from bizagi_etl.connector.errors import LockError, StorageError
from bizagi_etl.pipeline import lake as lake_module
from bizagi_etl.pipeline.lake import LOCKS, STAGING, TRASH, Lake
from bizagi_etl.pipeline.warehouse import Warehouse

ROOT = Path(__file__).resolve().parent.parent
AT = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
SCHEMA = pa.schema([("id", pa.int64()), ("version", pa.int64()), ("text", pa.string())])
FIRST = dt.date(2025, 1, 1)
ROWS = 1_000  # rows a day
PARTS = 4  # part files a day: ROWS_PER_PART = 250 in the writer scripts

# A writer of days [first, last) of table "things", `rounds` times (0: until killed), each
# round on two threads as extraction writes, with `version` = the round, each day in `parts`
# part files. It prints "ready" once imported, and "swaps N" at the end.
WRITER = """
import datetime as dt, sys
from concurrent.futures import ThreadPoolExecutor
import pyarrow as pa
from bizagi_etl.pipeline import lake as lake_module
from bizagi_etl.pipeline.lake import Lake

root, first, last, rounds, rows, parts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \\
    int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
lake_module.ROWS_PER_PART = rows // parts
schema = pa.schema([("id", pa.int64()), ("version", pa.int64()), ("text", pa.string())])
lake = Lake(root, lock_timeout=30)
start = dt.date(2025, 1, 1)
at = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)

def write(day, version):
    ids = list(range(day * rows, (day + 1) * rows))
    batch = pa.table({"id": ids, "version": [version] * rows, "text": [f"row {i}" for i in ids]},
                     schema=schema)
    value = (start + dt.timedelta(days=day)).isoformat()
    writer = lake.open_partition("things", "day", value, schema, at)
    try:
        for offset in range(0, rows, rows // parts):  # a part file each, as snapshots stream
            writer.write(batch.slice(offset, rows // parts))
        writer.commit()
    except BaseException:
        writer.abort()
        raise

print("ready", flush=True)
swaps, version = 0, 0
with ThreadPoolExecutor(2) as pool:
    while rounds == 0 or version < rounds:
        version += 1
        for future in [pool.submit(write, d, version) for d in range(first, last)]:
            future.result()
            swaps += 1
print("swaps", swaps, flush=True)
"""


def _writer(
    root: Path, first: int, last: int, rounds: int, parts: int = PARTS
) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", WRITER, str(root), str(first), str(last), str(rounds),
               str(ROWS), str(parts)]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _day(index: int) -> str:
    return (FIRST + dt.timedelta(days=index)).isoformat()


def _assert_whole(lake: Lake, days: Iterable[int], parts: int = PARTS) -> None:
    """Each day is present once, whole: its part files, its rows, all of one version."""
    days = list(days)
    assert [v for _, v in lake.partitions("things")] == [_day(d) for d in days]
    for d in days:
        files = lake.files("things", "day", _day(d))
        assert [f.name for f in files] == [f"part-{i:05d}.parquet" for i in range(parts)], d
        table = pa.concat_tables(pq.read_table(f) for f in files)
        assert table.column("id").to_pylist() == list(range(d * ROWS, (d + 1) * ROWS)), d
        assert len(set(table.column("version").to_pylist())) == 1, f"{d}: versions mixed"


def _assert_no_debris(lake: Lake) -> None:
    """Nothing but partitions in the table, nothing in staging, nothing but lock files."""
    table = lake.table_dir("things")
    assert sorted(p.name for p in table.iterdir() if not p.name.startswith("day=")) == []
    assert not (table / TRASH).exists()
    assert not (table / STAGING).exists()
    assert unfinished(lake, "things") == []
    retired = lake.retired_dir("things")
    assert not retired.exists() or list(retired.iterdir()) == [], "writers exited: none kept"
    assert all(p.suffix in (".lock", ".swap") for p in (lake.root / LOCKS).iterdir())
    top = sorted(p.name for p in lake.root.iterdir())
    assert top == sorted({LOCKS, STAGING, "things"}), top


@contextmanager
def _tmpfs(folder: Path, size: str = "8m") -> Iterator[Path]:
    folder.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                   check=True)  # fmt: skip
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], check=False).returncode:
            subprocess.run(["umount", "-l", str(folder)], check=True)


def _read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def _fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` until ``leave`` bytes are free."""
    filler = folder / "filler"
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with filler.open("wb") as f:
        f.truncate(0)
        chunk = b"\0" * 65_536
        left = free - leave
        while left > 0:
            left -= f.write(chunk[: min(len(chunk), left)])
    return filler


def _free(folder: Path) -> int:
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


# -- 1. two runs on one lake ---------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_two_processes_writing_overlapping_windows_both_succeed(tmp_path):
    root = tmp_path / "lake"
    began = time.monotonic()
    writers = [_writer(root, 0, 12, 3), _writer(root, 6, 18, 3)]
    outputs = [w.communicate(timeout=100) for w in writers]
    for writer, (out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err
        assert "Error" not in err, err
        assert out.split()[-1] == "36", out
    lake = Lake(root)
    _assert_whole(lake, range(18))
    ids = lake.read("things").column("id").to_pylist()
    assert sorted(ids) == list(range(18 * ROWS)), "every row once"
    _assert_no_debris(lake)
    assert time.monotonic() - began < 100


# -- 2. readers while partitions are replaced ----------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("parts", [1, PARTS])
def test_readers_never_see_a_missing_or_doubled_day_during_swaps(tmp_path, parts):
    """Daily partitions are one file (``write_partition``): a query reads each day whole, old
    or new. A snapshot streamed in several part files can be read across a swap, part by part
    (DuckDB opens a query's files as it scans): never a missing or doubled file, but the parts
    of a day may then come from both versions."""
    root = tmp_path / "lake"
    days = 5
    seed = _writer(root, 0, days, 1, parts)
    assert seed.communicate(timeout=60)[0].split()[-1] == str(days)
    writer = _writer(root, 0, days, 0, parts)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # into its loop of swaps
        table = root / "things"
        queries = {
            glob: f"SELECT count(*), count(DISTINCT day), count(DISTINCT version || '/' || day), "
            f"count(DISTINCT filename) FROM read_parquet('{table}/{glob}', filename = true, "
            f"hive_partitioning = true)"
            for glob in ("day=*/*.parquet", "**/*.parquet")
        }
        con = duckdb.connect()
        reads, deadline = 0, time.monotonic() + 2.0
        while time.monotonic() < deadline:
            for glob, sql in queries.items():
                rows, seen_days, versions, files = con.execute(sql).fetchone()
                assert (rows, seen_days) == (days * ROWS, days), f"{glob}: {rows} rows, {seen_days}"
                assert files == days * parts, f"{glob}: {files} files"
                if parts == 1:
                    assert versions == days, f"{glob}: a day mixes two versions"
                reads += 1
            dataset = pads.dataset(table, format="parquet", partitioning="hive")
            assert dataset.count_rows() == days * ROWS
        con.close()
        assert writer.poll() is None, writer.stderr.read() if writer.stderr else ""
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    _assert_whole(Lake(root), range(days), parts)  # and after the kill too
    assert reads > 20, reads


# -- 3. kill -9 at random moments, then another window -------------------------------------------


@pytest.mark.timeout(180)
def test_kill_9_at_random_moments_then_another_window_leaves_every_partition_whole(tmp_path):
    root = tmp_path / "lake"
    lake = Lake(root)
    draw = random.Random(20261102)
    debris_seen = 0
    for _kill in range(10):
        writer = _writer(root, 0, 6, 0)
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(draw.uniform(0.0, 0.4))
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        _assert_whole(lake, [int(v[-2:]) - 1 for _, v in lake.partitions("things")])
        debris_seen += bool(unfinished(lake, "things"))
    assert debris_seen >= 5, "the kills should have left staging behind"
    other = _writer(root, 6, 9, 1)  # a different window: days 6 to 8
    _, err = other.communicate(timeout=60)
    assert other.returncode == 0, err
    _assert_whole(lake, range(9))
    _assert_no_debris(lake)


# -- 4. full disks -------------------------------------------------------------------------------


def _batch(rows: int, version: int, rng: np.random.Generator | None = None) -> pa.Table:
    ids = rng.integers(0, 2**62, rows) if rng is not None else np.arange(rows)
    return pa.table({"id": ids, "version": np.full(rows, version), "text": ["t"] * rows},
                    schema=SCHEMA)  # fmt: skip


@pytest.mark.timeout(60)
def test_a_full_disk_while_writing_the_lake_keeps_the_old_partition(tmp_path):
    with _tmpfs(tmp_path / "disk") as disk:
        lake = Lake(disk / "lake")
        lake.write_partition("things", "day", _day(0), [_batch(10, 1)], SCHEMA, key=["id"],
                             extracted_at=AT)  # fmt: skip
        free = _free(disk)
        big = _batch(3_000_000, 2, np.random.default_rng(1))  # ~24 MB of random ids: no fit
        with pytest.raises(StorageError) as caught:
            lake.write_partition("things", "day", _day(0), [big], SCHEMA, key=[],
                                 extracted_at=AT)  # fmt: skip
        message = str(caught.value)
        assert "the disk is full" in message
        assert f"things/day={_day(0)}" in message
        assert str(disk / "lake") in message
        assert "keeps its previous one" in message
        assert "free space" in message
        assert lake.read("things").column("version").to_pylist() == [1] * 10
        assert unfinished(lake, "things") == [], "staging cleaned"
        assert _free(disk) >= free - 64 * 1024, "the space came back"
        lake.write_partition("things", "day", _day(0), [_batch(5, 3)], SCHEMA, key=["id"],
                             extracted_at=AT)  # fmt: skip
        assert lake.read("things").column("version").to_pylist() == [3] * 5


@pytest.mark.timeout(60)
def test_a_rerun_on_a_nearly_full_disk_gets_the_space_replaced_versions_hold(tmp_path):
    """Replaced versions wait a moment for readers; a disk without room for them gives their
    space back to the rerun's next partition instead of failing it, whichever table they
    were of."""
    with _tmpfs(tmp_path / "disk", "12m") as disk:
        lake = Lake(disk / "lake", keep_replaced=60)  # none would come of age during the test
        rng = np.random.default_rng(7)
        days = [_batch(100_000, 1, rng) for _ in range(4)]  # ~0.8 MB of random ids each
        for table in ("things", "others"):
            for d, batch in enumerate(days):
                lake.write_partition(table, "day", _day(d), [batch], SCHEMA, key=[],
                                     extracted_at=AT)  # fmt: skip
        for table in ("things", "others"):  # the second needs the first's replaced versions'
            with lake.writing(table):
                for d, batch in enumerate(days):
                    lake.write_partition(table, "day", _day(d), [batch], SCHEMA, key=[],
                                         extracted_at=AT)  # fmt: skip
        assert lake.rows("things") == lake.rows("others") == 4 * 100_000
        assert lake.freed > 0, "some space was taken back"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("rows", "memory_limit", "failing"),
    [
        (100_000, "256MB", "Failed to commit"),  # held in memory, written to the log at COMMIT,
        # after which DuckDB has no transaction left to roll back
        (2_000_000, "256MB", "Could not write file"),  # row groups written while inserting
        (2_000_000, "16MB", "offload"),  # spilled beyond the memory limit
    ],
)
def test_a_full_disk_while_loading_the_warehouse_keeps_what_landed(
    tmp_path, caplog, rows, memory_limit, failing
):
    lake = Lake(tmp_path / "lake")
    small = lake.write_partition("things", "day", _day(0), [_batch(1_000, 1)], SCHEMA,
                                 key=["id"], extracted_at=AT)  # fmt: skip
    big = lake.write_partition("things", "day", _day(1), [_batch(rows, 2)], SCHEMA,
                               key=["id"], extracted_at=AT)  # fmt: skip
    with _tmpfs(tmp_path / "disk", "64m") as disk:  # room for the load once space is freed
        path = disk / "w.duckdb"
        with Warehouse(path, memory_limit=memory_limit) as w:
            assert w.load_partition("things", _day(0), small.files, AT) == 1_000
            w.query("CHECKPOINT")
            filler = _fill(disk, leave=64 * 1024)
            with caplog.at_level("DEBUG", "bizagi_etl.pipeline.warehouse"):
                with pytest.raises(StorageError) as caught:
                    w.load_partition("things", _day(1), big.files, AT)
            message = str(caught.value)
            assert "the disk is full" in message, message
            assert str(path) in message
            assert "what landed before is intact" in message
            assert failing in message, message
            if failing == "Failed to commit":
                assert "cannot rollback - no transaction is active" in caplog.text, "logged only"
            assert w.partition_counts("things") == {_day(0): 1_000}, "the connection still works"
            filler.unlink()
            assert w.load_partition("things", _day(1), big.files, AT) == rows
        with Warehouse(path) as w:
            assert w.partition_counts("things") == {_day(0): 1_000, _day(1): rows}


# -- 5. a warehouse held by another process ------------------------------------------------------

HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
con.execute("SELECT 1").fetchall()
print("held", flush=True)
sys.stdin.readline()
con.close()
"""


@pytest.fixture
def warehouse_file(tmp_path):
    path = tmp_path / "w.duckdb"
    lake = Lake(tmp_path / "lake")
    written = lake.write_partition("things", "day", _day(0), [_batch(10, 1)], SCHEMA,
                                   key=["id"], extracted_at=AT)  # fmt: skip
    with Warehouse(path) as w:
        w.load_partition("things", _day(0), written.files, AT)
    return path, written


@contextmanager
def _held(path: Path, mode: str) -> Iterator[subprocess.Popen[str]]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()


def _release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["rw", "ro"])
def test_a_load_waits_for_a_session_that_closes_within_the_timeout(warehouse_file, mode):
    path, written = warehouse_file
    with _held(path, mode) as holder:
        timer = threading.Timer(0.7, _release, [holder])
        timer.start()
        began = time.monotonic()
        try:
            with Warehouse(path, lock_timeout=30) as w:
                waited = time.monotonic() - began
                assert w.load_partition("things", _day(0), written.files, AT) == 10
        finally:
            timer.cancel()
    assert 0.6 < waited < 20


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["rw", "ro"])
def test_a_session_that_stays_open_gives_a_lock_error_naming_its_pid(warehouse_file, mode):
    path, _ = warehouse_file
    with _held(path, mode) as holder:
        began = time.monotonic()
        with pytest.raises(LockError) as caught:
            Warehouse(path, lock_timeout=0.8)
        waited = time.monotonic() - began
        _release(holder)
    message = str(caught.value)
    assert f"PID {holder.pid}" in message, message
    assert "BIZAGI_LOCK_TIMEOUT" in message
    assert str(path) in message
    assert "-c" in message, "the holder's command line, read from /proc"
    assert 0.8 <= waited < 10


LAKE_HOLDER = """
import sys
from pathlib import Path
from bizagi_etl.pipeline.lake import _FileLock
lock = _FileLock(Path(sys.argv[1]))
assert lock.try_exclusive()
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.mark.timeout(60)
def test_a_lake_table_held_by_another_process_gives_a_lock_error_naming_it(tmp_path):
    lake = Lake(tmp_path / "lake", lock_timeout=0.5)
    lake.write_partition("things", "day", _day(0), [_batch(10, 1)], SCHEMA, key=["id"],
                         extracted_at=AT)  # fmt: skip
    lock = lake.root / LOCKS / "things.lock"
    holder = subprocess.Popen([sys.executable, "-c", LAKE_HOLDER, str(lock)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockError) as caught:
            lake.write_partition("things", "day", _day(1), [_batch(10, 2)], SCHEMA, key=["id"],
                                 extracted_at=AT)  # fmt: skip
        message = str(caught.value)
        assert f"pid {holder.pid} on " in message, message
        assert " since 20" in message
        assert "BIZAGI_LOCK_TIMEOUT" in message
        assert "writing things" in message
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    lake.write_partition("things", "day", _day(1), [_batch(10, 2)], SCHEMA, key=["id"],
                         extracted_at=AT)  # fmt: skip
    assert lake.partitions("things") == [("day", _day(0)), ("day", _day(1))]


# -- 6. paths that cannot hold a lake or a warehouse ---------------------------------------------


def _write_one(root: Path) -> None:
    Lake(root).write_partition("things", "day", _day(0), [_batch(3, 1)], SCHEMA, key=["id"],
                               extracted_at=AT)  # fmt: skip


# case -> (what it does with the test's folder and a plain file in it, the message expected)
BAD_PATHS: dict[str, tuple[Callable[[Path, Path], object], str]] = {
    "lake is a file": (
        lambda _, file: _write_one(file),
        r"lake .*: it is a file, not a folder.*set BIZAGI_LAKE to a folder",
    ),
    "lake under a file": (
        lambda _, file: _write_one(file / "lake"),
        r"lake .*/a-file/lake: .*/a-file is a file, not a folder",
    ),
    "lake in /proc": (
        lambda _, __: _write_one(Path(f"/proc/{os.getpid()}/lake")),
        r"lake /proc/.*failed at /proc/.*cannot be created.*BIZAGI_LAKE",
    ),
    "lake read-only": (
        lambda disk, _: _write_one(disk / "lake"),
        r"lake .*: .*failed at .*the file system is read-only",
    ),
    "warehouse is a folder": (
        lambda folder, _: Warehouse(folder),
        r"warehouse .*: it is a folder, not a DuckDB file",
    ),
    "warehouse not duckdb": (
        lambda _, file: Warehouse(file),
        r"warehouse .*: opening it failed: the file is not a DuckDB database",
    ),
    "warehouse under a file": (
        lambda _, file: Warehouse(file / "w.duckdb"),
        r"warehouse .*/a-file/w.duckdb: .*/a-file is a file",
    ),
    "warehouse in /proc": (
        lambda _, __: Warehouse(Path("/proc/w.duckdb")),
        r"warehouse /proc/w.duckdb: opening it failed: the file cannot be created there",
    ),
    "warehouse read-only": (
        lambda disk, _: Warehouse(disk / "w.duckdb"),
        r"warehouse .*: opening it failed: the file system is read-only",
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", BAD_PATHS)
def test_paths_that_cannot_hold_the_data_give_a_storage_error(tmp_path, case):
    action, expected = BAD_PATHS[case]
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    if case.endswith("read-only"):
        with _tmpfs(tmp_path / "ro", "1m") as disk:
            _read_only(disk)
            with pytest.raises(StorageError, match=expected):
                action(disk, a_file)
    else:
        with pytest.raises(StorageError, match=expected):
            action(tmp_path, a_file)
    assert a_file.read_text() == "not a folder", "nothing overwritten"


# -- 7. the swap itself --------------------------------------------------------------------------


def test_a_partition_created_meanwhile_by_another_writer_is_exchanged(tmp_path, monkeypatch):
    """The exchange finds no partition, then another writer creates it: the swap retries."""
    lake = Lake(tmp_path)
    real = lake_module._renameat2
    calls = []

    def racing(source: Path, target: Path, flags: int) -> None:
        calls.append(flags)
        if flags == lake_module.RENAME_NOREPLACE and len(calls) == 2:
            target.mkdir()
            (target / "part-00000.parquet").write_bytes(b"the other writer's")
        real(source, target, flags)

    monkeypatch.setattr(lake_module, "_renameat2", racing)
    lake.write_partition("things", "day", _day(0), [_batch(3, 1)], SCHEMA, key=["id"],
                         extracted_at=AT)  # fmt: skip
    assert calls == [lake_module.RENAME_EXCHANGE, lake_module.RENAME_NOREPLACE,
                     lake_module.RENAME_EXCHANGE]  # fmt: skip
    assert lake.read("things").column("version").to_pylist() == [1, 1, 1]
    assert unfinished(lake, "things") == []
