"""Columns typed from the service's $metadata: declaration order, declared types win, what
nothing declares is still inferred, and a service without $metadata works as before."""

from __future__ import annotations

import decimal
import logging
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bizagi_etl.connector import BizagiClient, BizagiSettings, parse_csdl
from bizagi_etl.emulator.server import AsgiServer
from bizagi_etl.pipeline import Catalog, Lake, custom_streams, extract_stream
from bizagi_etl.pipeline.streams import apply_metadata

CSDL = b"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
 <edmx:DataServices>
  <Schema Namespace="Claims.Model" Alias="M" xmlns="http://docs.oasis-open.org/odata/ns/edm">
   <EntityType Name="Claim">
    <Key><PropertyRef Name="id"/></Key>
    <Property Name="id" Type="Edm.Int64" Nullable="false"/>
    <Property Name="submittedAt" Type="Edm.DateTimeOffset"/>
    <Property Name="amount" Type="Edm.Decimal" Precision="18" Scale="4"/>
    <Property Name="dueDate" Type="Edm.Date"/>
    <Property Name="approved" Type="Edm.Boolean"/>
    <Property Name="tags" Type="Collection(Edm.String)"/>
    <Property Name="note" Type="Edm.String"/>
   </EntityType>
   <EntityContainer Name="Container">
    <EntitySet Name="Claims" EntityType="M.Claim"/>
   </EntityContainer>
  </Schema>
 </edmx:DataServices>
</edmx:Edmx>"""

ROWS = [
    {"@odata.id": "Claims(1)", "id": 1, "note": "a", "approved": True, "dueDate": "2025-03-01",
     "amount": "99999999999999.9999", "submittedAt": "2025-03-01T10:00:00+02:00", "tags": ["x"],
     "surprise": 7},
    {"@odata.id": "Claims(2)", "id": 2, "note": "", "approved": None, "dueDate": None,
     "amount": "-0.0001", "submittedAt": "2025-03-02T00:00:00Z", "tags": [], "surprise": 8},
]  # fmt: skip


def streams_file(folder: Path, columns: str = "") -> Path:
    path = folder / "streams.toml"
    path.write_text('[[streams]]\nname = "claims"\npath = "odata/data/Claims"\nkey = "id"\n'
                    + columns, encoding="utf-8")  # fmt: skip
    return path


def test_a_custom_stream_takes_types_and_order_from_metadata(tmp_path):
    (stream,) = custom_streams(streams_file(tmp_path))
    typed = apply_metadata(stream, parse_csdl(CSDL, "test").entity_type_for("Claims"))
    columns = [(c.name, c.source, c.type, c.json) for c in typed.columns]
    assert columns == [
        ("id", "id", pa.int64(), False),
        ("submitted_at", "submittedAt", pa.timestamp("us", tz="UTC"), False),
        ("amount", "amount", pa.decimal128(18, 4), False),
        ("due_date", "dueDate", pa.date32(), False),
        ("approved", "approved", pa.bool_(), False),
        ("tags", "tags", pa.string(), True),
        ("note", "note", pa.string(), False),
    ]


def test_a_streams_file_type_wins_in_the_services_order(tmp_path):
    (stream,) = custom_streams(streams_file(tmp_path, '[streams.columns]\namount = "float64"\n'
                                                      'extra = "int32"\n'))  # fmt: skip
    typed = apply_metadata(stream, parse_csdl(CSDL, "test").entity_type_for("Claims"))
    names = [c.name for c in typed.columns]
    assert names == ["id", "submitted_at", "amount", "due_date", "approved", "tags", "note",
                     "extra"]  # fmt: skip
    by_name = {c.name: c.type for c in typed.columns}
    assert by_name["amount"] == pa.float64()
    assert by_name["extra"] == pa.int32()


def test_a_builtin_stream_keeps_its_columns_first():
    cases = Catalog.load().get("cases")
    typed = apply_metadata(cases, parse_csdl(CSDL, "test").entity_type_for("Claims"))
    assert typed.columns[: len(cases.columns)] == cases.columns


def service(with_metadata: bool) -> Starlette:
    async def rows(request: Request) -> JSONResponse:
        return JSONResponse({"value": ROWS, "@odata.count": len(ROWS)})

    async def metadata(request: Request) -> Response:
        if not with_metadata:
            return JSONResponse({"error": {"code": "NotFound", "message": "no"}}, 404)
        return Response(CSDL, media_type="application/xml")

    return Starlette(routes=[Route("/odata/data/Claims", rows),
                             Route("/odata/data/$metadata", metadata)])  # fmt: skip


@pytest.mark.parametrize("with_metadata", [True, False])
def test_the_lake_gets_the_declared_types_or_todays_inference(tmp_path, caplog, with_metadata):
    caplog.set_level(logging.WARNING)
    (stream,) = custom_streams(streams_file(tmp_path))
    with AsgiServer(service(with_metadata)) as server, tempfile.TemporaryDirectory() as folder:
        settings = BizagiSettings(base_url=server.base_url, client_id="c", client_secret="t",
                                  auth_method="bearer_token")  # fmt: skip
        with BizagiClient(settings) as client:
            result = extract_stream(client, stream, Lake(Path(folder)))
        (written,) = result.partitions
        table = Lake(Path(folder)).read("claims")
    assert written.rows == 2
    types = dict(zip(table.schema.names, table.schema.types, strict=True))
    if with_metadata:
        assert table.schema.names[:7] == ["id", "submitted_at", "amount", "due_date",
                                          "approved", "tags", "note"]  # fmt: skip
        assert types["amount"] == pa.decimal128(18, 4)
        assert table.column("amount").to_pylist() == [
            decimal.Decimal("99999999999999.9999"),
            decimal.Decimal("-0.0001"),
        ]
        assert types["due_date"] == pa.date32()
        assert types["submitted_at"] == pa.timestamp("us", tz="UTC")
        assert table.column("note").to_pylist() == ["a", ""]
    else:
        assert "$metadata" in caplog.text  # the fallback says so
        assert types["submittedAt" if "submittedAt" in types else "submitted_at"] == pa.string()
    # an attribute nothing declares still becomes a column, inferred from its values
    assert "surprise" in types
    assert types["surprise"] == pa.int64()
