"""The stream catalog, parameter-entity streams from templates, and custom streams from TOML.

Entity streams are built from what the emulator serves at ``/odata/data/entities``; what they
land is compared with the ground truth. Custom streams are written as TOML files in tmp_path
and extracted against the emulator into a real lake.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import client_for

from bizagi_etl import BizagiClient, BizagiSettings
from bizagi_etl.connector.errors import SchemaError
from bizagi_etl.pipeline.extract import extract_stream
from bizagi_etl.pipeline.lake import Lake
from bizagi_etl.pipeline.names import check_identifier
from bizagi_etl.pipeline.streams import (
    DAILY,
    FAMILY,
    SNAPSHOT,
    Catalog,
    Stream,
    custom_streams,
    entity_stream,
)

UTC = dt.UTC
TS = pa.timestamp("us", tz="UTC")

# -- the built-in catalog -------------------------------------------------------------------------


def test_catalog_has_the_builtin_streams():
    catalog = Catalog.load()
    names = [s.name for s in catalog.all()]
    assert names == ["processes", "stakeholders", "entities", "entity_values", "cases", "inbox"]
    assert catalog.custom == ()
    for name in ("processes", "stakeholders", "entities", "entity_values", "inbox"):
        stream = catalog.get(name)
        assert stream.partitioning == SNAPSHOT, name
        assert stream.key == ("id",), name
        assert stream.cursor is None, name


def test_parameter_entities_are_a_family_the_catalog_knows():
    catalog = Catalog.load()
    family = catalog.get("entity_values")
    assert family.kind == FAMILY
    assert family.tables == ()  # its tables are found, not declared
    assert list(family.declared_tables()) == []
    # a member is found through its family, by name, and owns only its own prefix
    assert catalog.get("entity_country") is family
    assert family.owns("entity_country")
    assert not family.owns("cases")
    present = ["cases", "entity_country", "entity_product", "inbox"]
    assert family.tables_among(present) == [
        ("entity_country", ("id",)),
        ("entity_product", ("id",)),
    ]
    assert catalog.get("cases").tables_among(present) == [
        ("cases", ("id",)),
        ("case_parameters", ("case_id", "position")),
    ]
    with pytest.raises(SchemaError, match=r"entity_<name>"):
        catalog.get("no_such_stream")


def test_cases_are_daily_on_creation_date_fanned_out_with_parameters():
    cases = Catalog.load().get("cases")
    assert cases.partitioning == DAILY
    assert cases.cursor == "creationDate"
    assert cases.fan_out is True
    assert "{process_id}" in cases.path
    assert cases.key == ("id",)
    assert cases.tables == ("cases", "case_parameters")
    (child,) = cases.children
    assert child.name == "case_parameters"
    assert child.source == "parameters"
    assert "parameters" in cases.child_sources
    types = {c.name: c.type for c in cases.columns}
    assert types["id"] == pa.int64()
    assert types["creation_date"] == TS
    assert types["closed"] == pa.bool_()


def test_inbox_has_its_workitems_as_a_child():
    inbox = Catalog.load().get("inbox")
    assert inbox.tables == ("inbox", "inbox_workitems")
    assert inbox.children[0].source == "workitems"


def test_every_builtin_table_and_column_name_is_safe_and_unique():
    for stream in Catalog.load().all():
        for table, columns in [(stream.name, stream.columns)] + [
            (c.name, c.columns) for c in stream.children
        ]:
            check_identifier("table", table)
            names = [c.name for c in columns]
            assert len(names) == len(set(names)), table
            for n in names:
                check_identifier("column", n)
                assert n not in ("_partition", "_extracted_at")


def test_an_unknown_stream_is_refused_with_the_known_names():
    with pytest.raises(SchemaError) as caught:
        Catalog.load().get("nope")
    message = str(caught.value)
    assert "'nope'" in message
    for name in ("processes", "cases", "inbox", "entity_values"):
        assert name in message


# -- parameter entities ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_entities(small_server) -> list[dict]:
    with client_for(small_server) as client:
        response = client.get("/odata/data/entities")
        assert response.status_code == 200
        return list(response.json()["value"])


def _entity(served: list[dict], name: str) -> Stream:
    (entity,) = [e for e in served if e["name"] == name]
    return entity_stream(entity)


def _types(stream: Stream) -> dict[str, pa.DataType]:
    return {c.name: c.type for c in stream.columns}


def test_product_template_maps_exactly(served_entities):
    stream = _entity(served_entities, "Product")
    assert stream.name == "entity_product"
    assert stream.kind == "entity"
    assert stream.partitioning == SNAPSHOT
    assert stream.key == ("id",)
    (entity,) = [e for e in served_entities if e["name"] == "Product"]
    assert stream.path == f"odata/data/entities({entity['id']})/values"
    assert _types(stream) == {
        "id": pa.string(),
        "sku": pa.string(),
        "name": pa.string(),
        "price": pa.decimal128(19, 4),
        "weight_kg": pa.float64(),
        "stock": pa.int32(),
        "launch_date": TS,
        "discontinued": pa.bool_(),
        "disabled": pa.bool_(),
    }
    assert {c.name: c.source for c in stream.columns}["disabled"] == "dsbl"


def test_other_templates_map_by_type(served_entities):
    country = _types(_entity(served_entities, "Country"))
    assert country["population"] == pa.int64()  # BigInt
    assert country["area_km2"] == pa.float64()  # Float, from "AreaKm2"
    assert country["code"] == pa.string()
    assert country["disabled"] == pa.bool_()
    currency = _types(_entity(served_entities, "Currency"))
    assert pa.types.is_decimal(currency["rate_to_usd"])  # Decimal
    assert pa.types.is_integer(currency["decimals"])  # TinyInt
    department = _types(_entity(served_entities, "Department"))
    assert department["budget"] == pa.decimal128(19, 4)  # Money
    assert department["created"] == TS  # DateTime
    assert department["manager"] == pa.string()  # NVarChar


_FROM_TEMPLATE = {
    "BigInt": pa.int64(), "Int": pa.int32(), "SmallInt": pa.int16(), "Money": pa.decimal128(19, 4),
    "Float": pa.float64(), "Real": pa.float64(), "Boolean": pa.bool_(), "DateTime": TS,
    "VarChar": pa.string(), "NVarChar": pa.string(), "Char": pa.string(), "Text": pa.string(),
    "Guid": pa.string(),
}  # fmt: skip


def test_every_served_entity_gets_a_column_per_attribute(served_entities):
    assert {e["name"] for e in served_entities} == {"Country", "Currency", "Department", "Product"}
    for entity in served_entities:
        stream = entity_stream(entity)
        check_identifier("stream", stream.name)
        by_source = {c.source: c for c in stream.columns}
        assert set(by_source) == {"id", "dsbl", *(t["xpath"] for t in entity["template"])}
        for t in entity["template"]:
            col = by_source[t["xpath"]]
            check_identifier("column", col.name)
            if t["type"] in _FROM_TEMPLATE:
                assert col.type == _FROM_TEMPLATE[t["type"]], (entity["name"], t)
            elif t["type"] in ("Decimal", "Numeric"):
                assert pa.types.is_decimal(col.type)
            else:
                assert pa.types.is_integer(col.type), (entity["name"], t)  # TinyInt


def test_entity_with_awkward_names_gets_safe_unique_columns():
    entity = {
        "id": "11111111-2222-3333-4444-555555555555",
        "name": "Cost Centre (ÜK)",
        "template": [
            {"name": "A", "xpath": "Amount", "type": "Money"},
            {"name": "B", "xpath": "amount", "type": "Float"},
            {"name": "C", "xpath": "_partition", "type": "VarChar"},
            {"name": "D", "xpath": "Disabled", "type": "Boolean"},
            {"name": "E", "xpath": "When (UTC)", "type": "SmallDateTime"},
            {"name": "F", "xpath": "Blob", "type": "SomethingNew"},
        ],
    }
    stream = entity_stream(entity)
    check_identifier("stream", stream.name)
    assert stream.name.startswith("entity_")
    names = [c.name for c in stream.columns]
    assert len(names) == len(set(names))
    assert "_partition" not in names
    for n in names:
        check_identifier("column", n)
    by_source = {c.source: c for c in stream.columns}
    assert by_source["Amount"].type == pa.decimal128(19, 4)
    assert by_source["amount"].type == pa.float64()
    assert by_source["When (UTC)"].type == TS
    assert by_source["dsbl"].type == pa.bool_()
    assert by_source["Disabled"].name != by_source["dsbl"].name


# -- what entity streams land, against the truth --------------------------------------------------


@pytest.fixture(scope="module")
def bizagi(small_server) -> Iterator[BizagiClient]:
    settings = BizagiSettings(
        base_url=small_server.base_url,
        client_id=small_server.client_id,
        client_secret=small_server.client_secret,
        page_size=1000,
    )
    with BizagiClient(settings) as client:
        yield client


def _expected(value_json: str, type_: pa.DataType) -> object:
    value = json.loads(value_json)
    if value is None:
        return None
    if pa.types.is_decimal(type_):
        return Decimal(value_json)  # the JSON text itself: exact
    if pa.types.is_timestamp(type_):
        parsed = dt.datetime.fromisoformat(value)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    if pa.types.is_floating(type_):
        return float(value)
    return value


@pytest.mark.parametrize("name", ["Country", "Currency", "Department"])
def test_entity_values_land_as_the_truth_holds_them(
    name, served_entities, bizagi, small_truth, tmp_path
):
    stream = _entity(served_entities, name)
    lake = Lake(tmp_path)
    result = extract_stream(bizagi, stream, lake)
    landed = lake.read(stream.name)
    declared = {c.name: c.type for c in stream.columns}
    for field in landed.schema:
        if field.name in declared:
            assert field.type == declared[field.name], field.name
    assert set(declared) <= set(landed.column_names)
    truth = small_truth["entity_values"]
    truth = truth[truth["entity_name"] == name]
    assert result.rows(stream.name) == truth["value_id"].nunique() == landed.num_rows
    rows = {r["id"]: r for r in landed.to_pylist()}
    by_source = {c.source: c for c in stream.columns}
    assert set(rows) == set(truth["value_id"])
    for t in truth.itertuples():
        col = by_source[t.xpath]
        want = _expected(t.value, col.type)
        got = rows[t.value_id][col.name]
        assert got == want, (name, t.value_id, t.xpath, got, want)
        if isinstance(want, str):
            assert got is not None  # "" stays "", never null


# -- custom streams: refusals ---------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "streams.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _one(name: str = "my_stream", path: str = "odata/data/stakeholders", extra: str = "") -> str:
    return f'[[streams]]\nname = {json.dumps(name)}\npath = {json.dumps(path)}\nkey = "id"\n{extra}'


@pytest.mark.parametrize(
    "name",
    ["../x", "a/b", "x; drop table y", "Cases", '"q"', "1abc", "", "a b", "x\n", "é",
     "a" * 64, "processes", "stakeholders", "entities", "cases", "case_parameters", "inbox",
     "inbox_workitems", "entity_values", "entity_product", "entity_anything"],
)  # fmt: skip
def test_names_that_could_escape_or_collide_are_refused(tmp_path, name):
    with pytest.raises(SchemaError) as caught:
        custom_streams(_write(tmp_path, _one(name=name)))
    assert repr(name) in str(caught.value) or name in str(caught.value)


@pytest.mark.parametrize(
    "path",
    ["odata/data/../metadata/x", "odata/data/..", "../odata/data/x", "http://evil.example/odata/data/x",
     "https://evil.example/odata/data/cases", "//evil.example/odata/data/cases",
     "evil.example/odata/data/cases", "odata/data/cases?$top=1", "odata/data/cases?x",
     "api/data/cases", "data/cases", "", "odata/data/cases#frag", "odata/data\\..\\x",
     "odata/data/%2e%2e/x"],
)  # fmt: skip
def test_paths_outside_the_project_api_are_refused(tmp_path, path):
    with pytest.raises(SchemaError, match="path"):
        custom_streams(_write(tmp_path, _one(path=path)))


def test_unknown_settings_are_refused(tmp_path):
    with pytest.raises(SchemaError, match="colums"):
        custom_streams(_write(tmp_path, _one(extra='colums = { a = "string" }\n')))


@pytest.mark.parametrize("missing", ["name", "path", "key"])
def test_missing_required_keys_are_refused(tmp_path, missing):
    lines = [line for line in _one().splitlines() if not line.startswith(missing)]
    with pytest.raises(SchemaError, match=missing):
        custom_streams(_write(tmp_path, "\n".join(lines) + "\n"))


@pytest.mark.parametrize("type_name", ["currency", "varchar", "int", "5"])
def test_unknown_column_types_are_refused(tmp_path, type_name):
    extra = f"columns = {{ amount = {json.dumps(type_name)} }}\n"
    with pytest.raises(SchemaError) as caught:
        custom_streams(_write(tmp_path, _one(extra=extra)))
    assert repr(type_name) in str(caught.value)


@pytest.mark.parametrize(
    "text",
    ["[[streams]\nname = 'x'\n", "[[streams]]\nname = \n", "streams = 'x'\n", "streams = [1]\n",
     "[streams]\nname = 'x'\n"],
)  # fmt: skip
def test_malformed_files_are_refused(tmp_path, text):
    with pytest.raises(SchemaError, match="streams"):
        custom_streams(_write(tmp_path, text))


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(SchemaError, match="nowhere"):
        Catalog.load(tmp_path / "nowhere.toml")


def test_two_custom_streams_with_one_name_are_refused(tmp_path):
    with pytest.raises(SchemaError, match="twice_here"):
        custom_streams(_write(tmp_path, _one(name="twice_here") + _one(name="twice_here")))


def test_a_valid_file_with_every_type_and_composite_key(tmp_path):
    text = (
        '[[streams]]\nname = "line_items"\npath = "/odata/data/processes(abc)/cases"\n'
        'key = ["caseId", "Line No"]\ncursor = "creationDate"\ndescription = "Lines"\n'
        "[streams.columns]\n"
        'creationDate = "timestamp"\nAmount = "money"\nRate = "decimal"\nQty = "int32"\n'
        'Big = "int64"\nSmall = "int16"\nWeight = "float64"\nOk = "bool"\nOk2 = "boolean"\n'
        'Label = "string"\nmeta = "json"\n'
        "\n"
        '[[streams]]\nname = "personas"\npath = "odata/metadata/stakeholders"\nkey = "id"\n'
    )
    daily, snapshot = custom_streams(_write(tmp_path, text))
    assert daily.name == "line_items"
    assert daily.kind == "custom"
    assert daily.path == "odata/data/processes(abc)/cases"
    assert daily.partitioning == DAILY
    assert daily.cursor == "creationDate"
    assert daily.key == ("case_id", "line_no")
    assert daily.description == "Lines"
    cols = {c.source: c for c in daily.columns}
    assert cols["creationDate"].name == "creation_date"
    assert cols["creationDate"].type == TS
    assert cols["Amount"].type == pa.decimal128(19, 4)
    assert pa.types.is_decimal(cols["Rate"].type)
    assert cols["Qty"].type == pa.int32()
    assert cols["Big"].type == pa.int64()
    assert cols["Small"].type == pa.int16()
    assert cols["Weight"].type == pa.float64()
    assert cols["Ok"].type == cols["Ok2"].type == pa.bool_()
    assert cols["Label"].type == pa.string()
    assert cols["meta"].json is True
    assert snapshot.partitioning == SNAPSHOT
    assert snapshot.cursor is None
    catalog = Catalog.load(tmp_path / "streams.toml")
    assert catalog.get("line_items") == daily
    assert [s.name for s in catalog.custom] == ["line_items", "personas"]


# -- custom streams against the emulator ----------------------------------------------------------

WINDOW = (dt.date(2026, 8, 1), dt.date(2026, 9, 30))  # 60 days, end exclusive


def test_custom_daily_stream_lands_exactly_the_truths_cases(bizagi, small_truth, tmp_path):
    cases = small_truth["cases"]
    lo = pd.Timestamp(WINDOW[0], tz="UTC")
    hi = pd.Timestamp(WINDOW[1], tz="UTC")
    in_window = cases[(cases["creation_utc"] >= lo) & (cases["creation_utc"] < hi)]
    process_id = in_window["process_id"].value_counts().index[0]
    expected = in_window[in_window["process_id"] == process_id]
    assert len(expected) >= 10  # a window worth testing
    file = _write(
        tmp_path,
        "[[streams]]\n"
        'name = "one_process_cases"\n'
        f'path = "odata/data/processes({process_id})/cases"\n'
        'key = "id"\n'
        'cursor = "creationDate"\n'
        'columns = { creationDate = "timestamp", closed = "bool", estimatedSolutionDate = '
        '"timestamp" }\n',
    )
    (stream,) = Catalog.load(file).custom
    assert stream.partitioning == DAILY
    lake = Lake(tmp_path / "lake")
    result = extract_stream(bizagi, stream, lake, start=WINDOW[0], end=WINDOW[1])
    assert result.outside_window == 0
    landed = lake.read("one_process_cases")
    assert landed.schema.field("creation_date").type == TS
    assert landed.schema.field("estimated_solution_date").type == TS
    assert landed.schema.field("closed").type == pa.bool_()
    assert sorted(landed.column("id").to_pylist()) == sorted(expected["id"].tolist())
    assert result.rows("one_process_cases") == len(expected)
    truth = expected.set_index("id")
    for row in landed.to_pylist():
        t = truth.loc[row["id"]]
        assert row["creation_date"] == t["creation_utc"].to_pydatetime()
        assert row["closed"] == bool(t["closed"])
        assert row["case_number"] == t["caseNumber"]
    # one partition per day of the window, empty days included, each row on its UTC day
    days = [WINDOW[0] + dt.timedelta(days=i) for i in range((WINDOW[1] - WINDOW[0]).days)]
    assert lake.partitions("one_process_cases") == [("day", d.isoformat()) for d in days]
    for column, value in lake.partitions("one_process_cases"):
        for file in lake.files("one_process_cases", column, value):
            for when in pq.read_table(file).column("creation_date").to_pylist():
                assert when.date().isoformat() == value


def test_custom_snapshot_stream_lands_the_stakeholders(bizagi, small_truth, tmp_path):
    file = _write(
        tmp_path,
        '[[streams]]\nname = "personas"\npath = "odata/data/stakeholders"\nkey = "id"\n'
        'columns = { displayName = "string" }\n',
    )
    (stream,) = Catalog.load(file).custom
    assert stream.partitioning == SNAPSHOT
    lake = Lake(tmp_path / "lake")
    at = dt.datetime(2026, 10, 15, 12, tzinfo=UTC)
    extract_stream(bizagi, stream, lake, extracted_at=at)
    assert lake.partitions("personas") == [("snapshot", "2026-10-15")]
    landed = lake.read("personas")
    truth = small_truth["stakeholders"]
    got = sorted((r["id"], r["name"], r["display_name"]) for r in landed.to_pylist())
    want = sorted(zip(truth["id"], truth["name"], truth["displayName"], strict=True))
    assert got == want
    assert "icon_name" in landed.column_names  # undeclared attribute kept


def test_case_parameters_built_as_columns_equal_those_built_row_by_row(small_server):
    """The backfill's hot path builds ``case_parameters`` column by column; it must give the
    table the row-by-row definition gives, for every kind of value a case carries."""
    import dataclasses

    from bizagi_etl.connector import iter_rows
    from bizagi_etl.pipeline.streams import CASE_PARAMETERS

    settings = BizagiSettings(base_url=small_server.base_url, client_id=small_server.client_id,
                              client_secret=small_server.client_secret)  # fmt: skip
    with BizagiClient(settings) as client:
        processes = list(iter_rows(client, "odata/data/processes"))
        cases = list(iter_rows(client, f"odata/data/processes({processes[0]['id']})/cases",
                               max_pages=2))  # fmt: skip
    kinds = {json.dumps(type(p.get("value")).__name__) for c in cases for p in c["parameters"]}
    assert len(kinds) >= 3, kinds
    by_columns, counts = CASE_PARAMETERS.table(cases)
    by_rows, row_counts = dataclasses.replace(CASE_PARAMETERS, columns_of=None).table(cases)
    assert by_columns is not None
    assert by_columns.equals(by_rows)
    assert counts == row_counts == [len(c["parameters"]) for c in cases]
    assert CASE_PARAMETERS.table([{"id": 1, "parameters": []}]) == (None, [0])
