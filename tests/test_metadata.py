"""$metadata: CSDL parsed safely, resource paths resolved to entity types, fetched once per run,
and Edm types mapped to Arrow."""

from __future__ import annotations

import gc
import logging
import threading
import time
import tracemalloc
import weakref
from collections.abc import Iterator

import httpx
import pyarrow as pa
import pytest
from conftest import settings_for, tiny, tiny_settings
from starlette.responses import Response

from bizagi_etl.connector import (
    AuthError,
    BizagiClient,
    ClientError,
    RequestStats,
    SchemaError,
    ServerError,
    TransportError,
    iter_rows,
)
from bizagi_etl.connector import metadata as metadata_module
from bizagi_etl.connector.metadata import (
    EntityType,
    Property,
    ServiceMetadata,
    entity_type_at,
    fetch_metadata,
    parse_csdl,
    service_root,
)
from bizagi_etl.emulator import EmulatorConfig, EmulatorServer
from bizagi_etl.pipeline.schema import DECIMAL, TIMESTAMP, edm_arrow_type

V4 = "http://docs.oasis-open.org/odata/ns"
METADATA_LOGGER = "bizagi_etl.connector.metadata"


# -- the emulator's real documents -------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(cases=200)) as server:
        yield server


@pytest.fixture
def client(emulator: EmulatorServer) -> Iterator[BizagiClient]:
    with BizagiClient(settings_for(emulator)) as c:
        yield c


def _count_metadata_requests(client: BizagiClient) -> list[str]:
    """Paths of the $metadata requests the client sends from now on."""
    sent: list[str] = []

    def hook(request: httpx.Request) -> None:
        if request.url.path.endswith("/$metadata"):
            sent.append(request.url.path)

    client.http.event_hooks["request"].append(hook)
    return sent


def test_the_emulators_data_service_is_read_and_its_paths_resolve(client: BizagiClient) -> None:
    meta = fetch_metadata(client, "odata/data")
    assert meta is not None
    assert meta.version == "4.0"
    assert meta.source.endswith("/odata/data/$metadata")
    process_id = next(iter_rows(client, "odata/data/processes"))["id"]
    entity_id = next(iter_rows(client, "odata/data/entities"))["id"]

    cases = meta.entity_type_for(f"processes({process_id})/cases")
    assert cases is not None
    assert cases.name == "Bizagi.case"
    assert cases.key == ("id",)
    assert [p.name for p in cases.properties][:7] == [
        "id", "caseNumber", "creationDate", "estimatedSolutionDate", "solutionDate",
        "processName", "closed",
    ]  # fmt: skip
    creation = cases.property_named("creationDate")
    assert creation == Property("creationDate", "Edm.DateTimeOffset", nullable=False)
    parameters = cases.property_named("parameters")
    assert parameters is not None
    assert (parameters.type, parameters.collection, parameters.kind) == (
        "Bizagi.ParameterValue", True, "complex",
    )  # fmt: skip
    assert parameters.nested

    values = meta.entity_type_for(f"entities({entity_id})/values")
    assert values is not None
    assert values.name == "Bizagi.entityValue"
    with_workitems = meta.entity_type_for("casesWithWorkitems")
    assert with_workitems is not None
    assert with_workitems.key == ("idCase",)
    workitems = with_workitems.property_named("workitems")
    assert workitems is not None
    assert (workitems.kind, workitems.collection) == ("entity", True)
    stakeholders = meta.entity_type_for("stakeholders")
    assert stakeholders is not None
    assert [p.name for p in stakeholders.properties] == ["id", "name", "displayName", "iconName"]
    assert meta.entity_type_for("userProfile") is not None  # a singleton
    assert meta.entity_type_for("searchByCaseNumber(caseNumber='1')") is None  # a function
    assert meta.entity_type_for("processes/$count") is None


