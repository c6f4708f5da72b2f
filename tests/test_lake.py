"""The lake: paths it owns, partitions swapped in whole, and what a crash leaves.

Processes, kills, full disks and locks held elsewhere: tests/test_storage_hardening.py."""

from __future__ import annotations

import datetime as dt
import errno
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import unfinished

from bizagi_etl.connector.errors import SchemaError
from bizagi_etl.pipeline import lake as lake_module
from bizagi_etl.pipeline.lake import OLD, STAGING, TRASH, Lake, extracted_at_of, open_lake

AT = dt.datetime(2026, 11, 2, 3, 4, 5, tzinfo=dt.UTC)
SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


def _write(lake: Lake, value: str, rows: list[dict], **kwargs):
    batch = pa.Table.from_pylist(rows, SCHEMA) if rows else SCHEMA.empty_table()
    return lake.write_partition("things", "day", value, [batch], SCHEMA, key=["id"],
                                extracted_at=AT, **kwargs)  # fmt: skip


@pytest.fixture(params=["folder", "s3"])
def any_lake(request, tmp_path):
    """The lake in a folder, or on S3 (moto): what both promise is tested on both."""
    if request.param == "folder":
        return Lake(tmp_path)
    return open_lake(request.getfixturevalue("s3_lake_uri"))


@pytest.mark.parametrize("table", ["../escape", "a/b", "UPPER", "x;drop", "", "1abc", ".hidden"])
def test_table_names_cannot_leave_the_lake(tmp_path, table):
    with pytest.raises(SchemaError):
        Lake(tmp_path).table_dir(table)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("day", "../../etc"),
        ("day", "2025-01-01/../x"),
        ("year", "2025-01-01"),
        ("day", "today"),
        ("day", "2025-01-01\n"),
    ],
)
def test_partition_names_are_checked(tmp_path, column, value):
    with pytest.raises(SchemaError):
        Lake(tmp_path).partition_dir("things", column, value)


def test_partition_file_layout_and_format(tmp_path):
    lake = Lake(tmp_path)
    written = _write(lake, "2025-01-02", [{"id": 3, "name": "c"}, {"id": 1, "name": "a"}])
    assert written.path == tmp_path.resolve() / "things" / "day=2025-01-02"
    assert [f.name for f in written.files] == ["part-00000.parquet"]
    metadata = pq.ParquetFile(written.files[0]).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    table = pq.read_table(written.files[0])
    assert table.column("id").to_pylist() == [1, 3], "sorted by key"
    assert table.schema.field("id").type == pa.int64()
    assert extracted_at_of(written.files[0]) == AT


def test_empty_partition_is_a_typed_empty_file(any_lake):
    lake = any_lake
    written = _write(lake, "2025-01-03", [])
    assert lake.files("things") == list(written.files)
    table = lake.read_file(written.files[0])
    assert table.num_rows == 0
    assert table.schema.remove_metadata() == SCHEMA


