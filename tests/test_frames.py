"""Records -> typed Arrow tables and pandas frames; safe names and Bizagi's types.

Expected values come from definitions: an instant is the same instant whatever offset writes
it, a decimal written ``199.99`` is exactly ``Decimal("199.99")``, ``""`` is not ``None``.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest

from bizagi_etl.connector.errors import SchemaError
from bizagi_etl.pipeline.dataframes import to_frame
from bizagi_etl.pipeline.frames import empty_table, to_table, use_system_allocator
from bizagi_etl.pipeline.names import check_identifier
from bizagi_etl.pipeline.schema import (
    BIZAGI_TYPES,
    DECIMAL,
    MONEY,
    TIMESTAMP,
    Col,
    safe_name,
    unique_names,
)

UTC = dt.UTC
INSTANT = dt.datetime(2025, 3, 4, 15, 0, tzinfo=UTC)


def _one_column(values: list[object], col: Col, table: str = "tbl") -> list[object]:
    records = [{col.source: v} for v in values]
    return to_table(records, [col], table).column(col.name).to_pylist()


# -- timestamps -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2025-03-04T10:00:00-05:00",
        "2025-03-04T20:30:00+05:30",
        "2025-03-04T15:00:00Z",
        "2025-03-04T15:00:00+00:00",
        "2025-03-05T00:00:00+09:00",
        "2025-03-05T05:00:00+14:00",
        "2025-03-04T03:00:00-12:00",
        "2025-03-04T15:00:00",  # naive: read as UTC
        "2025-03-04T15:00",  # naive without seconds
    ],
)
def test_every_offset_becomes_the_same_utc_instant(text):
    table = to_table([{"when": text}], [Col("when", "when", TIMESTAMP)], "tbl")
    assert table.schema.field("when").type == TIMESTAMP
    assert table.column("when").to_pylist() == [INSTANT]


def test_offsets_in_one_column_and_in_the_frame():
    texts = ["2025-03-04T10:00:00-05:00", "2025-03-04T20:30:00+05:30", "2025-03-04T15:00:00Z",
             "2025-03-04T15:00:00", None]  # fmt: skip
    frame = to_frame(to_table([{"t": t} for t in texts], [Col("t", "t", TIMESTAMP)], "tbl"))
    assert frame["t"].dtype == pd.ArrowDtype(TIMESTAMP)
    expected = pd.Timestamp("2025-03-04T15:00:00Z")
    assert list(frame["t"][:4]) == [expected] * 4
    assert frame["t"].isna().tolist() == [False, False, False, False, True]


def test_an_offset_can_move_the_utc_day():
    got = _one_column(
        ["2025-03-04T23:30:00-05:00", "2025-03-05T02:00:00+05:30"], Col("t", "t", TIMESTAMP)
    )
    assert got == [
        dt.datetime(2025, 3, 5, 4, 30, tzinfo=UTC),
        dt.datetime(2025, 3, 4, 20, 30, tzinfo=UTC),
    ]


def test_date_only_is_midnight_utc():
    got = _one_column(["2025-03-04"], Col("d", "d", TIMESTAMP))
    assert got == [dt.datetime(2025, 3, 4, tzinfo=UTC)]


def test_fractional_seconds_keep_their_microseconds():
    got = _one_column(["2025-03-04T10:00:00.5-05:00", "2025-03-04T15:00:00.123Z"],
                      Col("t", "t", TIMESTAMP))  # fmt: skip
    assert got == [
        dt.datetime(2025, 3, 4, 15, 0, 0, 500_000, tzinfo=UTC),
        dt.datetime(2025, 3, 4, 15, 0, 0, 123_000, tzinfo=UTC),
    ]


def test_seven_fractional_digits_as_dotnet_writes_them():
    # OData's DateTimeOffset allows up to 12 fractional digits and .NET writes 7 ("o" format);
    # the trailing zero makes truncation and rounding agree on the microsecond.
    got = _one_column(["2025-03-04T10:00:00.1234560-05:00"], Col("t", "t", TIMESTAMP))
    assert got == [dt.datetime(2025, 3, 4, 15, 0, 0, 123_456, tzinfo=UTC)]


# -- decimals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_", [MONEY, DECIMAL], ids=["money", "decimal"])
def test_decimals_stay_exact(type_):
    values = [199.99, 0.1, 1e-4, 12345678.9, 0, 7, "42.5", None]
    expected = ["199.99", "0.1", "0.0001", "12345678.9", "0", "7", "42.5", None]
    table = to_table([{"amount": v} for v in values], [Col("amount", "amount", type_)], "tbl")
    assert table.schema.field("amount").type == type_
    got = table.column("amount").to_pylist()
    for value, want in zip(got, expected, strict=True):
        if want is None:
            assert value is None
        else:
            assert isinstance(value, Decimal)
            assert value == Decimal(want), (value, want)
    frame = to_frame(table)
    assert frame["amount"].dtype == pd.ArrowDtype(type_)
    assert frame["amount"][0] == Decimal("199.99")
    assert sum(v for v in frame["amount"][:4]) == Decimal("12345878.9901")


def test_money_is_not_a_float():
    (value,) = _one_column([0.1], Col("m", "m", MONEY))
    assert value * 3 == Decimal("0.3")  # 0.1 * 3 as a float is 0.30000000000000004


# -- strings --------------------------------------------------------------------------------------


def test_empty_string_and_null_stay_distinct():
    values = ["", None, "x", " ", "ação 中文 🙂", 'say "hi", \n\t']
    table = to_table([{"s": v} for v in values], [Col("s", "s", pa.string())], "tbl")
    assert table.column("s").to_pylist() == values
    frame = to_frame(table)
    assert frame["s"].isna().tolist() == [False, True, False, False, False, False]
    assert frame["s"][0] == ""


def test_a_missing_attribute_is_null_not_empty():
    table = to_table([{"s": "a"}, {}], [Col("s", "s", pa.string())], "tbl")
    assert table.column("s").to_pylist() == ["a", None]


def test_other_declared_types():
    cols = [Col("n", "n", pa.int32()), Col("big", "big", pa.int64()),
            Col("f", "f", pa.float64()), Col("b", "b", pa.bool_())]  # fmt: skip
    records = [{"n": 7, "big": 2**53 + 1, "f": 2.5, "b": True},
               {"n": None, "big": -1, "f": 3, "b": False},
               {"n": 0, "big": None, "f": None, "b": None}]  # fmt: skip
    table = to_table(records, cols, "tbl")
    assert [f.type for f in table.schema] == [pa.int32(), pa.int64(), pa.float64(), pa.bool_()]
    assert table.column("n").to_pylist() == [7, None, 0]
    assert table.column("big").to_pylist() == [2**53 + 1, -1, None]
    assert table.column("f").to_pylist() == [2.5, 3.0, None]
    assert table.column("b").to_pylist() == [True, False, None]


def test_nested_declared_json_is_text():
    col = Col("parameters", "parameters", pa.string(), json=True)
    value = [{"xpath": "A", "value": 1}, {"xpath": "B", "files": []}]
    (got, missing) = _one_column([value, None], col)
    assert json.loads(got) == value
    assert missing is None


# -- undeclared attributes ------------------------------------------------------------------------


def test_undeclared_attributes_become_typed_columns():
    cols = [Col("id", "id", pa.int64())]
    records = [
        {"id": 1, "riskScore": 10, "weight": 1.5, "urgent": True, "label": "",
         "meta": {"a": [1, 2]}, "mixed": 1, "@odata.id": "http://x/cases(1)"},
        {"id": 2, "riskScore": None, "weight": 2, "urgent": False, "label": None,
         "meta": None, "mixed": "one"},
        {"id": 3},
    ]  # fmt: skip
    table = to_table(records, cols, "tbl")
    types = {f.name: f.type for f in table.schema}
    assert table.column_names[0] == "id"
    assert types == {
        "id": pa.int64(),
        "risk_score": pa.int64(),
        "weight": pa.float64(),
        "urgent": pa.bool_(),
        "label": pa.string(),
        "meta": pa.string(),
        "mixed": pa.string(),
    }
    assert table.column("risk_score").to_pylist() == [10, None, None]
    assert table.column("weight").to_pylist() == [1.5, 2.0, None]
    assert table.column("urgent").to_pylist() == [True, False, None]
    assert table.column("label").to_pylist() == ["", None, None]
    meta = table.column("meta").to_pylist()
    assert json.loads(meta[0]) == {"a": [1, 2]}
    assert meta[1:] == [None, None]
    mixed = table.column("mixed").to_pylist()
    assert [json.loads(m) for m in mixed[:2]] == [1, "one"]
    assert mixed[2] is None


def test_schema_grows_batch_by_batch():
    cols = [Col("id", "id", pa.int64())]
    first = to_table([{"id": 1}], cols, "tbl")
    second = to_table([{"id": 2, "priority": "High"}], cols, "tbl")
    assert first.column_names == ["id"]
    assert second.column_names == ["id", "priority"]
    assert second.column("priority").to_pylist() == ["High"]


def test_an_undeclared_attribute_named_like_a_declared_column_is_kept():
    # "case_number" is not declared (the declared column reads "caseNumber"): it must not vanish.
    cols = [Col("case_number", "caseNumber", pa.string())]
    table = to_table([{"caseNumber": "A-1", "case_number": "B-2"}], cols, "tbl")
    assert table.column("case_number").to_pylist() == ["A-1"]
    assert "B-2" in [v for c in table.columns for v in c.to_pylist()]
    assert len(set(table.column_names)) == table.num_columns == 2


def test_undeclared_names_do_not_collide_with_declared_ones():
    cols = [Col("closed", "closed", pa.bool_())]
    table = to_table([{"closed": True, "Closed": "yes", "_partition": "x"}], cols, "tbl")
    names = table.column_names
    assert names[0] == "closed"
    assert len(names) == len(set(names)) == 3
    assert "_partition" not in names
    assert "_extracted_at" not in names
    assert table.column("closed").to_pylist() == [True]
    assert sorted(v for n in names[1:] for v in table.column(n).to_pylist()) == ["x", "yes"]


def test_ignore_keeps_a_childs_list_out():
    cols = [Col("id", "id", pa.int64())]
    records = [{"id": 1, "parameters": [{"xpath": "A", "value": 1}], "workitems": []}]
    table = to_table(records, cols, "tbl", ignore=frozenset({"parameters"}))
    assert table.column_names == ["id", "workitems"]
    table = to_table(records, cols, "tbl", ignore=frozenset({"parameters", "workitems"}))
    assert table.column_names == ["id"]


# -- values that do not fit -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("col", "good", "bad"),
    [
        (Col("n", "Count", pa.int32()), 1, "seven"),
        (Col("flag", "Flag", pa.bool_()), True, "maybe"),
        (Col("when", "When", TIMESTAMP), "2025-03-04T10:00:00Z", "garbage"),
        (Col("price", "Price", MONEY), 199.99, "abc"),
        (Col("rate", "Rate", DECIMAL), "0.5", "not-a-number"),
    ],
    ids=["int", "bool", "timestamp", "money", "decimal"],
)
def test_a_value_that_does_not_fit_names_table_column_and_value(col, good, bad):
    records = [{col.source: good}, {col.source: bad}]
    with pytest.raises(SchemaError) as caught:
        to_table(records, [col], "orders")
    message = str(caught.value)
    assert "orders" in message
    assert col.name in message
    assert repr(bad) in message
    assert repr(good) not in message, f"the good value is blamed: {message}"


def test_an_integer_too_large_for_its_column_is_refused():
    with pytest.raises(SchemaError, match="2147483648"):
        to_table([{"n": 2**31}], [Col("n", "n", pa.int32())], "tbl")


def test_a_boolean_is_not_money():
    with pytest.raises(SchemaError, match="True"):
        to_table([{"m": True}], [Col("m", "m", MONEY)], "tbl")


# -- empty input ----------------------------------------------------------------------------------

COLUMNS = [
    Col("id", "id", pa.int64()), Col("name", "name", pa.string()),
    Col("price", "price", MONEY), Col("rate", "rate", DECIMAL),
    Col("weight", "weight", pa.float64()), Col("stock", "stock", pa.int32()),
    Col("created", "created", TIMESTAMP), Col("active", "active", pa.bool_()),
    Col("parameters", "parameters", pa.string(), json=True),
]  # fmt: skip


@pytest.mark.parametrize(
    "make",
    [lambda: to_table([], COLUMNS, "tbl"), lambda: empty_table(COLUMNS)],
    ids=["to_table", "empty_table"],
)
def test_empty_input_is_a_typed_empty_table_and_frame(make):
    table = make()
    assert table.num_rows == 0
    assert table.schema.names == [c.name for c in COLUMNS]
    assert [f.type for f in table.schema] == [c.type for c in COLUMNS]
    frame = to_frame(table)
    assert len(frame) == 0
    assert list(frame.columns) == [c.name for c in COLUMNS]
    assert list(frame.dtypes) == [pd.ArrowDtype(c.type) for c in COLUMNS]


# -- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("Area (km²)", "area_km2"),
        ("launchDate", "launch_date"),
        ("WeightKg", "weight_kg"),
        ("creationDate", "creation_date"),
        ("estimatedSolutionDate", "estimated_solution_date"),
        ("RateToUSD", "rate_to_usd"),
        ("Rate to USD", "rate_to_usd"),
        ("Weight (kg)", "weight_kg"),
        ("Überweisung Datum", "uberweisung_datum"),
        ("already_snake", "already_snake"),
        ("id", "id"),
    ],
)
def test_safe_name(raw, name):
    assert safe_name(raw) == name


@pytest.mark.parametrize(
    "raw",
    ["", "123", "9 lives", "名前", "🙂", "a-b", "../etc/passwd", 'x"; DROP TABLE y; --',
     "@odata.id", "_partition", "__", "A" * 200, "Ünïcödé (ß) / ½"],
)  # fmt: skip
def test_safe_name_is_always_a_valid_identifier(raw):
    name = safe_name(raw)
    assert check_identifier("column", name) == name
    assert not name[0].isdigit()


def test_safe_name_keeps_digits_of_a_leading_number():
    name = safe_name("2nd approver")
    assert "2nd_approver" in name


def test_unique_names_suffixes_collisions():
    names = unique_names(["Name", "name", "NAME", "Code"])
    assert names[0] == "name"
    assert names[3] == "code"
    assert len(set(names)) == 4
    assert all(n.startswith("name_") for n in names[1:3])
    for n in names:
        check_identifier("column", n)


def test_unique_names_avoid_a_suffix_already_taken():
    names = unique_names(["a", "a_2", "a", "A 2"])
    assert len(set(names)) == 4
    assert names[:2] == ["a", "a_2"]


def test_unique_names_steer_clear_of_bookkeeping_columns():
    names = unique_names(["_partition", "_extracted_at", "Partition", "_PARTITION"])
    assert len(set(names)) == 4
    assert "_partition" not in names
    assert "_extracted_at" not in names
    for n in names:
        check_identifier("column", n)


@pytest.mark.parametrize("name", ["cases", "entity_product", "_x", "a1", "a" * 63])
def test_check_identifier_accepts(name):
    assert check_identifier("stream", name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Cases", "1a", "a-b", "a b", "a/b", "../x", "x; drop table y", '"q"', "a" * 64, "é",
     "abc\n", "abc\r\n", "\nabc", "a.b"],
)  # fmt: skip
def test_check_identifier_refuses(name):
    with pytest.raises(SchemaError, match="stream"):
        check_identifier("stream", name)


# -- Bizagi's types -------------------------------------------------------------------------------


def test_bizagi_types_map_to_arrow():
    expected = {
        "BigInt": pa.int64(), "Int": pa.int32(), "SmallInt": pa.int16(),
        "Money": pa.decimal128(19, 4),
        "Float": pa.float64(), "Real": pa.float64(),
        "Boolean": pa.bool_(),
        "DateTime": pa.timestamp("us", tz="UTC"),
        "VarChar": pa.string(), "NVarChar": pa.string(), "Char": pa.string(),
        "NChar": pa.string(), "Text": pa.string(), "NText": pa.string(), "Guid": pa.string(),
    }  # fmt: skip
    for bizagi, arrow in expected.items():
        assert BIZAGI_TYPES[bizagi] == arrow, bizagi
    for bizagi in ("Decimal", "Numeric"):
        assert pa.types.is_decimal(BIZAGI_TYPES[bizagi]), bizagi
    tiny = BIZAGI_TYPES["TinyInt"]  # SQL Server's tinyint is 0..255
    assert pa.types.is_integer(tiny)
    assert pa.array([0, 255], tiny).to_pylist() == [0, 255]


def test_each_bizagi_type_reads_a_value_of_its_kind():
    samples = {"BigInt": 9 * 10**12, "Int": 100_000, "SmallInt": -300, "TinyInt": 255,
               "Money": 4999.99, "Decimal": 19.1234, "Numeric": 80000.5, "Float": 0.25,
               "Real": 249.99, "Boolean": False, "DateTime": "2024-06-03T00:00:00",
               "VarChar": "", "Guid": "c150dbbb-9108-473a-ad1f-0c6e07a215ef"}  # fmt: skip
    cols = [Col(safe_name(k), k, BIZAGI_TYPES[k]) for k in samples]
    row = to_table([samples], cols, "tbl").to_pylist()[0]
    assert row["big_int"] == 9 * 10**12
    assert row["tiny_int"] == 255
    assert row["money"] == Decimal("4999.99")
    assert row["decimal"] == Decimal("19.1234")
    assert row["numeric"] == Decimal("80000.5")
    assert row["real"] == 249.99
    assert row["boolean"] is False
    assert row["date_time"] == dt.datetime(2024, 6, 3, tzinfo=UTC)
    assert row["var_char"] == ""
    assert row["guid"] == samples["Guid"]


def test_programs_let_arrow_allocate_with_malloc_unless_the_environment_chooses(monkeypatch):
    before = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.mimalloc_memory_pool())
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
        use_system_allocator()
        assert pa.default_memory_pool().backend_name == "mimalloc"
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
        use_system_allocator()
        assert pa.default_memory_pool().backend_name == "system"
    finally:
        pa.set_memory_pool(before)