def test_the_metadata_service_and_a_stream_path_resolve_through_the_client(
    client: BizagiClient,
) -> None:
    processes = entity_type_at(client, "odata/metadata/processes")
    assert processes is not None
    assert {"entityId", "processId", "processType"} <= {p.name for p in processes.properties}
    cases = entity_type_at(client, "odata/data/processes({process_id})/cases")
    assert cases is not None
    assert cases.name == "Bizagi.case"
    assert entity_type_at(client, "odata/data/nothingHere") is None


def test_metadata_is_fetched_once_per_client_and_root_even_from_many_threads(
    emulator: EmulatorServer,
) -> None:
    with BizagiClient(settings_for(emulator)) as client:
        sent = _count_metadata_requests(client)
        barrier = threading.Barrier(8)
        got: list[ServiceMetadata | None] = []

        def ask() -> None:
            barrier.wait()
            got.append(fetch_metadata(client, "odata/data"))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 8
        assert all(m is got[0] and m is not None for m in got)
        assert fetch_metadata(client, "/odata/data/") is got[0]  # the same root, spelled freely
        assert fetch_metadata(client, "odata/metadata") is not None
        entity_type_at(client, "odata/metadata/stakeholders")
        assert sorted(sent) == ["/odata/data/$metadata", "/odata/metadata/$metadata"]

    with BizagiClient(settings_for(emulator)) as fresh:  # another run asks again
        sent = _count_metadata_requests(fresh)
        assert fetch_metadata(fresh, "odata/data") is not got[0]
        assert sent == ["/odata/data/$metadata"]


def test_the_cache_does_not_keep_a_client_alive(emulator: EmulatorServer) -> None:
    client = BizagiClient(settings_for(emulator))
    assert fetch_metadata(client, "odata/data") is not None
    client.close()
    gone = weakref.ref(client)
    del client
    gc.collect()
    assert gone() is None


def test_a_service_without_metadata_gives_none_with_one_warning_and_one_request(
    client: BizagiClient, caplog: pytest.LogCaptureFixture
) -> None:
    sent = _count_metadata_requests(client)
    with caplog.at_level(logging.WARNING, logger=METADATA_LOGGER):
        assert fetch_metadata(client, "odata/nothing") is None  # the emulator answers 404
        assert fetch_metadata(client, "odata/nothing") is None
        assert entity_type_at(client, "odata/nothing/Claims") is None
    assert sent == ["/odata/nothing/$metadata"]
    warnings = [r for r in caplog.records if r.name == METADATA_LOGGER]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "HTTP 404" in warnings[0].getMessage()
    assert "odata/nothing/$metadata" in warnings[0].getMessage()


# -- servers on a bad day ------------------------------------------------------------------------

MINIMAL = f"""<?xml version="1.0"?>
<edmx:Edmx Version="4.0" xmlns:edmx="{V4}/edmx"><edmx:DataServices>
<Schema Namespace="S" xmlns="{V4}/edm">
<EntityType Name="T"><Key><PropertyRef Name="id"/></Key>
<Property Name="id" Type="Edm.Int64" Nullable="false"/></EntityType>
<EntityContainer Name="C"><EntitySet Name="Claims" EntityType="S.T"/></EntityContainer>
</Schema></edmx:DataServices></edmx:Edmx>"""


def _xml(body: str | bytes, status: int = 200, **headers: str) -> Response:
    return Response(body, status, headers=headers, media_type="application/xml")