def test_rewrite_replaces_the_partition(any_lake):
    lake = any_lake
    _write(lake, "2025-01-02", [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    written = _write(lake, "2025-01-02", [{"id": 2, "name": "B"}])
    assert lake.read("things").to_pylist() == [{"id": 2, "name": "B"}]
    assert lake.files("things") == list(written.files)
    assert lake.partition_files("things") == {"2025-01-02": list(written.files)}
    assert lake.partitions("things") == [("day", "2025-01-02")]
    assert lake.rows("things") == 1
    assert lake.extracted_at(written.files[0]) == AT


def test_rewrite_in_a_folder_keeps_the_old_copy_only_a_moment(tmp_path):
    """A reader that opened the partition's folder just before the swap is still listing the
    old version: it waits ``keep_replaced`` seconds out of the table, then a thread of the
    writing process deletes it, with no further write."""
    lake = Lake(tmp_path, keep_replaced=2.0)  # room for a slow machine between the asserts
    _write(lake, "2025-01-02", [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    _write(lake, "2025-01-02", [{"id": 2, "name": "B"}])
    assert [p.name for p in (tmp_path / "things").iterdir()] == ["day=2025-01-02"]
    assert list(lake.staging_dir("things").iterdir()) == []
    (kept,) = lake.retired_dir("things").iterdir()
    assert kept.name.startswith("day=2025-01-02.")
    assert pq.read_table(kept / "part-00000.parquet").num_rows == 2
    assert lake.read("things").to_pylist() == [{"id": 2, "name": "B"}]
    assert _retired_gone(lake, within=10), "deleted once old enough"


def test_a_process_that_replaced_partitions_leaves_no_copy_when_it_exits(tmp_path):
    code = (
        "import datetime as dt, sys\n"
        "import pyarrow as pa\n"
        "from bizagi_etl.pipeline.lake import Lake\n"
        "lake, t = Lake(sys.argv[1]), pa.table({'id': [1]})\n"
        "at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)\n"
        "for _ in range(2):\n"
        "    lake.write_partition('things', 'day', '2025-01-02', [t], t.schema, key=['id'],\n"
        "                         extracted_at=at)\n"
        "print(len(list(lake.retired_dir('things').iterdir())))\n"
    )
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, check=True, timeout=60)  # fmt: skip
    assert done.stdout.split() == ["1"], "kept while the process wrote"
    assert list(Lake(tmp_path).retired_dir("things").iterdir()) == [], "gone when it exited"
    assert time.monotonic() - began < 30


def _retired_gone(lake: Lake, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while any(lake.retired_dir("things").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(lake.retired_dir("things").iterdir())


def test_a_version_set_aside_while_the_thread_deletes_is_deleted_too(tmp_path, monkeypatch):
    """A write that sets a version aside just as the deleting thread finishes its last pass
    must not be missed by it."""
    lake = Lake(tmp_path, keep_replaced=0.2)
    _write(lake, "2025-01-02", [{"id": 1, "name": "a"}])
    real, passes = lake_module._drop_old, []

    def deleting_then_a_write_comes(folder: Path, keep: float) -> None:
        real(folder, keep)
        passes.append(folder)
        if len(passes) == 1:
            _write(lake, "2025-01-02", [{"id": 1, "name": "c"}])

    monkeypatch.setattr(lake_module, "_drop_old", deleting_then_a_write_comes)
    _write(lake, "2025-01-02", [{"id": 1, "name": "b"}])
    assert _retired_gone(lake)
    assert len(passes) >= 2
    assert lake.read("things").to_pylist() == [{"id": 1, "name": "c"}]


def test_many_lake_objects_on_one_folder_share_one_deleting_thread(tmp_path):
    """A long-lived process (a Dagster code server) makes a Lake per run: their replaced
    versions in one folder are deleted by one thread, not one per Lake."""
    for name in "abcdefghij":
        _write(Lake(tmp_path, keep_replaced=2.0), "2025-01-02", [{"id": 1, "name": name}])
    mine = f"lake-retired {Lake(tmp_path).retired_dir('things')}"
    assert sum(t.name == mine for t in threading.enumerate()) <= 1
    assert _retired_gone(Lake(tmp_path), within=10)


def _replace_twice(root: str) -> None:
    lake = Lake(Path(root))
    for name in ("child a", "child b"):
        _write(lake, "2025-01-03", [{"id": 1, "name": name}])


def test_a_forked_child_deletes_what_it_replaced_before_it_exits(tmp_path):
    """A forked worker (multiprocessing, a Dagster executor) inherits none of its parent's
    deleting threads: it starts its own, and waits for it before it exits."""
    lake = Lake(tmp_path)
    for name in ("a", "b"):  # the parent's thread is alive at the fork
        _write(lake, "2025-01-02", [{"id": 1, "name": name}])
    child = multiprocessing.get_context("fork").Process(target=_replace_twice,
                                                        args=(str(tmp_path),))  # fmt: skip
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert _retired_gone(lake, within=10)  # the parent's own as it comes of age, the child's
    # were deleted before it exited: the parent's thread stops with its own, not theirs


def test_a_replaced_version_stamped_by_a_clock_far_ahead_does_not_stay_for_ever(tmp_path):
    lake = Lake(tmp_path, keep_replaced=0.5)
    written = _write(lake, "2025-01-02", [{"id": 1, "name": "a"}])
    folder = lake.retired_dir("things")
    folder.mkdir(parents=True)
    ahead = time.time_ns() + 30 * 24 * 3600 * 10**9  # retired while the clock was 30 days on
    shutil.copytree(written.path, folder / f"day=2025-01-02.deadbeef.{ahead}")
    _write(Lake(tmp_path, keep_replaced=0.5), "2025-01-03", [{"id": 2, "name": "next run"}])
    assert _retired_gone(lake, within=10)


def test_batches_with_new_columns_are_unified(any_lake):
    lake = any_lake
    first = pa.table({"id": [1], "name": ["a"]})
    second = pa.table({"id": [2], "name": ["b"], "extra": [True]})
    lake.write_partition("things", "day", "2025-01-02", [first, second], SCHEMA, key=["id"],
                         extracted_at=AT)  # fmt: skip
    assert lake.read("things").to_pylist() == [
        {"id": 1, "name": "a", "extra": None},
        {"id": 2, "name": "b", "extra": True},
    ]


def test_a_scan_reads_chosen_partitions_as_one_table_with_their_values(any_lake):
    """Files written before a column existed read it as null; a filter and the chosen
    partitions narrow what is read; each row says which partition it came from."""
    lake = any_lake
    _write(lake, "2025-01-01", [{"id": 1, "name": "a"}])
    newer = pa.table({"id": [2, 3], "name": ["b", "c"], "extra": [True, False]})
    lake.write_partition("things", "day", "2025-01-02", [newer], SCHEMA, key=["id"],
                         extracted_at=AT)  # fmt: skip
    _write(lake, "2025-01-03", [{"id": 4, "name": "d"}])
    every = lake.scan("things")
    assert sorted(every.column_names) == ["_value", "extra", "id", "name"]
    assert sorted(every.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "name": "a", "extra": None, "_value": "2025-01-01"},
        {"id": 2, "name": "b", "extra": True, "_value": "2025-01-02"},
        {"id": 3, "name": "c", "extra": False, "_value": "2025-01-02"},
        {"id": 4, "name": "d", "extra": None, "_value": "2025-01-03"},
    ]
    chosen = lake.scan("things", ["2025-01-02", "2025-01-03"], columns=["id", "missing"],
                       where=ds.field("id").isin([1, 3, 4]))  # fmt: skip
    assert sorted(chosen.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 3, "_value": "2025-01-02"},
        {"id": 4, "_value": "2025-01-03"},
    ]
    many = [f"2025-01-{d:02}" for d in range(1, 20)]  # more than are listed one by one
    assert lake.scan("things", many).num_rows == 4
    assert lake.scan("nothing", ["2025-01-01"]).column_names == ["_value"]


def test_crash_while_writing_leaves_the_old_partition(any_lake):
    lake = any_lake
    _write(lake, "2025-01-02", [{"id": 1, "name": "old"}])

    def crash(staging):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _write(lake, "2025-01-02", [{"id": 1, "name": "new"}], before_swap=crash)
    assert lake.read("things").to_pylist() == [{"id": 1, "name": "old"}]
    _write(lake, "2025-01-02", [{"id": 1, "name": "new"}])
    assert lake.read("things").to_pylist() == [{"id": 1, "name": "new"}]
    if isinstance(any_lake.root, Path):
        assert unfinished(lake, "things") == []


def test_new_versions_are_staged_outside_the_table_and_swapped_whole(tmp_path):
    lake = Lake(tmp_path)
    _write(lake, "2025-01-02", [{"id": 1, "name": "old"}])
    glob = f"read_parquet('{tmp_path / 'things'}/**/*.parquet')"
    seen = {}

    def look(staging: Path) -> None:
        assert staging.parent == tmp_path / STAGING / "things", "outside the table's folder"
        seen["during"] = duckdb.sql(f"SELECT name FROM {glob}").fetchall()

    _write(lake, "2025-01-02", [{"id": 1, "name": "new"}], before_swap=look)
    assert seen["during"] == [("old",)], "a glob never sees the staged version"
    assert duckdb.sql(f"SELECT name FROM {glob}").fetchall() == [("new",)]


def test_a_killed_write_is_cleaned_by_the_next_write_of_any_day(tmp_path):
    lake = Lake(tmp_path)
    _write(lake, "2025-01-02", [{"id": 1, "name": "old"}])
    # What a kill leaves: a staged version half written, and an old version not yet deleted.
    staged = lake.staging_dir("things")
    (staged / "day=2025-01-02.0123abcd").mkdir()
    (staged / "day=2025-01-02.0123abcd" / "part-00000.parquet").write_bytes(b"half")
    (staged / "day=2025-01-05.4567abcd").mkdir()
    assert lake.read("things").to_pylist() == [{"id": 1, "name": "old"}]
    _write(lake, "2025-01-03", [{"id": 5, "name": "other day"}])
    assert list(staged.iterdir()) == []
    assert sorted(r["id"] for r in lake.read("things").to_pylist()) == [1, 5]


def test_a_live_writers_staging_is_left_alone(tmp_path):
    """Another lake object (another run) holding a writer open: its staging is not stale."""
    busy, lake = Lake(tmp_path), Lake(tmp_path)
    writer = busy.open_partition("things", "day", "2025-01-02", SCHEMA, AT)
    writer.write(pa.Table.from_pylist([{"id": 1, "name": "busy"}], SCHEMA))
    _write(lake, "2025-01-03", [{"id": 2, "name": "other"}])
    assert writer.staging.exists()
    writer.commit()
    assert sorted(r["id"] for r in lake.read("things").to_pylist()) == [1, 2]


def _aside(lake: Lake, written, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.rename(written.path, folder / name)


def test_a_swap_by_two_renames_killed_between_them_is_repaired_by_any_write(tmp_path):
    """Without RENAME_EXCHANGE a kill between the renames leaves the old version aside."""
    lake = Lake(tmp_path)
    written = _write(lake, "2025-01-02", [{"id": 1, "name": "old"}])
    _aside(lake, written, lake.staging_dir("things"), f"day=2025-01-02.deadbeef{OLD}")
    assert lake.read("things").to_pylist() == [{"id": 1, "name": "old"}], "readers still see it"
    assert lake.partitions("things") == [("day", "2025-01-02")]
    _write(lake, "2025-01-03", [{"id": 5, "name": "other day"}])
    assert written.path.exists(), "put back by the write of another day"
    assert sorted(r["id"] for r in lake.read("things").to_pylist()) == [1, 5]
    assert list(lake.staging_dir("things").iterdir()) == []


def test_the_earlier_layouts_leftovers_are_repaired_by_any_write(tmp_path):
    """Lakes written before staging moved out of the table: {table}/_trash and _staging."""
    lake = Lake(tmp_path)
    written = _write(lake, "2025-01-02", [{"id": 1, "name": "old"}])
    _aside(lake, written, tmp_path / "things" / TRASH, "day=2025-01-02.deadbeef")
    (tmp_path / "things" / "_staging" / "day=2025-01-04.cafe").mkdir(parents=True)
    assert lake.read("things").to_pylist() == [{"id": 1, "name": "old"}], "readers still see it"
    _write(lake, "2025-01-03", [{"id": 5, "name": "other day"}])
    assert sorted(p.name for p in (tmp_path / "things").iterdir()) == [
        "day=2025-01-02",
        "day=2025-01-03",
    ]
    assert sorted(r["id"] for r in lake.read("things").to_pylist()) == [1, 5]


def _no_exchange(source: Path, target: Path, flags: int) -> None:
    raise OSError(errno.EINVAL, "Invalid argument", str(source))


def test_without_rename_exchange_two_renames_replace_and_repair(tmp_path, monkeypatch):
    """Other systems and file systems: two renames under the table's swap lock, whose holder
    also puts back what a killed swap left aside (even while other runs write the table)."""
    monkeypatch.setattr(lake_module, "_renameat2", _no_exchange)
    lake = Lake(tmp_path)
    _write(lake, "2025-01-02", [{"id": 1, "name": "a"}])
    written = _write(lake, "2025-01-02", [{"id": 1, "name": "b"}])
    assert lake.read("things").to_pylist() == [{"id": 1, "name": "b"}]
    assert unfinished(lake, "things") == []
    _aside(lake, written, lake.staging_dir("things"), f"day=2025-01-02.deadbeef{OLD}")
    busy = Lake(tmp_path).open_partition("things", "day", "2025-01-09", SCHEMA, AT)  # no sweep
    _write(lake, "2025-01-03", [{"id": 5, "name": "other day"}])
    assert sorted(r["id"] for r in lake.read("things").to_pylist()) == [1, 5]
    assert unfinished(lake, "things") == [busy.staging.name]
    busy.abort()


def test_a_run_of_writes_takes_the_tables_lock_once(tmp_path, monkeypatch):
    """A backfill writes thousands of partitions: holding the lock across them opens, tries
    and sweeps the lock file once, not once a partition."""
    opened = []
    real = lake_module._FileLock

    def counting(path):
        opened.append(path)
        return real(path)

    monkeypatch.setattr(lake_module, "_FileLock", counting)
    lake = Lake(tmp_path)
    with lake.writing("things"):
        for day in range(1, 6):
            _write(lake, f"2025-01-0{day}", [{"id": day, "name": "x"}])
    assert len(opened) == 1
    _write(lake, "2025-01-06", [{"id": 6, "name": "y"}])
    assert len(opened) == 2, "released after the run: the next write takes it again"
    assert [v for _, v in lake.partitions("things")][-1] == "2025-01-06"


def test_a_scan_reads_columns_whose_files_disagree_on_their_type(any_lake):
    """An attribute nothing declares is typed from its values, so one day may hold numbers and
    another text: a scan reads such a column as text instead of failing every later read."""
    lake = any_lake
    for day, value in (("2025-01-01", 5), ("2025-01-02", "five")):
        batch = pa.table({"id": [int(day[-1])], "name": ["a"], "extra": [value]})
        lake.write_partition("things", "day", day, [batch], SCHEMA, key=["id"], extracted_at=AT)
    rows = sorted(lake.scan("things").to_pylist(), key=lambda r: r["id"])
    assert [r["extra"] for r in rows] == ["5", "five"]
    assert lake.scan("things", columns=["id"]).column("id").to_pylist() in ([1, 2], [2, 1])
