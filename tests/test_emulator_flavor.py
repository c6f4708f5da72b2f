"""The emulator's second face (``--flavor standard``), the Claims entity set, doubled slashes.

Both flavours run as real servers on loopback. The standard one serves the same data as the
session's ``small_server`` (SMALL), so both are held against the same ground truth.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urljoin

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import SMALL, client_for, flat_400, token_for

from bizagi_etl.cli import main
from bizagi_etl.emulator import EmulatorConfig, EmulatorConfigError, EmulatorServer
from bizagi_etl.emulator.dataset import Dataset
from bizagi_etl.emulator.truth import write_claims

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
STANDARD = dataclasses.replace(SMALL, flavor="standard", page_cap=500)
CLAIMS = SMALL.claims  # 5,000: a multiple of STANDARD's page cap
FORM = {"grant_type": "client_credentials", "scope": "api"}
CLAIM_TYPES = {  # name: (Type, Nullable, Precision, Scale), in the order they are served
    "id": ("Edm.Int64", "false", None, None),
    "claimNumber": ("Edm.String", "false", None, None),
    "status": ("Edm.String", "false", None, None),
    "lastModified": ("Edm.DateTimeOffset", "false", "3", None),
    "submittedAt": ("Edm.DateTimeOffset", "false", "0", None),
    "policyId": ("Edm.Guid", "false", None, None),
    "policyHolder": ("Edm.String", None, None, None),
    "amount": ("Edm.Decimal", "false", "18", "4"),
    "reserveRatio": ("Edm.Decimal", None, "5", "5"),
    "score": ("Edm.Double", None, None, None),
    "priorityCode": ("Edm.Int16", None, None, None),
    "itemCount": ("Edm.Int32", "false", None, None),
    "externalRef": ("Edm.Int64", None, None, None),
    "approved": ("Edm.Boolean", None, None, None),
    "incidentDate": ("Edm.Date", None, None, None),
    "notes": ("Edm.String", None, None, None),
}
NAMES = list(CLAIM_TYPES)


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def std_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(STANDARD) as server:
        yield server


@pytest.fixture(scope="module")
def std_client(std_server: EmulatorServer) -> Iterator[httpx.Client]:
    with client_for(std_server) as client:
        yield client


@pytest.fixture(scope="module")
def claims_truth(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """claims.parquet as export_truth writes it, read exactly (pyarrow, not pandas)."""
    path = tmp_path_factory.mktemp("claims") / "claims.parquet"
    write_claims(Dataset(SMALL).claims, path)
    return list(pq.read_table(path).to_pylist())


@pytest.fixture(params=["bizagi", "standard"])
def any_flavor(request: pytest.FixtureRequest) -> tuple[EmulatorServer, httpx.Client]:
    if request.param == "bizagi":
        return request.getfixturevalue("small_server"), request.getfixturevalue("small_client")
    return request.getfixturevalue("std_server"), request.getfixturevalue("std_client")


def qs(options: dict[str, Any]) -> str:
    """A query string as a standard client sends it: each value percent-encoded once."""
    return "&".join(f"{name}={quote(str(value), safe='')}" for name, value in options.items())


def exact(response: httpx.Response) -> Any:
    """The body with every JSON number that has a point or exponent as its exact Decimal."""
    assert response.status_code == 200, response.text[:500]
    return json.loads(response.text, parse_float=Decimal)


def follow(
    client: httpx.Client, url: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every page of a standard-flavour collection, resolving relative next links against the
    context URL as OData JSON §4.5.5 says; checks each link's shape on the way."""
    pages = []
    seen: set[str] = set()
    response = client.get(url, headers=headers)
    while True:
        body = exact(response)
        pages.append(body)
        link = body.get("@odata.nextLink")
        if link is None:
            return pages
        assert re.match(r"[A-Za-z]", link), f"relative to the service root: {link}"
        assert "://" not in link, link
        assert "$skiptoken=" in link, link
        assert not re.search(r"[?&]\$(skip|top)=", link), link
        absolute = urljoin(body["@odata.context"], link)
        assert absolute not in seen, f"next link repeated: {link}"
        seen.add(absolute)
        response = client.get(absolute, headers=headers)


def rows_of(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for page in pages for row in page["value"]]


