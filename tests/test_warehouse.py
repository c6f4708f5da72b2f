"""The warehouse: partitions replaced in one transaction, types widened only without loss."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from bizagi_etl.connector.errors import (
    SchemaError,
    SettingsError,
    StorageError,
    WarehouseError,
)
from bizagi_etl.pipeline.lake import Lake, open_lake
from bizagi_etl.pipeline.warehouse import Warehouse

AT = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


@pytest.fixture(params=["folder+duckdb", "s3+ducklake"])
def backend(request):
    return request.param


@pytest.fixture
def lake(tmp_path, backend, request):
    """The lake in a folder, or on S3 (moto) beside a DuckLake."""
    if backend == "folder+duckdb":
        return Lake(tmp_path / "lake")
    return open_lake(request.getfixturevalue("s3_lake_uri"))


@pytest.fixture
def warehouse(tmp_path, backend, request):
    """A DuckDB file, or a DuckLake with its catalog in PostgreSQL and its data on S3."""
    if backend == "folder+duckdb":
        with Warehouse(tmp_path / "w.duckdb") as w:
            yield w
        return
    catalog, data = request.getfixturevalue("ducklake")
    with Warehouse(catalog, data=data) as w:
        yield w


def _put(lake, warehouse, value, table, name="t"):
    written = lake.write_partition(name, "day", value, [table], table.schema, key=[],
                                   extracted_at=AT)  # fmt: skip
    return warehouse.load_partition(name, value, written.files, AT)


def test_load_replaces_a_partition(lake, warehouse):
    assert _put(lake, warehouse, "2025-01-01", pa.table({"id": [1, 2]})) == 2
    assert _put(lake, warehouse, "2025-01-02", pa.table({"id": [3]})) == 1
    assert _put(lake, warehouse, "2025-01-01", pa.table({"id": [1]})) == 1
    rows = warehouse.query("SELECT _partition, id FROM bizagi.t ORDER BY id")
    assert rows == [("2025-01-01", 1), ("2025-01-02", 3)]
    extracted = warehouse.query("SELECT DISTINCT _extracted_at FROM bizagi.t")
    assert extracted == [(AT,)]


def test_new_columns_are_added_and_old_rows_kept(lake, warehouse):
    _put(lake, warehouse, "2025-01-01", pa.table({"id": [1]}))
    _put(lake, warehouse, "2025-01-02", pa.table({"id": [2], "note": ["hi"]}))
    assert warehouse.query("SELECT id, note FROM bizagi.t ORDER BY id") == [(1, None), (2, "hi")]


@pytest.mark.parametrize(
    ("old", "new", "widened"),
    [
        (pa.int32(), pa.int64(), "BIGINT"),
        (pa.int16(), pa.float64(), "DOUBLE"),
        (pa.decimal128(19, 4), pa.decimal128(38, 12), "DECIMAL(38,12)"),
        (pa.float32(), pa.float64(), "DOUBLE"),
    ],
)
def test_types_widen_without_loss(lake, warehouse, old, new, widened):
    _put(lake, warehouse, "2025-01-01", pa.table({"x": pa.array([1], old)}))
    _put(lake, warehouse, "2025-01-02", pa.table({"x": pa.array([2], new)}))
    assert warehouse.columns("t")["x"] == widened
    assert sorted(v for (v,) in warehouse.query("SELECT x FROM bizagi.t")) == [1, 2]


def test_narrower_data_goes_into_a_wider_column(lake, warehouse):
    _put(lake, warehouse, "2025-01-01", pa.table({"x": pa.array([10**12], pa.int64())}))
    _put(lake, warehouse, "2025-01-02", pa.table({"x": pa.array([1], pa.int32())}))
    assert warehouse.columns("t")["x"] == "BIGINT"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (pa.array([True]), pa.array([dt.datetime(2025, 1, 1)], pa.timestamp("us"))),
        (pa.array([2**53 + 1], pa.int64()), pa.array([1.5])),
        (pa.array(["a"]), pa.array([1], pa.int64())),
        (pa.array([Decimal("1.25")], pa.decimal128(19, 4)), pa.array([1.5])),
    ],
)
def test_a_change_that_cannot_widen_fails_and_loses_nothing(lake, warehouse, old, new):
    _put(lake, warehouse, "2025-01-01", pa.table({"x": old}))
    before = warehouse.query("SELECT * FROM bizagi.t")
    old_type = warehouse.columns("t")["x"]
    with pytest.raises(SchemaError) as caught:
        _put(lake, warehouse, "2025-01-02", pa.table({"x": new}))
    message = str(caught.value)
    assert "bizagi.t" in message
    assert "'x'" in message
    assert old_type in message
    assert warehouse.query("SELECT * FROM bizagi.t") == before
    assert warehouse.count("t", "2025-01-02") == 0


def test_a_failed_load_rolls_back(lake, warehouse, tmp_path):
    _put(lake, warehouse, "2025-01-01", pa.table({"id": [1, 2]}))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(Exception, match=r"(?i)parquet|invalid|magic"):
        warehouse.load_partition("t", "2025-01-01", [broken], AT)
    assert warehouse.count("t", "2025-01-01") == 2


def test_identifiers_are_quoted_and_names_checked(lake, warehouse):
    odd = pa.table({'we"ird col': [1], "select": [2]})
    _put(lake, warehouse, "2025-01-01", odd)
    assert warehouse.query('SELECT "we""ird col", "select" FROM bizagi.t') == [(1, 2)]
    for name in ('t"; DROP TABLE bizagi.t; --', "../t", "T"):
        with pytest.raises(SchemaError):
            warehouse.count(name)
    assert warehouse.count("t") == 1


def test_several_partitions_load_in_one_transaction(lake, warehouse):
    parts = []
    for day, ids in (("2025-01-01", [1]), ("2025-01-02", [2, 3])):
        table = pa.table({"id": ids})
        written = lake.write_partition("t", "day", day, [table], table.schema, key=["id"],
                                       extracted_at=AT)  # fmt: skip
        parts.append((day, written.files))
    assert warehouse.load_partitions("t", parts, AT) == 3
    assert warehouse.query("SELECT _partition, count(*) FROM bizagi.t GROUP BY 1 ORDER BY 1") == [
        ("2025-01-01", 1),
        ("2025-01-02", 2),
    ]


def test_memory_is_capped_by_default_and_configurable(tmp_path):
    def limit(w):
        return w.query("SELECT current_setting('memory_limit')")[0][0]

    with Warehouse(tmp_path / "a.duckdb") as w:
        assert limit(w) == "61.0 MiB"  # 64MB: not DuckDB's 80 % of the machine
    with Warehouse(tmp_path / "b.duckdb", memory_limit="1GB") as w:
        assert limit(w) == "953.6 MiB"


def test_an_unreadable_memory_limit_is_named(tmp_path):
    with pytest.raises(SettingsError, match=r"memory limit 'lots'.*expected e\.g\. '128MB'"):
        Warehouse(tmp_path / "w.duckdb", memory_limit="lots")


def test_a_load_larger_than_the_memory_limit_lands_every_row(tmp_path, lake):
    rows = 3_000_000  # ~70 MB of uncompressed columns, against a 32 MB limit
    table = pa.table({"id": pa.array(range(rows), pa.int64()),
                      "text": pa.array([f"row {i:07d}" for i in range(rows)])})  # fmt: skip
    with Warehouse(tmp_path / "w.duckdb", memory_limit="32MB") as w:
        assert _put(lake, w, "2025-01-01", table) == rows
        got = w.query("SELECT count(*), sum(id), max(text) FROM bizagi.t")
    assert got == [(rows, rows * (rows - 1) // 2, f"row {rows - 1:07d}")]


def test_a_load_the_memory_limit_cannot_hold_fails_clearly_and_keeps_what_landed(tmp_path, lake):
    big = pa.table({"id": pa.array(range(2_000_000), pa.int64()),
                    "text": pa.array([f"row {i:07d}" for i in range(2_000_000)])})  # fmt: skip
    with Warehouse(tmp_path / "w.duckdb", memory_limit="4MB") as w:  # DuckDB 1.5 fits 16MB
        assert _put(lake, w, "2025-01-01", pa.table({"id": [1], "text": ["kept"]})) == 1
        old = lake.write_partition("t", "day", "2025-01-01", [big], big.schema, key=[],
                                   extracted_at=AT)  # fmt: skip
        new = lake.write_partition("t", "day", "2025-01-02", [big], big.schema, key=[],
                                   extracted_at=AT)  # fmt: skip
        both = [("2025-01-01", old.files), ("2025-01-02", new.files)]
        with pytest.raises(WarehouseError, match=r"2 partitions of t .*memory limit \(4MB"):
            w.load_partitions("t", both, AT)
        kept = w.query("SELECT _partition, id, text FROM bizagi.t")
    assert kept == [("2025-01-01", 1, "kept")]


def test_a_lake_file_that_vanished_is_not_blamed_on_the_warehouse(lake, warehouse, tmp_path):
    """Only errors about the warehouse's own files become its StorageError."""
    _put(lake, warehouse, "2025-01-01", pa.table({"id": [1, 2]}))
    gone = tmp_path / "gone" / "part-00000.parquet"
    with pytest.raises(Exception, match="gone") as caught:
        warehouse.load_partition("t", "2025-01-01", [gone], AT)
    assert not isinstance(caught.value, StorageError)
    assert warehouse.count("t", "2025-01-01") == 2