@pytest.mark.parametrize("status", [404, 405, 406, 501])
def test_statuses_that_mean_no_metadata_give_none(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    with tiny(lambda r: _xml("<error/>", status)) as (server, _):
        with BizagiClient(tiny_settings(server)) as client:
            with caplog.at_level(logging.WARNING, logger=METADATA_LOGGER):
                assert fetch_metadata(client, "odata/data") is None
    assert f"HTTP {status}" in caplog.text


@pytest.mark.parametrize(
    ("status", "error"), [(403, AuthError), (500, ServerError), (400, ClientError)]
)
def test_other_failures_propagate_and_are_not_remembered(
    status: int, error: type[Exception]
) -> None:
    answers = iter([_xml("no", status), _xml(MINIMAL)])
    with tiny(lambda r: next(answers)) as (server, seen):
        with BizagiClient(tiny_settings(server, max_retries=0)) as client:
            with pytest.raises(error, match=f"HTTP {status}"):
                fetch_metadata(client, "odata/data")
            assert fetch_metadata(client, "odata/data") is not None  # asked again
    assert [s.path for s in seen if s.path.endswith("$metadata")] == ["/odata/data/$metadata"] * 2


def test_the_request_asks_for_xml_and_a_busy_server_is_retried() -> None:
    answers = iter([_xml("busy", 503, **{"Retry-After": "0"}), _xml(MINIMAL)])
    with tiny(lambda r: next(answers)) as (server, seen):
        with BizagiClient(tiny_settings(server, max_backoff=0.01)) as client:
            stats = RequestStats()
            meta = fetch_metadata(client, "odata/data", stats)
            assert fetch_metadata(client, "odata/data", stats) is meta
    assert meta is not None
    assert (stats.requests, dict(stats.retries)) == (2, {"503": 1})
    assert meta.entity_type_for("Claims") is not None
    asked = [s for s in seen if s.path == "/odata/data/$metadata"]
    assert len(asked) == 2
    assert all(s.headers["accept"] == "application/xml" for s in asked)
    assert all(s.headers["authorization"].startswith("Bearer ") for s in asked)


def test_an_unreachable_server_propagates_a_transport_error() -> None:
    with tiny(lambda r: _xml(MINIMAL)) as (server, _):
        settings = tiny_settings(server, max_retries=0)
    with BizagiClient(settings) as client, pytest.raises(TransportError):  # server gone
        fetch_metadata(client, "odata/data")


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Please sign in</body></html>",
        b'{"@odata.context": "not xml"}',
        b"<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY a 'aaaa'>]><lol>&a;</lol>",
    ],
)
def test_a_document_that_cannot_be_parsed_gives_none_with_a_warning(
    body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with tiny(lambda r: _xml(body)) as (server, _):
        with BizagiClient(tiny_settings(server)) as client:
            with caplog.at_level(logging.WARNING, logger=METADATA_LOGGER):
                assert fetch_metadata(client, "odata/data") is None
    assert "$metadata from http://127.0.0.1:" in caplog.text
    assert "typed from the stream declarations" in caplog.text


def test_a_document_larger_than_the_limit_is_not_parsed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(metadata_module, "MAX_METADATA_BYTES", 1_000)
    with tiny(lambda r: _xml(MINIMAL + " " * 5_000)) as (server, _):
        with BizagiClient(tiny_settings(server)) as client:
            with caplog.at_level(logging.WARNING, logger=METADATA_LOGGER):
                assert fetch_metadata(client, "odata/data") is None
    assert "at most 1,000 bytes" in caplog.text


# -- handcrafted CSDL: aliases, inheritance, facets, navigation, singletons ----------------------

CLAIMS = f"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.01" xmlns:edmx="{V4}/edmx">
  <edmx:Reference Uri="https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Core.V1.xml">
    <edmx:Include Namespace="Org.OData.Core.V1" Alias="Core"/>
  </edmx:Reference>
  <edmx:DataServices>
    <Schema Namespace="Acme.Claims.Model" Alias="self" xmlns="{V4}/edm">
      <TypeDefinition Name="Money" UnderlyingType="Edm.Decimal" Precision="19" Scale="4"/>
      <EnumType Name="Status"><Member Name="Open"/><Member Name="Closed"/></EnumType>
      <ComplexType Name="Address"><Property Name="City" Type="Edm.String"/></ComplexType>
      <ComplexType Name="PostalAddress" BaseType="self.Address">
        <Property Name="Zip" Type="Edm.String"/>
      </ComplexType>
      <EntityType Name="UrgentClaim" BaseType="Acme.Claims.Model.Claim">
        <Property Name="Deadline" Type="Edm.DateTimeOffset"/>
      </EntityType>
      <EntityType Name="Document" Abstract="true">
        <Key><PropertyRef Name="Id"/></Key>
        <Property Name="Id" Type="Edm.Guid" Nullable="false"/>
        <Property Name="Created" Type="Edm.DateTimeOffset" Nullable="false" Precision="7"/>
        <Annotation Term="Core.Description" String="Anything filed"/>
      </EntityType>
      <EntityType Name="Claim" BaseType="self.Document" OpenType="true">
        <Property Name="Amount" Type="self.Money"/>
        <Property Name="Rate" Type="Edm.Decimal" Precision="9" Scale="variable"/>
        <Property Name="Status" Type="self.Status"/>
        <Property Name="Address" Type="self.PostalAddress"/>
        <Property Name="Tags" Type="Collection(Edm.String)" Nullable="false"/>
        <Property Name="Filed" Type="Edm.Date"/>
        <NavigationProperty Name="Lines" Type="Collection(self.Line)" ContainsTarget="true"/>
        <NavigationProperty Name="Owner" Type="self.Person" Nullable="false"/>
      </EntityType>
      <EntityType Name="Line">
        <Key><PropertyRef Name="ClaimId"/><PropertyRef Name="No"/></Key>
        <Property Name="ClaimId" Type="Edm.Guid" Nullable="false"/>
        <Property Name="No" Type="Edm.Int32" Nullable="false"/>
        <Property Name="Price" Type="Edm.Decimal" Precision="12" Scale="2"/>
      </EntityType>
      <EntityType Name="Person">
        <Key><PropertyRef Name="Id"/></Key>
        <Property Name="Id" Type="Edm.Int64" Nullable="false"/>
        <NavigationProperty Name="Claims" Type="Collection(Acme.Claims.Model.Claim)"/>
      </EntityType>
    </Schema>
    <Schema Namespace="Acme.Claims.Service" xmlns="{V4}/edm">
      <EntityContainer Name="Container">
        <EntitySet Name="Claims" EntityType="self.Claim">
          <NavigationPropertyBinding Path="Owner" Target="People"/>
        </EntitySet>
        <EntitySet Name="People" EntityType="Acme.Claims.Model.Person"/>
        <Singleton Name="Me" Type="self.Person"/>
        <FunctionImport Name="Overdue" Function="self.Overdue" EntitySet="Claims"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>""".encode()


@pytest.fixture(scope="module")
def claims() -> ServiceMetadata:
    return parse_csdl(CLAIMS, "claims.xml")


def _names(entity: EntityType | None) -> list[str]:
    assert entity is not None
    return [p.name for p in entity.properties]


def test_inheritance_puts_the_bases_properties_and_key_first(claims: ServiceMetadata) -> None:
    urgent = claims.entity_types["Acme.Claims.Model.UrgentClaim"]
    assert _names(urgent) == [
        "Id", "Created", "Amount", "Rate", "Status", "Address", "Tags", "Filed", "Deadline",
    ]  # fmt: skip
    assert urgent.key == ("Id",)
    assert urgent.base_type == "Acme.Claims.Model.Claim"
    assert urgent.open_type  # inherited
    assert [n.name for n in urgent.navigation] == ["Lines", "Owner"]
    document = claims.entity_types["Acme.Claims.Model.Document"]
    assert document.abstract
    assert not document.open_type
    assert not claims.entity_types["Acme.Claims.Model.Claim"].abstract
    address = claims.complex_types["Acme.Claims.Model.PostalAddress"]
    assert [p.name for p in address.properties] == ["City", "Zip"]
    assert address.base_type == "Acme.Claims.Model.Address"


def test_properties_carry_types_with_aliases_resolved_and_their_facets(
    claims: ServiceMetadata,
) -> None:
    claim = claims.entity_types["Acme.Claims.Model.Claim"]
    assert claim.property_named("Amount") == Property("Amount", "Edm.Decimal", True, 19, 4)  # Money
    assert claim.property_named("Rate") == Property("Rate", "Edm.Decimal", True, 9, "variable")
    assert claim.property_named("Created") == Property(
        "Created", "Edm.DateTimeOffset", nullable=False, precision=7
    )
    assert claim.property_named("Status") == Property(
        "Status", "Acme.Claims.Model.Status", kind="enum"
    )
    assert claim.property_named("Address") == Property(
        "Address", "Acme.Claims.Model.PostalAddress", kind="complex"
    )
    assert claim.property_named("Tags") == Property("Tags", "Edm.String", False, collection=True)
    assert claim.property_named("Nothing") is None
    lines = claim.navigation_named("Lines")
    assert lines is not None
    assert (lines.type, lines.collection) == ("Acme.Claims.Model.Line", True)
    owner = claim.navigation_named("Owner")
    assert owner is not None
    assert (owner.type, owner.collection, owner.nullable) == ("Acme.Claims.Model.Person", False,
                                                              False)  # fmt: skip
    assert dict(claims.entity_sets) == {
        "Claims": "Acme.Claims.Model.Claim", "People": "Acme.Claims.Model.Person",
    }  # fmt: skip
    assert dict(claims.singletons) == {"Me": "Acme.Claims.Model.Person"}
    assert claims.aliases["self"] == "Acme.Claims.Model"
    assert claims.aliases["Core"] == "Org.OData.Core.V1"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Claims", "Claim"),
        ("/Claims/", "Claim"),
        ("Claims(1)", "Claim"),
        ("Claims(1)/Lines", "Line"),
        ("Claims(0b5d3ee1-2c4b-4c1e-9f0e-8d4f3c2b1a09)/Owner", "Person"),
        ("Claims('a''b')/Lines(ClaimId=1,No=2)", "Line"),
        ("Claims('a/b(c')/Lines", "Line"),
        ("Claims(id=1,b='x')/Lines", "Line"),
        ("Claims({claim_id})/Lines", "Line"),
        ("Claims(%27a%2Fb%27)/Lines", "Line"),
        ("Claims/Lines?$filter=No eq 1", "Line"),
        ("Me", "Person"),
        ("Me/Claims(1)/Owner/Claims", "Claim"),
        ("Claims/Acme.Claims.Model.UrgentClaim", "UrgentClaim"),
        ("Claims(1)/self.UrgentClaim/Lines", "Line"),
        ("People", "Person"),
        ("Claims/$count", None),
        ("Claims(1)/Address", None),  # a complex property, not an entity
        ("Claims(1)/Amount", None),
        ("Claims(1)/Nothing", None),
        ("Nothing", None),
        ("Overdue()", None),
        ("Claims(1", None),
        ("Claims(1))/Lines", None),
        ("Claims('1)/Lines", None),
        ("Claims(1)x/Lines", None),
        ("", None),
        ("/", None),
    ],
)
def test_resource_paths_resolve_to_the_entity_type_they_return(
    claims: ServiceMetadata, path: str, expected: str | None
) -> None:
    found = claims.entity_type_for(path)
    assert (found.name if found else None) == (
        f"Acme.Claims.Model.{expected}" if expected else None
    )


def _microsoft(edm: str) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8" standalone="yes"?>
<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx">
  <edmx:DataServices m:DataServiceVersion="2.0"
      xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">
    <Schema Namespace="NorthwindModel" xmlns="{edm}">
      <EntityType Name="Order">
        <Key><PropertyRef Name="OrderID"/></Key>
        <Property Name="OrderID" Type="Edm.Int32" Nullable="false"/>
        <Property Name="Freight" Type="Edm.Decimal" Precision="19" Scale="4"/>
        <Property Name="OrderDate" Type="Edm.DateTime"/>
        <NavigationProperty Name="Order_Details" Relationship="NorthwindModel.FK_Details_Orders"
            FromRole="Orders" ToRole="Order_Details"/>
        <NavigationProperty Name="Customer" Relationship="NorthwindModel.FK_Orders_Customers"
            FromRole="Orders" ToRole="Customers"/>
      </EntityType>
      <EntityType Name="Order_Detail">
        <Key><PropertyRef Name="OrderID"/><PropertyRef Name="ProductID"/></Key>
        <Property Name="OrderID" Type="Edm.Int32" Nullable="false"/>
        <Property Name="ProductID" Type="Edm.Int32" Nullable="false"/>
      </EntityType>
      <EntityType Name="Customer">
        <Key><PropertyRef Name="CustomerID"/></Key>
        <Property Name="CustomerID" Type="Edm.String" Nullable="false" MaxLength="5"/>
      </EntityType>
      <Association Name="FK_Details_Orders">
        <End Type="NorthwindModel.Order" Role="Orders" Multiplicity="1"/>
        <End Type="NorthwindModel.Order_Detail" Role="Order_Details" Multiplicity="*"/>
      </Association>
      <Association Name="FK_Orders_Customers">
        <End Type="NorthwindModel.Customer" Role="Customers" Multiplicity="0..1"/>
        <End Type="NorthwindModel.Order" Role="Orders" Multiplicity="*"/>
      </Association>
      <EntityContainer Name="NorthwindEntities" m:IsDefaultEntityContainer="true">
        <EntitySet Name="Orders" EntityType="NorthwindModel.Order"/>
        <EntitySet Name="Customers" EntityType="NorthwindModel.Customer"/>
        <AssociationSet Name="FK_Orders_Customers" Association="NorthwindModel.FK_Orders_Customers">
          <End Role="Customers" EntitySet="Customers"/><End Role="Orders" EntitySet="Orders"/>
        </AssociationSet>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>""".encode()


@pytest.mark.parametrize(
    "edm",
    [
        "http://schemas.microsoft.com/ado/2009/11/edm",
        "http://schemas.microsoft.com/ado/2008/09/edm",
        "http://schemas.microsoft.com/ado/2006/04/edm",
    ],
)
def test_microsofts_older_csdl_parses_with_navigation_through_associations(edm: str) -> None:
    meta = parse_csdl(_microsoft(edm), "northwind.xml")
    orders = meta.entity_type_for("Orders(10248)")
    assert orders is not None
    assert _names(orders) == ["OrderID", "Freight", "OrderDate"]
    details = orders.navigation_named("Order_Details")
    customer = orders.navigation_named("Customer")
    assert details is not None
    assert customer is not None
    assert (details.type, details.collection) == ("NorthwindModel.Order_Detail", True)
    assert (customer.type, customer.collection) == ("NorthwindModel.Customer", False)
    assert _names(meta.entity_type_for("Orders(10248)/Order_Details")) == ["OrderID", "ProductID"]
    assert _names(meta.entity_type_for("Orders(1)/Customer")) == ["CustomerID"]
    assert meta.version == "1.0"


def test_types_and_sets_may_be_spread_over_schemas() -> None:
    meta = parse_csdl(CLAIMS, "claims.xml")
    assert meta.entity_type_for("People(1)/Claims") is not None


# -- documents refused ---------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
<edmx:DataServices><Schema Namespace="S" xmlns="http://docs.oasis-open.org/odata/ns/edm">
<EntityType Name="T"><Property Name="x" Type="Edm.String" DefaultValue="&lol9;"/></EntityType>
</Schema></edmx:DataServices></edmx:Edmx>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE edmx:Edmx [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
<edmx:DataServices><Schema Namespace="S" xmlns="http://docs.oasis-open.org/odata/ns/edm">
<EntityType Name="T"><Property Name="x" Type="Edm.String"/></EntityType>
<Annotation Term="Core.Description"><String>&x;</String></Annotation>
</Schema></edmx:DataServices></edmx:Edmx>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE edmx:Edmx SYSTEM "http://169.254.169.254/latest/meta-data/">
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"/>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD])
@pytest.mark.timing
def test_entity_bombs_and_external_entities_are_refused_quickly_in_little_memory(
    document: bytes,
) -> None:
    tracemalloc.start()
    began = time.perf_counter()
    try:
        with pytest.raises(SchemaError, match="refused a document type declaration") as caught:
            parse_csdl(document, "hostile.xml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - began < 1
    assert peak < 2 * 2**20  # expanded, the bomb would be ~3 GB
    assert "hostile.xml" in str(caught.value)
    assert "root:" not in str(caught.value)  # nothing of /etc/passwd echoed


def test_a_bomb_served_by_a_hostile_server_falls_back_to_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tiny(lambda r: _xml(BILLION_LAUGHS)) as (server, _):
        with BizagiClient(tiny_settings(server)) as client:
            with caplog.at_level(logging.WARNING, logger=METADATA_LOGGER):
                assert fetch_metadata(client, "odata/data") is None
    assert "refused a document type declaration" in caplog.text


def _doc(schema_body: str, root_attrs: str = "") -> bytes:
    return (
        f'<edmx:Edmx Version="4.0" xmlns:edmx="{V4}/edmx"{root_attrs}><edmx:DataServices>'
        f'<Schema Namespace="S" xmlns="{V4}/edm">{schema_body}</Schema>'
        "</edmx:DataServices></edmx:Edmx>"
    ).encode()


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b"<edmx:Edmx xmlns:edmx='x'><unclosed>" + b"A" * 500, ["not well-formed XML",
                                                               "expected a CSDL document"]),
        (b"", ["not well-formed XML"]),
        (b"\x00\x01garbage", ["not well-formed XML"]),
        (b"<html><body>sign in</body></html>", ["not CSDL", "edmx:Edmx", "got <html>"]),
        (b"<Edmx Version='4.0'/>", ["not CSDL", "no namespace"]),
        (f'<edmx:Edmx xmlns:edmx="{V4}/edmx"/>'.encode(), ["one edmx:DataServices, got 0"]),
        (f'<edmx:Edmx xmlns:edmx="{V4}/edmx"><edmx:DataServices/></edmx:Edmx>'.encode(),
         ["at least one Schema"]),
        (_doc('<EntityType Name="T"><Property Name="p"/></EntityType>'),
         ["<Property Name='p'> lacks the attribute Type"]),
        (_doc('<EntityType><Property Name="p" Type="Edm.String"/></EntityType>'),
         ["<EntityType> lacks the attribute Name"]),
        (_doc('<EntityType Name="T"><Property Name="p" Type="Edm.Decimal" Precision="x"/>'
              "</EntityType>"), ["'p'", "Precision", "whole number", "'x'"]),
        (_doc('<EntityType Name="T"><Property Name="p" Type="Edm.Decimal" Scale="wide"/>'
              "</EntityType>"), ["'p'", "Scale", "'variable'", "'wide'"]),
        (_doc('<EntityType Name="T" BaseType="S.Missing"/>'), ["BaseType 'S.Missing'",
                                                                "EntityType 'S.T'"]),
        (_doc('<EntityType Name="A" BaseType="S.B"/><EntityType Name="B" BaseType="S.A"/>'),
         ["loops"]),
        (_doc('<EntityType Name="T"><NavigationProperty Name="n" Relationship="S.R" '
              'ToRole="x"/></EntityType>'), ["navigation property 'n'", "Association 'S.R'"]),
        (_doc('<EntityContainer Name="C"><EntitySet Name="E"/></EntityContainer>'),
         ["<EntitySet Name='E'> lacks the attribute EntityType"]),
    ],
)  # fmt: skip
def test_what_is_not_csdl_is_a_schema_error_that_says_what_and_where(
    document: bytes, words: list[str]
) -> None:
    with pytest.raises(SchemaError) as caught:
        parse_csdl(document, "http://host/odata/data/$metadata")
    message = str(caught.value)
    assert message.startswith("$metadata from http://host/odata/data/$metadata: ")
    for word in words:
        assert word in message
    assert len(message) < 400  # echoed input is cut