def nested_error(response: httpx.Response, status: int, target: str | None = None) -> dict:
    """The standard flavour's error: {"error": {"code", "message", "details": [...]}}."""
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message", "details"} <= set(error) <= {"code", "message", "target", "details"}
    assert isinstance(error["code"], str)
    assert error["code"]
    assert not error["code"].isdigit()
    assert isinstance(error["message"], str)
    assert error["message"].strip()
    assert isinstance(error["details"], list)
    assert "Traceback" not in response.text
    if target is not None:
        assert error["target"] == target
        assert error["details"] == [
            {"code": error["code"], "message": error["message"], "target": target}
        ]
    return dict(error)


def same_claim(served: dict[str, Any], truth: dict[str, Any]) -> None:
    """A served claim (parsed with Decimal floats) equals its truth row, value and spelling."""
    assert [k for k in served if not k.startswith("@")] == NAMES
    for name in NAMES:
        got, want = served[name], truth[name]
        if want is None:
            assert got is None, name
        elif name in ("lastModified", "submittedAt"):
            assert dt.datetime.fromisoformat(got) == want, name
        elif name == "incidentDate":
            assert got == want.isoformat(), name
        elif name == "score":
            assert float(got) == want, name
        elif name in ("amount", "reserveRatio"):
            assert got == want, name
            assert got.as_tuple().exponent == want.as_tuple().exponent, name
        else:
            assert got == want, name
            assert type(got) is type(want), name


# -- configuration and command ------------------------------------------------------------------


def test_flavor_and_claims_are_validated():
    assert EmulatorConfig().flavor == "bizagi"
    with pytest.raises(EmulatorConfigError, match="flavor"):
        EmulatorConfig(flavor="odata")
    with pytest.raises(EmulatorConfigError, match="claims"):
        EmulatorConfig(claims=-1)


def test_command_has_the_flavor_switch():
    help_text = CliRunner().invoke(main, ["emulator", "--help"]).output
    assert "--flavor [bizagi|standard]" in help_text
    assert "--claims" in help_text
    wrong = CliRunner().invoke(main, ["emulator", "--flavor", "odata"])
    assert wrong.exit_code == 2
    assert "odata" in wrong.output


# -- doubled slashes, both flavours --------------------------------------------------------------


@pytest.mark.parametrize("path", ["//oauth2/server/token", "//oauth2/server/token/"])
def test_doubled_slashes_reach_the_token_endpoint(any_flavor, path):
    server, _ = any_flavor
    response = httpx.post(
        server.base_url + path, auth=(server.client_id, server.client_secret), data=FORM
    )
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]


def test_doubled_slashes_reach_odata_but_the_query_is_untouched(any_flavor):
    server, client = any_flavor
    for path in ("//odata/data/Claims", "//odata//data///Claims"):
        # A plain parameter is ignored by both flavours and repeated in the next link.
        response = client.get(f"{server.base_url}{path}?$top=3&note=a//b")
        body = exact(response)
        assert [c["id"] for c in body["value"]] == [1, 2, 3]
        assert body["value"][0]["@odata.id"] == f"{server.base_url}/odata/data/Claims(1)"
    body = exact(client.get(f"{server.base_url}//odata/data/Claims?note=a//b"))
    assert "note=a//b" in body["@odata.nextLink"]
    metadata = client.get(f"{server.base_url}//odata/data/$metadata")
    assert metadata.status_code == 200
    assert metadata.headers["content-type"].startswith("application/xml")


# -- the Claims entity set, both flavours --------------------------------------------------------


def test_metadata_declares_claims_in_the_served_order(any_flavor):
    _, client = any_flavor
    root = ET.fromstring(client.get("/odata/data/$metadata").content)
    claim = next(t for t in root.iter(EDM + "EntityType") if t.get("Name") == "Claim")
    assert [r.get("Name") for r in claim.iter(EDM + "PropertyRef")] == ["id"]
    declared = {
        p.get("Name"): (p.get("Type"), p.get("Nullable"), p.get("Precision"), p.get("Scale"))
        for p in claim.iter(EDM + "Property")
    }
    assert declared == CLAIM_TYPES
    assert [p.get("Name") for p in claim.iter(EDM + "Property")] == NAMES != sorted(NAMES)
    served = exact(client.get("/odata/data/Claims?$top=1"))["value"][0]
    assert [k for k in served if not k.startswith("@")] == NAMES
    container = next(root.iter(EDM + "EntityContainer"))
    sets = {s.get("Name"): s.get("EntityType") for s in container.iter(EDM + "EntitySet")}
    assert sets["Claims"] == "Bizagi.Claim"