def test_latest_is_the_newest_snapshot_so_rows_the_source_dropped_leave_it(lake, warehouse):
    _put(lake, warehouse, "2025-01-01", pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]}))
    _put(lake, warehouse, "2025-01-02", pa.table({"id": [1, 3], "v": ["a2", "c2"]}))
    warehouse.create_latest_view("t", ["id"])
    latest = warehouse.query("SELECT id, v FROM analytics.latest_t ORDER BY id")
    assert latest == [(1, "a2"), (3, "c2")]  # id 2 is gone at the source
    history = warehouse.query("SELECT count(*) FROM bizagi.t")
    assert history == [(5,)]  # the snapshots keep their history


def test_a_load_of_one_file_runs_on_one_thread_and_the_setting_comes_back(tmp_path):
    """One file inserts faster and smaller on one thread (see Warehouse._threads_for); a load of
    several files keeps DuckDB's threads, and so do the queries after either."""
    lake = Lake(tmp_path / "lake")
    files = []
    for day in ("2025-01-01", "2025-01-02"):
        table = pa.table({"id": [1, 2]})
        files.append((day, lake.write_partition("t", "day", day, [table], table.schema, key=[],
                                                extracted_at=AT).files))  # fmt: skip
    with Warehouse(tmp_path / "w.duckdb") as w:
        threads = w.query("SELECT current_setting('threads')")[0][0]
        real, seen = w.con, []

        class Watched:
            def execute(self, sql, *args):
                if sql.startswith("INSERT INTO"):
                    seen.append(real.execute("SELECT current_setting('threads')").fetchone()[0])
                return real.execute(sql, *args)

            def __getattr__(self, name):
                return getattr(real, name)

        w.con = Watched()
        w.load_partitions("t", files[:1], AT)
        w.load_partitions("t", files, AT)
        w.con = real
        assert seen == [1, threads]
        assert w.query("SELECT current_setting('threads')")[0][0] == threads
        assert w.partition_counts("t") == {"2025-01-01": 2, "2025-01-02": 2}