# -- service roots -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "root"),
    [
        ("odata/data/Claims", "odata/data"),
        ("/odata/metadata/processes", "odata/metadata"),
        ("odata/data/processes({process_id})/cases", "odata/data"),
        ("odata/data/entities('a/b')/values", "odata/data"),
        ("odata/data", "odata/data"),
        ("api/v4/Claims", "api/v4"),
        ("api/v4/Claims(1)/Lines", "api/v4"),
        ("Claims", ""),
    ],
)
def test_service_root(path: str, root: str) -> None:
    assert service_root(path) == root


def test_a_service_at_the_base_url_is_asked_for_its_metadata_there() -> None:
    with tiny(lambda r: _xml(MINIMAL)) as (server, seen):
        with BizagiClient(tiny_settings(server)) as client:
            found = entity_type_at(client, "Claims(7)")
    assert found is not None
    assert found.name == "S.T"
    assert [s.path for s in seen if "metadata" in s.path] == ["/$metadata"]


# -- Edm -> Arrow --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edm", "arrow"),
    [
        ("Edm.DateTimeOffset", TIMESTAMP),
        ("Edm.Date", pa.date32()),
        ("Edm.Int64", pa.int64()),
        ("Edm.Int32", pa.int32()),
        ("Edm.Int16", pa.int16()),
        ("Edm.Byte", pa.uint8()),
        ("Edm.SByte", pa.int8()),
        ("Edm.Double", pa.float64()),
        ("Edm.Single", pa.float32()),
        ("Edm.Boolean", pa.bool_()),
        ("Edm.Guid", pa.string()),
        ("Edm.String", pa.string()),
        ("Edm.Duration", pa.string()),
        ("Edm.TimeOfDay", pa.string()),
        ("Edm.Binary", pa.string()),
        ("Edm.Time", pa.string()),
        ("Edm.Decimal", DECIMAL),
        ("Edm.Untyped", None),
        ("Edm.Stream", None),
        ("Edm.GeographyPoint", None),
        ("Edm.DateTime", None),
        ("Edm.Unheard", None),
    ],
)
def test_edm_primitive_types_map_to_arrow(edm: str, arrow: pa.DataType | None) -> None:
    assert edm_arrow_type(Property("p", edm)) == arrow


