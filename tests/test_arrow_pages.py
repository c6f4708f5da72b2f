"""Snapshot pages read in concurrent ranges, straight into Arrow where the stream allows.

The Arrow reader must give the very table the general path gives (the emulator's Claims carry
every scalar type at its limits in their first rows), hand back any page it cannot take as
declared, and a snapshot read in ranges must land the truth, in the server's order, through
throttling, on both faces of the emulator.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import settings_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bizagi_etl.connector import BizagiClient, BizagiSettings, PagingError
from bizagi_etl.emulator import EmulatorConfig, EmulatorServer
from bizagi_etl.emulator.app import Emulated
from bizagi_etl.emulator.server import AsgiServer
from bizagi_etl.emulator.truth import export_truth
from bizagi_etl.pipeline import Catalog, ExtractResult, Lake, Stream, extract_stream
from bizagi_etl.pipeline.arrow_pages import arrow_pages_for
from bizagi_etl.pipeline.extract import flat_record, typed_by_metadata
from bizagi_etl.pipeline.frames import to_table
from bizagi_etl.pipeline.schema import Col

Endpoint = Callable[[Request], Awaitable[JSONResponse]]
STREAMS = '[[streams]]\nname = "claims"\npath = "odata/data/Claims"\nkey = "id"\n'
CLAIMS = 2_500


def claims_stream(tmp_path) -> Stream:
    path = tmp_path / "streams.toml"
    path.write_text(STREAMS, encoding="utf-8")
    return Catalog.load(path).get("claims")


def config(flavor: str, **changes) -> EmulatorConfig:
    values = {"cases": 20, "claims": CLAIMS, "flavor": flavor, "end": dt.date(2026, 11, 28)}
    return EmulatorConfig(**(values | changes))


def standard_settings(server: EmulatorServer, **changes) -> BizagiSettings:
    standard = {"filter_encoding": "standard"} if server.config.flavor == "standard" else {}
    return settings_for(server, page_size=None, **standard, **changes)


def rows_stream(*columns: Col) -> Stream:
    """A custom snapshot stream ``rows`` over ``odata/Rows``, keyed by ``id``."""
    return Stream(name="rows", description="", path="odata/Rows", key=("id",),
                  partitioning="snapshot", kind="custom",
                  columns=columns or (Col("id", "id", pa.int64()),))  # fmt: skip


def extract_rows(tmp_path: Path, collection: Endpoint) -> ExtractResult:
    """Extract ``rows`` with four workers from a server whose ``odata/Rows`` is ``collection``."""
    app = Starlette(routes=[Route("/odata/Rows", collection)])
    with AsgiServer(app) as http:
        settings = BizagiSettings(base_url=http.base_url, client_id="c",
                                  client_secret="a-static-bearer-for-this-test",
                                  auth_method="bearer_token", max_concurrency=4)  # fmt: skip
        with BizagiClient(settings) as client:
            return extract_stream(client, rows_stream(), Lake(tmp_path / "lake"))


@pytest.mark.parametrize("flavor", ["bizagi", "standard"])
def test_the_arrow_reader_gives_the_general_paths_table(flavor, tmp_path):
    with (
        EmulatorServer(config(flavor)) as server,
        BizagiClient(standard_settings(server)) as client,
    ):
        stream = typed_by_metadata(client, claims_stream(tmp_path))
        reader = arrow_pages_for(stream)
        assert reader is not None, "a plain entity set is read straight into Arrow"
        for skip in (0, 1_000, 2_000):
            url = client.url(stream.path, {"$top": 1_000, "$skip": skip})
            got = reader.read(client.get_json_bytes(url))
            rows = client.get_json(url, exact=True)["value"]
            want = to_table([flat_record(stream, r, None) for r in rows], stream.columns, "claims")
            assert got is not None
            assert got.equals(want), skip


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda row: row | {"newAttribute": 1}, "an attribute nothing declares"),
        (lambda row: row | {"score": "NaN"}, "a double sent as text"),
        (lambda row: row | {"amount": "twelve"}, "a value of another type"),
    ],
)
def test_a_page_not_as_declared_is_handed_back(change, why):
    amount = Col("amount", "amount", pa.decimal128(18, 4))
    reader = arrow_pages_for(rows_stream(Col("id", "id", pa.int64()),
                                         Col("score", "score", pa.float64()), amount))  # fmt: skip
    assert reader is not None
    row = {"@odata.id": "Rows(1)", "id": 1, "score": 0.5, "amount": 12.3456}
    fine = reader.read(orjson.dumps({"value": [row]}))
    assert fine is not None
    assert fine.to_pylist() == [{"id": 1, "score": 0.5, "amount": Decimal("12.3456")}]
    assert reader.read(orjson.dumps({"value": [change(row)]})) is None, why
    assert reader.read(b"<html>login</html>") is None
    assert reader.read(orjson.dumps({"error": {"code": "x"}})) is None


def test_streams_the_general_path_must_read_get_no_reader():
    cases = Catalog.load().get("cases")  # child tables, fanned out per process
    assert arrow_pages_for(cases) is None


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("claims_truth")
    export_truth(Emulated(config("bizagi")).ds, folder)
    return pq.read_table(folder / "claims.parquet").to_pylist()


@pytest.mark.parametrize("flavor", ["bizagi", "standard"])
def test_a_snapshot_read_in_ranges_lands_the_truth_in_order(flavor, truth, tmp_path):
    """Four workers, pages of 300 (9 ranges), throttled answers: the partition holds every
    claim once, in the server's order, with the values the truth has."""
    emulator = config(flavor, page_cap=300, fault_rate=0.05, retry_after=0)
    with (
        EmulatorServer(emulator) as server,
        BizagiClient(standard_settings(server, max_concurrency=4)) as client,
    ):
        result = extract_stream(client, claims_stream(tmp_path), Lake(tmp_path / "lake"))
        faults = sum(server.injected.values())
    assert faults > 0, "throttling was injected"
    (written,) = result.partitions
    table = pq.read_table(written.files[0]).to_pylist()
    assert [r["id"] for r in table] == [t["id"] for t in truth], "every claim once, in order"
    assert table[0]["amount"] == truth[0]["amount"]
    assert {r["id"]: r["notes"] for r in table} == {t["id"]: t["notes"] for t in truth}
    assert result.requests >= len(truth) // 300


