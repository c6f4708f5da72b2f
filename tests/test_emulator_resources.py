"""Each resource of reference §4, endpoint by endpoint, and $metadata consistent with them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from conftest import page_all

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


def _assert_item_ids(base: str, items: list[dict], pattern: str) -> None:
    for item in items:
        assert item["@odata.id"] == base + pattern.format(**item)


def _declared(client, service: str) -> dict[str, set[str]]:
    """Entity and complex types of $metadata: name -> property names."""
    response = client.get(f"/odata/{service}/$metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    types = {}
    for kind in ("EntityType", "ComplexType"):
        for node in root.iter(EDM + kind):
            types[node.get("Name")] = {p.get("Name") for p in node.iter(EDM + "Property")}
    return types


def _served_keys(item: dict) -> set[str]:
    return {k for k in item if not k.startswith("@")}


def test_service_document_lists_resources(small_client, small_server):
    body = small_client.get("/odata/data").json()
    assert body["@odata.context"] == small_server.base_url + "/odata/data/$metadata"
    names = {r["name"] for r in body["value"]}
    assert {"processes", "cases", "casesWithWorkitems", "stakeholders", "entities"} <= names


def test_metadata_root_lists_resources(small_client):
    names = {r["name"] for r in small_client.get("/odata/metadata").json()["value"]}
    assert names == {"processes", "stakeholders", "getProject"}


def test_stakeholders(small_client, small_server, small_truth):
    body = small_client.get("/odata/data/stakeholders").json()
    assert body["@odata.totalCount"] == len(small_truth["stakeholders"])
    items = body["value"]
    assert [i["id"] for i in items] == small_truth["stakeholders"]["id"].tolist()
    _assert_item_ids(small_server.base_url, items, "/odata/data/stakeholders({id})")
    one = small_client.get(f"/odata/data/stakeholders({items[0]['id']})").json()
    assert one["name"] == items[0]["name"]
    assert one["@odata.context"].endswith(f"$metadata#stakeholders({items[0]['id']})")


def test_metadata_stakeholders(small_client, small_server):
    items = small_client.get("/odata/metadata/stakeholders").json()["value"]
    _assert_item_ids(small_server.base_url, items, "/odata/metadata/stakeholders({id})")


def test_user_profile_is_a_bare_object(small_client, small_server):
    body = small_client.get("/odata/data/userProfile").json()
    assert "value" not in body
    assert body["@odata.id"] == small_server.base_url + "/odata/data/userProfile"
    assert {"userName", "domain", "fullName", "email", "picture", "userInits"} <= set(body)
    assert body["picture"].startswith(small_server.base_url + "/odata/image?code=")


def test_processes_data_and_metadata(small_client, small_server, small_truth):
    data = small_client.get("/odata/data/processes").json()["value"]
    meta = small_client.get("/odata/metadata/processes").json()["value"]
    assert len(data) == len(meta) == len(small_truth["processes"]) >= 10
    _assert_item_ids(small_server.base_url, data, "/odata/data/processes({id})")
    _assert_item_ids(small_server.base_url, meta, "/odata/metadata/processes({id})")
    for d, m in zip(data, meta, strict=True):
        assert set(m) - set(d) == {"entityId", "processId", "processType"}
        assert m["processType"] == "Process"
        assert d["parameters"]
        assert all({"id", "name", "xpath", "type"} == set(p) for p in d["parameters"])
        assert all({"name", "xpath", "type"} == set(t) for t in d["template"])
    types = {p["type"] for d in data for p in d["parameters"]}
    assert {"DateTime", "Int", "Money", "Boolean", "Entity", "VarChar", "Decimal", "Float"} <= types


def test_single_process(small_client, processes):
    pid = processes[3]["id"]
    for service in ("data", "metadata"):
        body = small_client.get(f"/odata/{service}/processes({pid})").json()
        assert body["id"] == pid
        assert body["@odata.context"].endswith(f"/odata/{service}/$metadata#processes({pid})")


def test_process_cases_shape(small_client, small_server, processes, small_truth):
    process = processes[0]
    body = small_client.get(
        f"/odata/data/processes({process['id']})/cases", params={"$top": 5}
    ).json()
    truth = small_truth["cases"]
    mine = truth[truth.process_id == process["id"]]
    assert body["@odata.totalCount"] == len(mine)
    assert body["@bizagi.entity"] == mine.processEntityKey.iloc[0]
    _assert_item_ids(small_server.base_url, body["value"], "/odata/data/cases({id})")
    case = body["value"][0]
    assert case["@processEntityKey"] == body["@bizagi.entity"]
    assert case["caseNumber"] == f"VAC-{case['id']}"
    assert case["processName"] == process["displayName"]
    assert case["closed"] == (case["solutionDate"] is not None)
    xpaths = [p["xpath"] for p in case["parameters"]]
    assert xpaths[:-1] == [p["xpath"].split(".", 1)[1] for p in process["parameters"]]
    assert case["parameters"][-1] == {"xpath": "Attachment", "files": []}


def test_dates_carry_various_offsets(small_truth):
    offsets = small_truth["cases"].creationDate.str[-6:]
    assert offsets.nunique() >= 6
    assert offsets.str.match(r"^[+-]\d\d:\d\d$").all()


def test_text_is_hostile(small_truth):
    values = small_truth["case_parameters"].value.dropna()
    text = " ".join(values.tolist())
    for needle in ("\\n", '\\"', ",", "é", "東", "🚀", "'"):
        assert needle in text, needle
    assert (values == '""').any(), "some empty strings"
    assert (values == "null").any(), "some nulls"


def test_single_case_and_its_workitems(small_client, small_truth):
    truth = small_truth["cases"]
    open_case = truth[~truth.closed].iloc[0]
    closed_case = truth[truth.closed].iloc[0]
    body = small_client.get(f"/odata/data/cases({open_case.id})").json()
    assert body["id"] == open_case.id
    assert body["@odata.context"].endswith(f"$metadata#cases({open_case.id})")
    assert body["creationDate"] == open_case.creationDate
    items = small_client.get(f"/odata/data/cases({open_case.id})/workitems").json()["value"]
    expected = small_truth["workitems"]
    assert [i["id"] for i in items] == expected[expected.case_id == open_case.id].id.tolist()
    assert 1 <= len(items) <= 6
    assert {i["state"] for i in items} <= {"red", "yellow", "green"}
    closed_items = small_client.get(f"/odata/data/cases({closed_case.id})/workitems").json()
    assert closed_items["value"] == []


def test_process_case_paths_check_the_process(small_client, processes, small_truth):
    truth = small_truth["cases"]
    case = truth[(truth.process_id == processes[1]["id"]) & ~truth.closed].iloc[0]
    ok = small_client.get(f"/odata/data/processes({processes[1]['id']})/cases({case.id})")
    assert ok.status_code == 200
    assert ok.json()["id"] == case.id
    items = small_client.get(
        f"/odata/data/processes({processes[1]['id']})/cases({case.id})/workitems"
    )
    assert items.status_code == 200
    assert len(items.json()["value"]) >= 1
    wrong = small_client.get(f"/odata/data/processes({processes[2]['id']})/cases({case.id})")
    assert wrong.status_code == 404


def test_inbox_lists_open_cases_only(small_client, small_server, small_truth):
    inbox = page_all(small_client, "/odata/data/cases", {"$top": 500})
    truth = small_truth["cases"]
    assert sorted(c["idCase"] for c in inbox) == sorted(truth[~truth.closed].id.tolist())
    assert set(inbox[0]) == {"@odata.id", "idCase", "caseNumber", "SolutionDate", "CreationDate",
                             "parameters"}  # fmt: skip
    _assert_item_ids(small_server.base_url, inbox, "/odata/data/cases({idCase})")


def test_cases_with_workitems(small_client, small_truth):
    inbox = page_all(small_client, "/odata/data/casesWithWorkitems", {"$top": 300})
    truth = small_truth["workitems"]
    served = {(c["idCase"], w["id"]) for c in inbox for w in c["workitems"]}
    assert served == set(zip(truth.case_id, truth.id, strict=True))
    assert all(c["workitems"] for c in inbox), "every open case has pending work"


def test_search_by_case_number(small_client, small_truth):
    case = small_truth["cases"].iloc[42]
    body = small_client.get(
        f"/odata/data/searchByCaseNumber(caseNumber='{case.caseNumber}')"
    ).json()
    assert [c["id"] for c in body["value"]] == [case.id]
    assert body["value"][0]["closed"] == case.closed
    missing = small_client.get("/odata/data/searchByCaseNumber(caseNumber='NOPE-1')").json()
    assert missing["value"] == []
    quoted = small_client.get("/odata/data/searchByCaseNumber(caseNumber='O''Brien-1')")
    assert quoted.status_code == 200
    assert quoted.json()["value"] == []
    bad = small_client.get("/odata/data/searchByCaseNumber(number=1)")
    assert bad.status_code == 400


def test_entities_and_values(small_client, small_server, small_truth):
    entities = small_client.get("/odata/data/entities").json()["value"]
    by_name = {e["name"]: e for e in entities}
    assert {"Country", "Currency", "Department", "Product"} <= set(by_name)
    country = by_name["Country"]
    assert country["type"] == "Parameter"
    assert {t["xpath"] for t in country["template"]} >= {"Code", "Name"}
    single = small_client.get(f"/odata/data/entities({country['id']})").json()
    assert single["template"] == country["template"]
    values = small_client.get(f"/odata/data/entities({country['id']})/values").json()
    truth = small_truth["entity_values"]
    mine = truth[truth.entity_id == country["id"]]
    assert values["@odata.totalCount"] == mine.value_id.nunique()
    first = values["value"][0]
    assert first["@odata.id"] == (
        f"{small_server.base_url}/odata/data/entities({country['id']})/values({first['id']})"
    )
    assert first["parameters"][-1]["xpath"] == "dsbl"
    one = small_client.get(f"/odata/data/entities({country['id']})/values({first['id']})").json()
    assert one["parameters"] == first["parameters"]
    product = by_name["Product"]
    assert (
        small_client.get(f"/odata/data/entities({product['id']})/values").json()[
            "@odata.totalCount"
        ]
        == 100_000
    )


def test_get_project_is_an_edm_string(small_client, small_server):
    body = small_client.get("/odata/metadata/getProject").json()
    assert body["@odata.context"] == small_server.base_url + "/odata/metadata/$metadata#Edm.String"
    assert isinstance(body["value"], str)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/odata/data/processes(00000000-0000-4000-8000-000000000000)", 404),
        ("/odata/data/processes(not-a-guid)", 400),
        ("/odata/data/cases(99999999)", 404),
        ("/odata/data/cases(abc)", 400),
        ("/odata/data/entities(00000000-0000-4000-8000-000000000000)/values", 404),
        ("/odata/data/nothing", 404),
        ("/odata/metadata/cases", 404),
    ],
)
def test_unknown_keys_and_paths_get_flat_errors(small_client, path, status):
    response = small_client.get(path)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == str(status)
    assert body["type"] == "ODataException"
    assert body["message"]


def test_odata_is_get_only(small_client):
    response = small_client.post("/odata/data/processes", json={})
    assert response.status_code == 405
    assert response.json()["code"] == "405"


def test_data_metadata_declares_what_is_served(small_client, processes, small_truth):
    types = _declared(small_client, "data")
    pid = processes[0]["id"]
    case_id = int(small_truth["inbox"].idCase.iloc[0])
    country = small_client.get("/odata/data/entities").json()["value"][0]["id"]
    served = {
        "process": small_client.get("/odata/data/processes").json()["value"][0],
        "case": small_client.get(f"/odata/data/processes({pid})/cases?$top=1").json()["value"][0],
        "inboxCase": small_client.get("/odata/data/cases?$top=1").json()["value"][0],
        "caseWithWorkitems": small_client.get("/odata/data/casesWithWorkitems?$top=1").json()[
            "value"
        ][0],
        "workitem": small_client.get(f"/odata/data/cases({case_id})/workitems").json()["value"][0],
        "stakeholder": small_client.get("/odata/data/stakeholders").json()["value"][0],
        "entity": small_client.get("/odata/data/entities").json()["value"][0],
        "entityValue": small_client.get(f"/odata/data/entities({country})/values?$top=1").json()[
            "value"
        ][0],
        "userProfile": small_client.get("/odata/data/userProfile").json(),
    }
    for type_name, item in served.items():
        assert _served_keys(item) == types[type_name], type_name
    param_keys = set().union(*(_served_keys(p) for p in served["case"]["parameters"]))
    assert param_keys <= types["ParameterValue"]
    assert _served_keys(served["process"]["parameters"][0]) <= types["ParameterRef"]


def test_metadata_service_metadata_declares_what_is_served(small_client):
    types = _declared(small_client, "metadata")
    process = small_client.get("/odata/metadata/processes").json()["value"][0]
    assert _served_keys(process) == types["process"]
    stakeholder = small_client.get("/odata/metadata/stakeholders").json()["value"][0]
    assert _served_keys(stakeholder) == types["stakeholder"]