_TEXT = {
    "Edm.DateTimeOffset": re.compile(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?(Z|[+-]\d\d:\d\d)"
    ),
    "Edm.Date": re.compile(r"\d{4}-\d\d-\d\d"),
    "Edm.Guid": re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
}
_INT_RANGE = {"Edm.Int16": 16, "Edm.Int32": 32, "Edm.Int64": 64}


def test_every_served_claim_fits_its_declared_type(small_client):
    """$metadata and the records held together, value by value, over all claims."""
    pages = [
        exact(small_client.get("/odata/data/Claims", params={"$skip": s, "$top": 1000}))
        for s in range(0, CLAIMS, 1000)
    ]
    rows = rows_of(pages)
    assert len(rows) == CLAIMS
    for name, (edm, nullable, precision, scale) in CLAIM_TYPES.items():
        values = [r[name] for r in rows]
        if nullable == "false":
            assert None not in values, name
        else:
            assert None in values, f"{name} is nullable and some rows are null"
        for v in (v for v in values if v is not None):
            if edm in _INT_RANGE:
                bits = _INT_RANGE[edm]
                assert type(v) is int, (name, v)
                assert -(2 ** (bits - 1)) <= v < 2 ** (bits - 1), (name, v)
            elif edm == "Edm.Decimal":
                _sign, digits, exponent = v.as_tuple()
                assert exponent == -int(scale), (name, v)
                assert len(digits) <= int(precision), (name, v)
            elif edm == "Edm.Double":
                assert isinstance(v, Decimal | int), (name, v)
            elif edm == "Edm.Boolean":
                assert type(v) is bool
            elif edm in _TEXT:
                assert _TEXT[edm].fullmatch(v), (name, v)
            else:
                assert type(v) is str


def test_tricky_values_come_back_exactly(any_flavor, claims_truth):
    _, client = any_flavor
    response = client.get("/odata/data/Claims?$top=60")
    body = exact(response)
    for served, truth in zip(body["value"], claims_truth[:60], strict=True):
        same_claim(served, truth)
    text = response.text
    for spelling in ('"amount":99999999999999.9999', '"amount":-99999999999999.9999',
                     '"amount":0.0000', '"amount":0.0001', '"reserveRatio":0.99999',
                     '"externalRef":9223372036854775807', '"externalRef":-9223372036854775808',
                     '"priorityCode":-32768', '"itemCount":2147483647', '"score":5e-324',
                     '"incidentDate":"0001-01-01"', '"incidentDate":"9999-12-31"',
                     '"policyId":"00000000-0000-0000-0000-000000000000"'):  # fmt: skip
        assert spelling in text, spelling
    notes = [c["notes"] for c in body["value"]] + [c["policyHolder"] for c in body["value"]]
    joined = "".join(n for n in notes if n)
    assert any(ord(ch) > 0xFFFF for ch in joined), "non-BMP text (emoji, CJK extension B)"
    for needle in ("\t", "\n", "\r\n", "'", '"', "𠮷", "🚀", "東京", "\u2028", "e\u0301"):
        assert needle in joined, repr(needle)
    assert "null" in notes, "the text 'null' is not a null"
    assert max(len(n or "") for n in notes) == 4000


def test_empty_strings_beside_nulls(small_client, claims_truth):
    notes = [c["notes"] for c in claims_truth]
    assert notes.count("") > 50
    assert notes.count(None) > 50
    holders = [c["policyHolder"] for c in claims_truth]
    assert holders.count("") > 20
    assert holders.count(None) > 20
    first_empty = next(c["id"] for c in claims_truth if c["notes"] == "")
    first_null = next(c["id"] for c in claims_truth if c["notes"] is None)
    for claim_id, expected in ((first_empty, '"notes":""'), (first_null, '"notes":null')):
        response = small_client.get(f"/odata/data/Claims({claim_id})")
        assert expected in response.text


