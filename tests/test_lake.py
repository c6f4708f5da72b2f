"""The lake: paths it owns, partitions swapped in whole, and what a crash leaves."""

from __future__ import annotations

import datetime as dt
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bizagi_etl.connector.errors import SchemaError
from bizagi_etl.pipeline.lake import TRASH, Lake, extracted_at_of

AT = dt.datetime(2026, 11, 2, 3, 4, 5, tzinfo=dt.UTC)
SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


def _write(lake: Lake, value: str, rows: list[dict], **kwargs):
    batch = pa.Table.from_pylist(rows, SCHEMA) if rows else SCHEMA.empty_table()
    return lake.write_partition("things", "day", value, [batch], SCHEMA, key=["id"],
                                extracted_at=AT, **kwargs)  # fmt: skip


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


def test_empty_partition_is_a_typed_empty_file(tmp_path):
    lake = Lake(tmp_path)
    written = _write(lake, "2025-01-03", [])
    table = pq.read_table(written.files[0])
    assert table.num_rows == 0
    assert table.schema.remove_metadata() == SCHEMA


def test_rewrite_replaces_the_partition(tmp_path):
    lake = Lake(tmp_path)
    _write(lake, "2025-01-02", [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    _write(lake, "2025-01-02", [{"id": 2, "name": "B"}])
    assert lake.read("things").to_pylist() == [{"id": 2, "name": "B"}]
    assert not list((tmp_path / "things" / TRASH).glob("*")), "no old copy kept"


def test_batches_with_new_columns_are_unified(tmp_path):
    lake = Lake(tmp_path)
    first = pa.table({"id": [1], "name": ["a"]})
    second = pa.table({"id": [2], "name": ["b"], "extra": [True]})
    lake.write_partition("things", "day", "2025-01-02", [first, second], SCHEMA, key=["id"],
                         extracted_at=AT)  # fmt: skip
    assert lake.read("things").to_pylist() == [
        {"id": 1, "name": "a", "extra": None},
        {"id": 2, "name": "b", "extra": True},
    ]


def test_crash_while_writing_leaves_the_old_partition(tmp_path):
    lake = Lake(tmp_path)
    _write(lake, "2025-01-02", [{"id": 1, "name": "old"}])

    def crash(staging):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _write(lake, "2025-01-02", [{"id": 1, "name": "new"}], before_swap=crash)
    assert lake.read("things").to_pylist() == [{"id": 1, "name": "old"}]
    _write(lake, "2025-01-02", [{"id": 1, "name": "new"}])
    assert lake.read("things").to_pylist() == [{"id": 1, "name": "new"}]
    assert not list((tmp_path / "things" / "_staging").glob("*"))


def test_crash_between_the_two_renames_is_repaired(tmp_path):
    lake = Lake(tmp_path)
    written = _write(lake, "2025-01-02", [{"id": 1, "name": "old"}])
    # What a crash right after the first rename leaves: the partition only in the trash.
    trash = tmp_path / "things" / TRASH
    trash.mkdir()
    os.rename(written.path, trash / f"{written.path.name}.deadbeef")
    assert lake.read("things").to_pylist() == [{"id": 1, "name": "old"}], "readers still see it"
    assert lake.partitions("things") == [("day", "2025-01-02")]
    _write(lake, "2025-01-03", [{"id": 5, "name": "other day"}])
    assert written.path.parent.joinpath("day=2025-01-02").exists() is False, "others untouched"
    _write(lake, "2025-01-02", [{"id": 2, "name": "new"}])
    assert sorted(r["id"] for r in lake.read("things").to_pylist()) == [2, 5]
    assert not list(trash.glob("*"))
