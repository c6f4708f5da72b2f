"""The bad-day switches, each against a real server on loopback."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import time
import xml.etree.ElementTree as ET

import httpx
import pytest
from conftest import client_for, page_all


def _first_process(client: httpx.Client) -> str:
    return str(client.get("/odata/data/processes").json()["value"][0]["id"])


def _get_until_ok(client: httpx.Client, url: str, params: dict | None = None, tries: int = 60):
    """A deliberately naive retry loop: what a careful client must at least do."""
    for _ in range(tries):
        try:
            response = client.get(url, params=params)
            body = response.json()
        except (httpx.TransportError, json.JSONDecodeError):
            continue
        if response.status_code == 200:
            return body
        assert response.status_code in (429, 503), response.text
    raise AssertionError(f"{url} never answered 200 in {tries} tries")


def _page_with_retries(client: httpx.Client, url: str, params: dict) -> list[dict]:
    rows: list[dict] = []
    body = _get_until_ok(client, url, params)
    while True:
        rows.extend(body["value"])
        if "@odata.nextLink" not in body:
            return rows
        body = _get_until_ok(client, body["@odata.nextLink"])


def test_latency_delays_every_odata_answer(make_server):
    with make_server(latency_ms=150) as server, client_for(server) as client:
        for _ in range(3):
            began = time.perf_counter()
            assert client.get("/odata/data/userProfile").status_code == 200
            # A lower bound only: a busy machine can make it slower, never faster.
            assert time.perf_counter() - began >= 0.150 * 0.75


def test_fault_rate_one_refuses_everything_with_retry_after(make_server):
    with make_server(fault_rate=1.0, retry_after=3) as server, client_for(server) as client:
        statuses = []
        for skip in range(24):
            response = client.get("/odata/data/stakeholders", params={"$skip": skip})
            statuses.append(response.status_code)
            body = response.json()
            assert body["code"] == str(response.status_code)
            retry_after = response.headers["Retry-After"]
            if response.status_code == 429:
                assert retry_after == "3"
            else:
                assert response.status_code == 503
                when = email.utils.parsedate_to_datetime(retry_after)
                assert when >= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    assert {429, 503} == set(statuses), "both kinds of refusal occur"


def test_faults_spare_the_token_endpoint(make_server):
    with make_server(fault_rate=1.0, drop_rate=1.0) as server:
        response = httpx.post(
            server.token_url,
            auth=(server.client_id, server.client_secret),
            data={"grant_type": "client_credentials", "scope": "api"},
        )
    assert response.status_code == 200


def test_rows_survive_faults_drops_and_truncation(make_server, small_truth):
    rates = {"fault_rate": 0.2, "drop_rate": 0.1, "truncate_rate": 0.1}
    with make_server(**rates) as server, client_for(server) as client:
        pid = _first_process(client)
        rows = _page_with_retries(client, f"/odata/data/processes({pid})/cases", {"$top": 10})
        injected = server.injected
    truth = small_truth["cases"]
    expected = sorted(truth[truth.process_id == pid].id.tolist())
    assert sorted(r["id"] for r in rows) == expected
    assert injected["429"] + injected["503"] > 0
    assert injected["drop"] > 0
    assert injected["truncate"] > 0


def test_drop_closes_the_connection_mid_body(make_server):
    with (
        make_server(drop_rate=1.0) as server,
        client_for(server) as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.get("/odata/data/processes")


def test_truncate_sends_a_complete_answer_with_broken_json(make_server):
    with make_server(truncate_rate=1.0) as server, client_for(server) as client:
        response = client.get("/odata/data/processes")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.content.startswith(b'{"@odata.context"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_mutations_shift_offsets_but_lose_nothing(make_server, small_truth):
    with make_server(mutate_rate=0.5) as server, client_for(server) as client:
        first = client.get("/odata/data/cases", params={"$top": 100, "$skip": 0}).json()
        rows = list(first["value"])
        skip = 100
        while skip < first["@odata.totalCount"]:
            page = client.get("/odata/data/cases", params={"$top": 100, "$skip": skip}).json()
            rows.extend(page["value"])
            skip += 100
        final = client.get("/odata/data/cases", params={"$top": 1}).json()
        newest = final["value"][0]
    ids = [r["idCase"] for r in rows]
    original = set(small_truth["inbox"].idCase)
    assert final["@odata.totalCount"] > len(original), "cases were created while paging"
    assert len(ids) > len(set(ids)), "offsets shifted: a naive $skip pager sees repeats"
    assert original <= set(ids), "new cases come first, so nothing old is skipped"
    assert newest["idCase"] > max(small_truth["cases"].id)
    created = dt.datetime.fromisoformat(newest["CreationDate"])
    assert created >= dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def test_mutations_are_deterministic(make_server):
    totals = []
    for _ in range(2):
        with make_server(mutate_rate=0.3) as server, client_for(server) as client:
            totals.append(
                [client.get("/odata/data/cases", params={"$skip": s}).json()["@odata.totalCount"]
                 for s in range(10)]
            )  # fmt: skip
    assert totals[0] == totals[1]
    assert totals[0][-1] > totals[0][0]


def test_drift_date_adds_a_parameter_and_an_attribute(make_server):
    drift = dt.date(2026, 6, 1)
    with make_server(drift_date=drift) as server, client_for(server) as client:
        pid = _first_process(client)
        rows = page_all(client, f"/odata/data/processes({pid})/cases", {"$top": 1000})
        metadata = client.get("/odata/data/$metadata").text
        high = client.get(
            f"/odata/data/processes({pid})/cases", params={"$filter": "priority eq 'High'"}
        )
    after = [r for r in rows if dt.datetime.fromisoformat(r["creationDate"]).date() >= drift]
    well_before = dt.datetime(2026, 5, 31, tzinfo=dt.UTC)
    before = [r for r in rows if dt.datetime.fromisoformat(r["creationDate"]) < well_before]
    assert after
    assert before
    assert all(r["priority"] in ("Low", "Normal", "High", "Critical") for r in after)
    assert all("RiskScore" in [p["xpath"] for p in r["parameters"]] for r in after)
    assert not any("priority" in r for r in before)
    assert not any("RiskScore" in [p["xpath"] for p in r["parameters"]] for r in before)
    assert 'Name="priority"' in metadata
    assert high.status_code == 200
    expected = sorted(r["id"] for r in after if r["priority"] == "High")
    assert sorted(r["id"] for r in high.json()["value"]) == expected


def test_no_drift_no_new_fields(small_client):
    metadata = small_client.get("/odata/data/$metadata").content
    names = {p.get("Name") for p in ET.fromstring(metadata).iter() if p.tag.endswith("Property")}
    assert "priority" not in names


def test_repeat_next_link_never_ends(make_server):
    with make_server(repeat_next_link=True) as server, client_for(server) as client:
        first = client.get("/odata/data/stakeholders", params={"$top": 2}).json()
        second = client.get(first["@odata.nextLink"]).json()
        third = client.get(second["@odata.nextLink"]).json()
    assert first["@odata.nextLink"] == second["@odata.nextLink"] == third["@odata.nextLink"]
    assert third["value"] == second["value"]


def test_fault_decisions_repeat_under_the_seed(make_server):
    def statuses(seed: int) -> list[int]:
        with (
            make_server(seed=seed, fault_rate=0.5, retry_after=0) as server,
            client_for(server) as client,
        ):
            return [
                client.get("/odata/data/stakeholders", params={"$skip": i % 5}).status_code
                for i in range(40)
            ]

    first, again, other = statuses(7), statuses(7), statuses(8)
    assert first == again
    assert first != other
    assert 0 < first.count(200) < 40