def test_last_modified_has_ties_and_midnights(claims_truth):
    instants = [c["lastModified"] for c in claims_truth]
    assert len(set(instants)) < len(instants) * 0.8, "many rows share a cursor value"
    midnights = [t for t in instants if _at_midnight(t)]
    assert len(midnights) > 100
    assert any(t.microsecond for t in instants)
    assert any(not t.microsecond for t in instants)


def test_submitted_at_carries_assorted_offsets(small_client):
    body = exact(small_client.get("/odata/data/Claims?$top=1000"))
    endings = {c["submittedAt"][19:] for c in body["value"]}
    assert {"Z", "+00:00", "-12:00", "+14:00", "+05:30", "+05:45", "-09:30"} <= endings


def test_claims_page_to_the_truth_in_id_order_bizagi(small_client, claims_truth):
    served = []
    skip = 0
    while True:  # Bizagi's flavour: absolute next links that advance $skip
        body = exact(small_client.get("/odata/data/Claims", params={"$top": 1000, "$skip": skip}))
        assert body["@odata.totalCount"] == CLAIMS
        served += body["value"]
        link = body.get("@odata.nextLink")
        if not link:
            break
        assert link.startswith("http://")
        assert f"$skip={skip + 1000}" in link
        skip += 1000
    assert len(served) == CLAIMS
    for row, truth in zip(served, claims_truth, strict=True):
        same_claim(row, truth)


