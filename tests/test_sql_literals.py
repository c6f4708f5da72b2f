"""Values written into DuckDB's SQL as literals: they read back exactly, whatever they hold."""

from __future__ import annotations

import datetime as dt
import tempfile

import duckdb
import pyarrow as pa
import pytest

from bizagi_etl.pipeline import sql_literals as lit
from bizagi_etl.pipeline.lake import Lake
from bizagi_etl.pipeline.warehouse import Warehouse

AT = dt.datetime(2026, 11, 2, 9, 30, 15, 123456, tzinfo=dt.UTC)
AWKWARD = ["it's", "''", "\\", "back\\'slash", "new\nline", "tab\t", "ümlaut ✓", "", "'; DROP"
           " TABLE x; --", "$$dollar$$", "E'\\x41'"]  # fmt: skip


@pytest.fixture
def con():
    with duckdb.connect() as connection:
        yield connection


@pytest.mark.parametrize("value", AWKWARD)
def test_a_string_reads_back_as_written(con, value):
    assert con.execute(f"SELECT {lit.string(value)}").fetchone() == (value,)


def test_a_list_of_strings_reads_back_in_order_and_an_empty_one_is_typed(con):
    assert con.execute(f"SELECT {lit.strings(AWKWARD)}").fetchone() == (AWKWARD,)
    assert con.execute(f"SELECT typeof({lit.strings([])}), len({lit.strings([])})").fetchone() == (
        "VARCHAR[]",
        0,
    )


def test_an_instant_keeps_its_moment_whatever_its_offset(con):
    con.execute("SET TimeZone = 'America/Bogota'")  # the session's zone must not matter
    plus_five = dt.timezone(dt.timedelta(hours=5, minutes=30))
    odd = dt.timezone(-dt.timedelta(hours=3, seconds=30, microseconds=5))  # DuckDB reads no
    for value in (AT, AT.astimezone(plus_five), AT.astimezone(odd)):  # such offset: UTC then
        (read,) = con.execute(f"SELECT {lit.instant(value)}").fetchone()
        assert read == AT


def test_what_sql_cannot_hold_is_refused_by_name():
    with pytest.raises(ValueError, match="NUL"):
        lit.string("a\x00b")
    with pytest.raises(ValueError, match="naive 2026-11-02T09:30:00"):
        lit.instant(dt.datetime(2026, 11, 2, 9, 30))


def test_a_lake_whose_path_holds_quotes_and_backslashes_loads(tmp_path):
    """File names go into the load's SQL as literals: a path with quotes lands, and is not
    read as SQL."""
    lake = Lake(tmp_path / "it's a \\ 'lake'")
    table = pa.table({"id": [1, 2, 3]})
    written = lake.write_partition("t", "day", "2025-01-01", [table], table.schema, key=["id"],
                                   extracted_at=AT)  # fmt: skip
    with Warehouse(tmp_path / "w.duckdb") as warehouse:
        assert warehouse.load_partition("t", "2025-01-01", written.files, AT) == 3
        assert warehouse.count("t", "2025-01-01") == 3
        assert warehouse.key_problems("t", ["id"], ["2025-01-01", "it's"]) == (0, 0)
        assert warehouse.query("SELECT DISTINCT _extracted_at FROM bizagi.t") == [(AT,)]


def test_latest_views_of_the_longest_table_names_are_described(tmp_path):
    """``latest_<table>`` may be 70 characters, beyond a table name's 63: the warehouse still
    lists, describes and counts it (the Dagster views' metadata)."""
    name = "t" * 63
    lake = Lake(tmp_path / "lake")
    table = pa.table({"id": [1, 2]})
    written = lake.write_partition(name, "snapshot", "2025-01-01", [table], table.schema,
                                   key=["id"], extracted_at=AT)  # fmt: skip
    with Warehouse(tmp_path / "w.duckdb") as warehouse:
        warehouse.load_partition(name, "2025-01-01", written.files, AT)
        view = warehouse.create_latest_view(name, ["id"])
        assert len(view) == 70
        assert view in warehouse.views()
        assert list(warehouse.columns(view, schema="analytics")) == [
            "id",
            "_partition",
            "_extracted_at",
        ]
        assert warehouse.count(view, schema="analytics") == 2


def test_declared_tables_need_no_system_temp_folder(tmp_path, monkeypatch):
    """The declared schema is described from an empty Parquet file written beside the
    warehouse file, a folder the run writes anyway (a container may have no writable /tmp)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no" / "such" / "folder"))
    with Warehouse(tmp_path / "w.duckdb") as warehouse:
        warehouse.ensure_table("declared", pa.schema([("id", pa.int64()), ("at", pa.timestamp(
            "us", "UTC")), ("amount", pa.decimal128(18, 4))]))  # fmt: skip
        assert warehouse.columns("declared") == {
            "id": "BIGINT", "at": "TIMESTAMP WITH TIME ZONE", "amount": "DECIMAL(18,4)",
            "_partition": "VARCHAR", "_extracted_at": "TIMESTAMP WITH TIME ZONE"}  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"], "nothing left beside"