@pytest.mark.parametrize(
    ("precision", "scale", "arrow"),
    [
        (10, 2, pa.decimal128(10, 2)),
        (19, 4, pa.decimal128(19, 4)),
        (38, 0, pa.decimal128(38, 0)),
        (50, 10, pa.decimal256(50, 10)),
        (80, 2, None),  # beyond Arrow's 76 digits: typed as before
        (2, 5, pa.decimal128(5, 5)),  # a scale over the precision: room for it
        (None, 4, pa.decimal128(38, 4)),
        (None, None, DECIMAL),
        (18, None, DECIMAL),
        (30, None, pa.decimal128(30, 0)),
        (9, "variable", pa.decimal128(18, 9)),
        (25, "variable", pa.decimal256(50, 25)),
        (None, "variable", DECIMAL),
        (15, "floating", pa.float64()),
    ],
)
def test_decimals_get_a_type_that_holds_every_declared_value(
    precision: int | None, scale: int | str | None, arrow: pa.DataType | None
) -> None:
    assert edm_arrow_type(Property("p", "Edm.Decimal", precision=precision, scale=scale)) == arrow


def test_nested_enumerations_and_undeclared_types(claims: ServiceMetadata) -> None:
    claim = claims.entity_types["Acme.Claims.Model.Claim"]
    types = {p.name: edm_arrow_type(p) for p in claim.properties}
    assert types == {
        "Id": pa.string(), "Created": TIMESTAMP, "Amount": pa.decimal128(19, 4),
        "Rate": pa.decimal128(18, 9), "Status": pa.string(), "Address": None, "Tags": None,
        "Filed": pa.date32(),
    }  # fmt: skip
    assert [p.name for p in claim.properties if p.nested] == ["Address", "Tags"]
    assert edm_arrow_type(Property("p", "Other.Thing", kind="unknown")) is None
    assert edm_arrow_type(Property("p", "S.Row", collection=True, kind="entity")) is None