def _midnight(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def test_filter_on_last_modified(any_flavor, claims_truth):
    _, client = any_flavor
    lo, hi = dt.datetime(2025, 6, 1, tzinfo=dt.UTC), dt.datetime(2025, 6, 15, tzinfo=dt.UTC)
    text = f"lastModified ge {_midnight(lo.date())} and lastModified lt {_midnight(hi.date())}"
    expected = [c["id"] for c in claims_truth if lo <= c["lastModified"] < hi]
    assert 50 < len(expected) < 500
    body = exact(client.get(f"/odata/data/Claims?{qs({'$filter': text, '$count': 'true'})}"))
    assert [c["id"] for c in body["value"]] == expected
    assert body["@odata.count"] in (len(expected), len(body["value"]))  # standard, Bizagi


def _at_midnight(instant: dt.datetime) -> bool:
    return instant.timetz() == dt.time(0, tzinfo=dt.UTC)


def test_filter_boundaries_are_exact_at_midnight_and_on_ties(std_client, claims_truth):
    midnight = next(c["lastModified"] for c in claims_truth if _at_midnight(c["lastModified"]))
    day = midnight.date()
    text = (
        f"lastModified ge {_midnight(day)} and lastModified lt {_midnight(day + dt.timedelta(1))}"
    )
    ids = [
        c["id"] for c in rows_of(follow(std_client, f"/odata/data/Claims?{qs({'$filter': text})}"))
    ]
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    assert ids == [c["id"] for c in claims_truth
                   if start <= c["lastModified"] < start + dt.timedelta(1)]  # fmt: skip
    counts: dict[dt.datetime, int] = {}
    for c in claims_truth:
        counts[c["lastModified"]] = counts.get(c["lastModified"], 0) + 1
    tied, n = max(counts.items(), key=lambda kv: kv[1])
    assert n >= 10
    literal = tied.isoformat().replace("+00:00", "Z")
    body = exact(
        std_client.get(f"/odata/data/Claims?{qs({'$filter': f'lastModified eq {literal}'})}")
    )
    assert len(body["value"]) == n


def test_single_claim_and_bad_keys(any_flavor, claims_truth):
    server, client = any_flavor
    body = exact(client.get("/odata/data/Claims(2)"))
    assert body["@odata.context"] == f"{server.base_url}/odata/data/$metadata#Claims(2)"
    same_claim(body, claims_truth[1])
    assert client.get(f"/odata/data/Claims({CLAIMS + 1})").status_code == 404
    assert client.get("/odata/data/Claims(abc)").status_code == 400


# -- the standard flavour: paging ----------------------------------------------------------------


def test_standard_paging_follows_relative_skiptoken_links_to_the_truth(std_client, claims_truth):
    pages = follow(std_client, "/odata/data/Claims")
    assert [len(p["value"]) for p in pages] == [500] * 10 + [0], "server-driven, empty last page"
    assert all("@odata.count" not in p and "@odata.totalCount" not in p for p in pages)
    assert "@odata.nextLink" in pages[-2]
    assert "@odata.nextLink" not in pages[-1]
    rows = rows_of(pages)
    for row, truth in zip(rows, claims_truth, strict=True):
        same_claim(row, truth)
    assert pages[0]["@odata.nextLink"].startswith("Claims?$skiptoken=")


def test_standard_top_is_a_limit_on_the_total_split_by_the_page_cap(std_client):
    pages = follow(std_client, "/odata/data/Claims?$top=1200")
    assert [len(p["value"]) for p in pages] == [500, 500, 200]
    assert [c["id"] for c in rows_of(pages)] == list(range(1, 1201))
    exactly_two = follow(std_client, "/odata/data/Claims?$top=1000")
    assert [len(p["value"]) for p in exactly_two] == [500, 500], "the limit is known: no empty page"
    small = follow(std_client, "/odata/data/Claims?$top=7&$skip=100")
    assert [c["id"] for c in rows_of(small)] == list(range(101, 108))
    assert len(small) == 1
    window = follow(std_client, "/odata/data/Claims?$skip=4200&$top=700")
    assert [c["id"] for c in rows_of(window)] == list(range(4201, 4901))
    assert follow(std_client, "/odata/data/Claims?$top=0")[0]["value"] == []


def test_standard_ends_a_whole_number_of_pages_with_an_empty_one(std_client):
    pages = follow(std_client, "/odata/data/Claims?$skip=4000")
    assert [len(p["value"]) for p in pages] == [500, 500, 0]
    assert pages[-1]["value"] == []
    assert "@odata.nextLink" not in pages[-1]
    short = follow(std_client, "/odata/data/Claims?$skip=4100")
    assert [len(p["value"]) for p in short] == [500, 400], "a short page is the last one"


def test_standard_honours_prefer_maxpagesize(std_client):
    headers = {"Prefer": "odata.maxpagesize=70"}
    response = std_client.get("/odata/data/Claims?$skip=4800", headers=headers)
    assert response.headers["Preference-Applied"] == "odata.maxpagesize=70"
    pages = follow(std_client, "/odata/data/Claims?$skip=4800", headers)
    assert [len(p["value"]) for p in pages] == [70, 70, 60]
    capped = std_client.get("/odata/data/Claims", headers={"Prefer": "odata.maxpagesize=9999"})
    assert len(capped.json()["value"]) == 500
    assert capped.headers["Preference-Applied"] == "odata.maxpagesize=500"


def test_standard_count_is_the_total_and_only_when_asked(std_client, claims_truth):
    plain = exact(std_client.get("/odata/data/Claims?$top=5"))
    assert "@odata.count" not in plain
    assert "@odata.totalCount" not in plain
    pages = follow(std_client, "/odata/data/Claims?$count=true&$top=1100")
    assert [p["@odata.count"] for p in pages] == [CLAIMS] * 3
    assert all("@odata.totalCount" not in p for p in pages)
    approved = sum(1 for c in claims_truth if c["approved"] is True)
    body = exact(
        std_client.get(
            f"/odata/data/Claims?{qs({'$filter': 'approved eq true'})}&$count=true&$top=1"
        )
    )
    assert body["@odata.count"] == approved
    assert list(body)[:2] == ["@odata.context", "@odata.count"]


def test_standard_filtered_paging_keeps_the_filter(std_client, claims_truth):
    text = "lastModified ge 2025-01-01T00:00:00Z and lastModified lt 2026-01-01T00:00:00Z"
    pages = follow(std_client, f"/odata/data/Claims?{qs({'$filter': text})}&$count=true")
    expected = [c["id"] for c in claims_truth if c["lastModified"].year == 2025]
    assert [c["id"] for c in rows_of(pages)] == expected
    assert all(p["@odata.count"] == len(expected) for p in pages)
    links = [p["@odata.nextLink"] for p in pages[:-1]]
    assert all(link.startswith("Claims?$filter=lastModified%20ge%20") for link in links)


def test_standard_cases_of_a_process_page_to_the_truth(std_client, small_truth, processes):
    process = processes[0]
    url = f"/odata/data/processes({process['id']})/cases?$count=true"
    pages = follow(std_client, url, {"Prefer": "odata.maxpagesize=100"})
    assert len(pages) > 3
    truth = small_truth["cases"]
    mine = truth[truth.process_id == process["id"]]
    ids = [c["id"] for c in rows_of(pages)]
    assert ids == sorted(mine.id.tolist(), reverse=True), "newest first, as in Bizagi's flavour"
    assert pages[0]["@odata.count"] == len(mine)
    assert pages[0]["@bizagi.entity"] == mine.processEntityKey.iloc[0]
    link = pages[0]["@odata.nextLink"]
    assert link.startswith(f"processes({process['id']})/cases?$count=true&$skiptoken=")
    served = {c["id"]: c for c in rows_of(pages)}
    for row in mine.itertuples():
        assert served[row.id]["creationDate"] == row.creationDate


def test_standard_serves_bizagis_resources_in_its_envelope(std_client, std_server, small_truth):
    base = std_server.base_url
    document = std_client.get("/odata/data").json()
    kinds = {v["name"]: v["kind"] for v in document["value"]}
    assert kinds["Claims"] == kinds["processes"] == "EntitySet"
    assert kinds["userProfile"] == "Singleton"
    assert kinds["searchByCaseNumber"] == "FunctionImport"
    inbox = rows_of(follow(std_client, "/odata/data/cases", {"Prefer": "odata.maxpagesize=40"}))
    assert sorted(c["idCase"] for c in inbox) == sorted(small_truth["inbox"].idCase.tolist())
    items = rows_of(follow(std_client, "/odata/data/casesWithWorkitems"))
    assert sum(len(c["workitems"]) for c in items) == len(small_truth["workitems"])
    entities = std_client.get("/odata/data/entities").json()["value"]
    country = next(e for e in entities if e["name"] == "Country")
    values = follow(std_client, f"/odata/data/entities({country['id']})/values",
                    {"Prefer": "odata.maxpagesize=30"})  # fmt: skip
    assert [len(p["value"]) for p in values] == [30, 30, 4]
    case = small_truth["cases"].iloc[7]
    found = std_client.get(f"/odata/data/searchByCaseNumber(caseNumber='{case.caseNumber}')")
    assert [c["id"] for c in found.json()["value"]] == [case.id]
    assert std_client.get("/odata/data/userProfile").json()["@odata.id"] == (
        f"{base}/odata/data/userProfile"
    )
    metadata = follow(std_client, "/odata/metadata/processes")
    assert len(metadata[0]["value"]) == len(small_truth["processes"])
    assert all("@odata.totalCount" not in p for p in metadata)


def test_standard_skiptoken_is_opaque_and_tamper_proof(std_client, std_server):
    first = exact(std_client.get(f"/odata/data/Claims?{qs({'$filter': 'itemCount ge 0'})}"))
    link = first["@odata.nextLink"]
    token = link.rpartition("$skiptoken=")[2]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token), "base64url, nothing to percent-encode"
    assert "500" not in token, "the offset is not in plain sight"
    url = urljoin(first["@odata.context"], link)
    assert std_client.get(url).status_code == 200
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    forged = (
        base64.urlsafe_b64encode(
            base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).replace(b"500.", b"900.", 1)
        )
        .decode()
        .rstrip("=")
    )
    for bad in (flipped, forged, "not-a-token", "", "AAAA"):
        response = std_client.get(url.replace(token, bad))
        nested_error(response, 400, "$skiptoken")
    other_filter = url.replace("itemCount%20ge%200", "itemCount%20ge%201")
    nested_error(std_client.get(other_filter), 400, "$skiptoken")
    other_path = url.replace("/Claims?", "/stakeholders?")
    nested_error(std_client.get(other_path), 400, "$skiptoken")
    nested_error(std_client.get(url + "&$top=5"), 400, "$top")
    nested_error(std_client.get(url + "&$skip=5"), 400, "$skip")