def test_a_server_that_ignores_skip_is_refused_not_duplicated(tmp_path):
    """Ranges need $skip: a server answering the first rows whatever $skip says would land
    each row many times; the run stops with a message saying so and what to set instead."""
    rows = [{"@odata.id": f"Rows({i})", "id": i} for i in range(25)]

    async def collection(request: Request) -> JSONResponse:
        top = int(request.query_params.get("$top", 10))
        return JSONResponse({"value": rows[: min(top, 10)], "@odata.count": len(rows)})

    with pytest.raises(PagingError) as caught:
        extract_rows(tmp_path, collection)
    assert "ignores $skip" in str(caught.value)
    assert "BIZAGI_MAX_CONCURRENCY=1" in str(caught.value)
    assert not (tmp_path / "lake" / "rows").exists() or not list(
        (tmp_path / "lake" / "rows").rglob("*.parquet")
    ), "nothing landed"


def test_a_page_over_a_mebibyte_is_read_whole():
    reader = arrow_pages_for(rows_stream(Col("id", "id", pa.int64()),
                                         Col("text", "text", pa.string())))  # fmt: skip
    assert reader is not None
    rows = [{"id": i, "text": "x" * 300_000} for i in range(8)]  # 2.4 MB in one object
    table = reader.read(orjson.dumps({"value": rows}))
    assert table is not None
    assert table.column("id").to_pylist() == list(range(8))


def test_a_page_the_reader_hands_back_is_read_from_the_same_answer(tmp_path):
    """Int64 keys sent as text (IEEE754Compatible) are not what the reader takes: the page is
    parsed the general way from the body already fetched, not asked for twice."""
    rows = [{"@odata.id": f"Rows({i})", "id": str(i)} for i in range(25)]
    seen: list[str] = []

    async def collection(request: Request) -> JSONResponse:
        seen.append(str(request.query_params))
        skip, top = int(request.query_params.get("$skip", 0)), int(request.query_params["$top"])
        return JSONResponse({"value": rows[skip : skip + min(top, 10)], "@odata.count": 25})

    result = extract_rows(tmp_path, collection)
    (written,) = result.partitions
    assert pq.read_table(written.files[0]).column("id").to_pylist() == list(range(25))
    assert len(seen) == 3, seen  # the first page, then two ranges, each asked once
    assert result.requests == 3


def test_a_server_that_refuses_skip_is_read_through_its_links(tmp_path):
    """A server that pages by $skiptoken only answers a $skip range with 400: the snapshot is
    then read one page after another through its links, every row once."""
    rows = [{"@odata.id": f"Rows({i})", "id": i} for i in range(25)]

    async def collection(request: Request) -> JSONResponse:
        query = request.query_params
        if query.get("$skip", "0") != "0":
            return JSONResponse({"error": {"code": "BadRequest", "message": "$skip"}}, 400)
        start = int(query.get("$skiptoken", 0))
        body = {"value": rows[start : start + 10], "@odata.count": len(rows)}
        if start + 10 < len(rows):
            body["@odata.nextLink"] = f"Rows?$skiptoken={start + 10}"
        return JSONResponse(body)

    result = extract_rows(tmp_path, collection)
    (written,) = result.partitions
    assert pq.read_table(written.files[0]).column("id").to_pylist() == list(range(25))