def test_standard_next_links_are_the_same_in_every_run(make_server):
    links = []
    for _ in range(2):
        with make_server(flavor="standard", page_cap=500) as server, client_for(server) as client:
            links.append(client.get("/odata/data/Claims?$count=true").json()["@odata.nextLink"])
    assert links[0] == links[1]


# -- the standard flavour: the query is decoded once ---------------------------------------------


def test_plus_is_refused_in_standard_and_a_space_in_bizagi(std_client, small_client):
    nested_error(std_client.get("/odata/data/Claims?$filter=id+ge+4990"), 400, "$filter")
    nested_error(std_client.get("/odata/data/Claims?$top=5&name=a+b"), 400, "name")
    body = exact(small_client.get("/odata/data/Claims?$filter=id+ge+4990"))
    assert [c["id"] for c in body["value"]] == list(range(4990, 5001))


def test_standard_decodes_filter_once(std_client, small_client, claims_truth):
    # 05:30 at +05:30 is midnight UTC: %2B decoded once is a plus sign.
    text = "lastModified%20lt%202025-01-20T05:30:00%2B05:30"
    cut = dt.datetime(2025, 1, 20, tzinfo=dt.UTC)
    expected = [c["id"] for c in claims_truth if c["lastModified"] < cut]
    assert 20 < len(expected) < 500
    body = exact(std_client.get(f"/odata/data/Claims?$filter={text}"))
    assert [c["id"] for c in body["value"]] == expected
    # Bizagi decodes twice: %2B becomes a space and the literal breaks; %252B is its plus.
    flat_400(small_client.get(f"/odata/data/Claims?$filter={text}"))
    twice = exact(small_client.get(f"/odata/data/Claims?$filter={text.replace('%2B', '%252B')}"))
    assert [c["id"] for c in twice["value"]] == expected
    # ... and a standard server takes %252B literally: a '%2B' in the literal is no date.
    nested_error(std_client.get(f"/odata/data/Claims?$filter={text.replace('%2B', '%252B')}"), 400)


def test_skiptoken_is_not_bizagis(small_client):
    flat_400(small_client.get("/odata/data/Claims?$skiptoken=abc"), "$skiptoken")


# -- the standard flavour: errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "target"),
    [
        ("GET", "/odata/data/Claims?$top=-1", 400, "$top"),
        ("GET", "/odata/data/Claims?$count=maybe", 400, "$count"),
        ("GET", "/odata/data/Claims?$select=id", 400, "$select"),
        ("GET", "/odata/data/Claims?$filter=nothing%20eq%201", 400, "$filter"),
        ("GET", "/odata/data/Claims?$top=1&$top=2", 400, "$top"),
        ("GET", "/odata/data/processes(not-a-guid)", 400, "processes"),
        ("GET", "/odata/data/Claims(999999)", 404, None),
        ("GET", "/odata/data/nothing", 404, None),
        ("GET", "/favicon.ico", 404, None),
        ("POST", "/odata/data/Claims", 405, None),
    ],
)
def test_standard_errors_are_nested(std_client, method, path, status, target):
    error = nested_error(std_client.request(method, path), status, target)
    assert error["code"] == {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed"}[status]
    if target is None:
        assert error["details"] == []
        assert "target" not in error


def test_standard_faults_are_nested_too(make_server):
    with make_server(flavor="standard", fault_rate=1.0) as server, client_for(server) as client:
        response = client.get("/odata/data/Claims")
        assert response.status_code in (429, 503)
        assert "Retry-After" in response.headers
        assert nested_error(response, response.status_code)["code"] in (
            "TooManyRequests",
            "ServiceUnavailable",
        )


# -- the standard flavour: tokens ----------------------------------------------------------------


def _b64json(segment: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


def test_standard_tokens_are_jwt_shaped_bearer_tokens(std_server):
    response = httpx.post(
        std_server.token_url, auth=(std_server.client_id, std_server.client_secret), data=FORM
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == STANDARD.token_ttl
    assert body["scope"] == "api"
    header, payload, signature = body["access_token"].split(".")
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", s) for s in (header, payload, signature))
    assert _b64json(header) == {"alg": "HS256", "typ": "JWT"}
    claims = _b64json(payload)
    assert {"iss", "sub", "aud", "iat", "exp", "scope"} <= set(claims)
    assert claims["sub"] == std_server.client_id
    assert claims["exp"] - claims["iat"] == STANDARD.token_ttl
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["scope"] == "api"
    assert claims["iss"].startswith(std_server.base_url)
    assert len(base64.urlsafe_b64decode(signature + "=")) == 32, "an HMAC-SHA256"
    assert token_for(std_server) != body["access_token"]
    ok = httpx.get(
        std_server.base_url + "/odata/data/Claims?$top=1",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert ok.status_code == 200


def test_standard_token_errors_are_plain_oauth2(std_server):
    wrong = httpx.post(std_server.token_url, auth=(std_server.client_id, "nope"), data=FORM)
    assert wrong.status_code == 401
    assert set(wrong.json()) == {"error", "error_description"}
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    grant = httpx.post(
        std_server.token_url,
        auth=(std_server.client_id, std_server.client_secret),
        data={"grant_type": "password", "scope": "api"},
    )
    assert grant.status_code == 400
    assert grant.json() == {
        "error": "unsupported_grant_type",
        "error_description": grant.json()["error_description"],
    }


def test_standard_refuses_tampered_unknown_expired_and_missing_tokens(make_server):
    with make_server(flavor="standard", token_ttl=5) as server:
        token = token_for(server)
        header, payload, signature = token.split(".")
        claims = _b64json(payload)
        longer = (
            base64.urlsafe_b64encode(json.dumps({**claims, "exp": claims["exp"] + 3600}).encode())
            .decode()
            .rstrip("=")
        )
        url = server.base_url + "/odata/data/Claims?$top=1"
        for bad in (f"{header}.{longer}.{signature}", "abc", "a.b.c", token + "x"):
            refused = httpx.get(url, headers={"Authorization": f"Bearer {bad}"})
            nested_error(refused, 401)
            challenge = refused.headers["www-authenticate"]
            assert challenge.startswith("Bearer ")
            assert 'error="invalid_token"' in challenge
        assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        tokens = server.emulated.tokens
        tokens.clock = lambda: time.time() + 6  # six seconds later: past its five
        expired = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        nested_error(expired, 401)
        assert 'error="invalid_token"' in expired.headers["www-authenticate"]
        assert "expired" in expired.headers["www-authenticate"]
        missing = httpx.get(url)
        nested_error(missing, 401)
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "error=" not in missing.headers["www-authenticate"]


def test_standard_token_without_lifetime_has_no_exp(make_server):
    with make_server(flavor="standard", token_ttl=0) as server:
        body = httpx.post(
            server.token_url, auth=(server.client_id, server.client_secret), data=FORM
        ).json()
        assert set(body) == {"access_token", "token_type", "scope"}
        assert "exp" not in _b64json(body["access_token"].split(".")[1])


def test_bizagi_flavour_keeps_its_own_401(small_server):
    unknown = {"Authorization": "Bearer " + "0" * 64}
    response = httpx.get(small_server.base_url + "/odata/data/Claims", headers=unknown)
    assert response.status_code == 401
    assert response.json()["code"] == "401"
    assert "www-authenticate" not in response.headers


# -- ground truth --------------------------------------------------------------------------------


def test_claims_truth_is_typed_exactly(tmp_path):
    path = tmp_path / "claims.parquet"
    assert write_claims(Dataset(SMALL).claims, path) == CLAIMS
    schema = pq.read_schema(path)
    assert schema.names == NAMES
    assert schema.field("amount").type == pa.decimal128(18, 4)
    assert schema.field("reserveRatio").type == pa.decimal128(5, 5)
    for name in ("lastModified", "submittedAt"):
        assert schema.field(name).type == pa.timestamp("us", tz="UTC")
    assert schema.field("incidentDate").type == pa.date32()
    assert schema.field("priorityCode").type == pa.int16()
    assert schema.field("itemCount").type == pa.int32()
    assert schema.field("externalRef").type == pa.int64()
    assert schema.field("score").type == pa.float64()
    assert not schema.field("amount").nullable
    assert schema.field("notes").nullable
    table = pq.read_table(path)
    notes = table.column("notes")
    assert notes.null_count > 0
    assert np.sum(np.array(notes.to_pylist(), dtype=object) == "") > 0
    assert table.column("id").to_pylist() == list(range(1, CLAIMS + 1))


@pytest.mark.timing
def test_claims_size_is_configurable_and_cheap(make_server):
    started = time.perf_counter()
    with make_server(claims=250_000, flavor="standard") as server, client_for(server) as client:
        body = client.get("/odata/data/Claims?$count=true&$skip=249999").json()
    assert time.perf_counter() - started < 5
    assert body["@odata.count"] == 250_000
    assert [c["id"] for c in body["value"]] == [250_000]
    with make_server(claims=0) as server, client_for(server) as client:
        assert client.get("/odata/data/Claims").json()["value"] == []
