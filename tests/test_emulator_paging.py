"""Paging of OData collections: $top/$skip, @odata.nextLink, counts, caps and option errors.

Reference §3 and §6.3-6.4: collections carry an absolute @odata.context and @odata.totalCount
(the filtered total), @odata.count only with $count=true ("records fetched", i.e. this page),
and an absolute @odata.nextLink on every page but the last that repeats the client's URL with
only $skip advanced. Expected rows come from the ground truth, never from the server itself.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd
import pytest
from conftest import client_for, flat_400, page_all

CASES = "/odata/data/processes({})/cases"


def bizagi_filter(text: str) -> str:
    """A $filter value encoded as the reference asks: reserved characters once, '+' twice."""
    return quote(text, safe="").replace("%2B", "%252B")


def walk(client: httpx.Client, url: str) -> list[dict[str, Any]]:
    """Every page body of one query, following @odata.nextLink; fails on a loop."""
    pages: list[dict[str, Any]] = []
    seen: set[str] = set()
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        link = body.get("@odata.nextLink")
        if link is None:
            return pages
        assert link not in seen, f"next link repeated: {link}"
        seen.add(link)
        url = link


def query_parts(url: str) -> tuple[str, list[str]]:
    """(everything before '?', the raw name=value parts in order)."""
    head, _, query = url.partition("?")
    return head, [part for part in query.split("&") if part]


def skip_of(parts: list[str]) -> int:
    skips = [p for p in parts if p.startswith("$skip=")]
    assert len(skips) == 1, parts
    return int(skips[0].removeprefix("$skip="))


def without_skip(parts: list[str]) -> list[str]:
    return [p for p in parts if not p.startswith("$skip=")]


def case_ids_newest_first(truth: dict[str, pd.DataFrame], process_id: str) -> list[int]:
    cases = truth["cases"]
    ids = cases.loc[cases["process_id"] == process_id, "id"]
    return sorted(ids.astype(int).tolist(), reverse=True)


@pytest.fixture(scope="module")
def smallest(processes: list[dict], small_truth: dict[str, pd.DataFrame]) -> dict:
    sizes = small_truth["cases"].groupby("process_id").size()
    return next(p for p in processes if p["id"] == sizes.idxmin())


@pytest.fixture(scope="module")
def largest(processes: list[dict], small_truth: dict[str, pd.DataFrame]) -> dict:
    sizes = small_truth["cases"].groupby("process_id").size()
    return next(p for p in processes if p["id"] == sizes.idxmax())


# -- every case of a process, exactly once, newest first ----------------------------------------


@pytest.mark.parametrize("top", [97, 1000])
def test_process_cases_page_to_every_case_newest_first(small_client, small_truth, processes, top):
    assert len(processes) == small_truth["processes"].shape[0]
    for process in processes:
        expected = case_ids_newest_first(small_truth, process["id"])
        assert expected, process["name"]
        pages = walk(small_client, f"{CASES.format(process['id'])}?$top={top}")
        ids = [row["id"] for page in pages for row in page["value"]]
        assert ids == expected, process["name"]
        # Every page is full except the last, and the page count is what $top implies.
        assert all(len(page["value"]) == top for page in pages[:-1])
        assert len(pages) == max(1, -(-len(expected) // top))


def test_top_one_walks_a_whole_process(small_client, small_truth, smallest):
    expected = case_ids_newest_first(small_truth, smallest["id"])
    pages = walk(small_client, f"{CASES.format(smallest['id'])}?$top=1")
    assert [len(page["value"]) for page in pages] == [1] * len(expected)
    assert [page["value"][0]["id"] for page in pages] == expected


def test_skip_starts_inside_the_newest_first_order(small_client, small_truth, largest):
    expected = case_ids_newest_first(small_truth, largest["id"])
    response = small_client.get(CASES.format(largest["id"]), params={"$top": 10, "$skip": 25})
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["value"]] == expected[25:35]


def test_filtered_paging_returns_the_filtered_rows(small_client, small_truth, largest):
    cases = small_truth["cases"]
    mine = cases[(cases["process_id"] == largest["id"]) & ~cases["closed"]]
    expected = sorted(mine["id"].tolist(), reverse=True)
    assert len(expected) > 3
    url = f"{CASES.format(largest['id'])}?$top=3&$filter={bizagi_filter('closed eq false')}"
    pages = walk(small_client, url)
    assert [row["id"] for page in pages for row in page["value"]] == expected
    assert {page["@odata.totalCount"] for page in pages} == {len(expected)}


# -- the envelope: next link, counts, context -----------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        # Reserved characters encoded once, '+' twice (reference §3).
        "$top=7&$filter={f}&$count=true".format(
            f=bizagi_filter("creationDate ge 2026-03-01T05:30:00+05:30 and caseNumber ne 'O''B'")
        ),
        # Spaces as '+' and an option after $filter, as form-encoding clients send them.
        "$filter=closed+eq+true+and+id+gt+2000&$top=40&$expand=parameters",
        # Option names percent-encoded, as httpx's params= sends '$'.
        "%24top=25&%24filter=closed%20eq%20true&%24count=true",
    ],
    ids=["encoded-filter", "plus-for-space", "encoded-names"],
)
def test_next_link_repeats_the_clients_options(small_server, small_client, largest, query):
    path = CASES.format(largest["id"])
    pages = walk(small_client, f"{path}?{query}")
    assert len(pages) > 2, "the query should need several pages"
    _, sent = query_parts(f"?{query}")
    skip = 0
    for page in pages[:-1]:
        link = page["@odata.nextLink"]
        head, parts = query_parts(link)
        assert head == f"{small_server.base_url}{path}"
        assert without_skip(parts) == sent, link
        skip += len(page["value"])
        assert skip_of(parts) == skip
    assert "@odata.nextLink" not in pages[-1]
    totals = {page["@odata.totalCount"] for page in pages}
    assert totals == {sum(len(page["value"]) for page in pages)}


def test_next_link_keeps_the_clients_skip_in_place(small_server, small_client, largest):
    path = CASES.format(largest["id"])
    response = small_client.get(f"{path}?$top=5&$skip=10&$count=true")
    assert response.status_code == 200
    link = response.json()["@odata.nextLink"]
    assert link == f"{small_server.base_url}{path}?$top=5&$skip=15&$count=true"


def test_next_link_after_a_short_page_is_absent(small_client, small_truth, largest):
    total = len(case_ids_newest_first(small_truth, largest["id"]))
    response = small_client.get(
        CASES.format(largest["id"]), params={"$top": 10, "$skip": total - 4}
    )
    body = response.json()
    assert len(body["value"]) == 4
    assert "@odata.nextLink" not in body
    exact = small_client.get(CASES.format(largest["id"]), params={"$top": 4, "$skip": total - 4})
    assert len(exact.json()["value"]) == 4
    assert "@odata.nextLink" not in exact.json()


def test_counts(small_client, small_truth, largest):
    path = CASES.format(largest["id"])
    total = len(case_ids_newest_first(small_truth, largest["id"]))
    top = 100
    assert total % top, "the last page should be a short one"
    pages = walk(small_client, f"{path}?$top={top}&$count=true")
    for page in pages:
        assert page["@odata.totalCount"] == total
        assert page["@odata.count"] == len(page["value"])
    assert pages[-1]["@odata.count"] == total % top
    for query in (f"$top={top}", f"$top={top}&$count=false"):
        body = small_client.get(f"{path}?{query}").json()
        assert "@odata.count" not in body
        assert body["@odata.totalCount"] == total


def test_collections_always_carry_total_count_and_absolute_context(
    small_server, small_client, small_truth, largest
):
    base = small_server.base_url
    entities = small_truth["entities"]
    country = entities.loc[entities["name"] == "Country", "id"].item()
    country_values = small_truth["entity_values"].query("entity_id == @country")
    expected = {
        "/odata/data/processes": ("data", "processes", len(small_truth["processes"])),
        "/odata/metadata/processes": ("metadata", "processes", len(small_truth["processes"])),
        "/odata/data/stakeholders": ("data", "stakeholders", len(small_truth["stakeholders"])),
        "/odata/data/entities": ("data", "entities", len(entities)),
        f"/odata/data/entities({country})/values": (
            "data",
            f"entities({country})/values",
            country_values["value_id"].nunique(),
        ),
        CASES.format(largest["id"]): (
            "data",
            f"processes({largest['id']})/cases",
            len(case_ids_newest_first(small_truth, largest["id"])),
        ),
        "/odata/data/cases": ("data", "cases", len(small_truth["inbox"])),
        "/odata/data/casesWithWorkitems": ("data", "casesWithWorkitems", len(small_truth["inbox"])),
    }
    for path, (service, context, total) in expected.items():
        body = small_client.get(path, params={"$top": 2}).json()
        assert body["@odata.context"] == f"{base}/odata/{service}/$metadata#{context}", path
        assert body["@odata.totalCount"] == total, path
        assert "@odata.count" not in body, path
        if total > 2:
            assert body["@odata.nextLink"].startswith(f"{base}{path}?"), path
        else:
            assert "@odata.nextLink" not in body, path


# -- the page cap --------------------------------------------------------------------------------


def test_page_cap_bounds_a_large_top(make_server, small_truth, largest):
    expected = case_ids_newest_first(small_truth, largest["id"])
    assert len(expected) > 200
    with make_server(page_cap=50) as server, client_for(server) as client:
        path = CASES.format(largest["id"])
        first = client.get(f"{path}?$top=200").json()
        assert len(first["value"]) == 50
        assert first["@odata.nextLink"] == f"{server.base_url}{path}?$skip=50&$top=200"
        pages = walk(client, f"{path}?$top=200")
    assert all(len(page["value"]) == 50 for page in pages[:-1])
    assert [row["id"] for page in pages for row in page["value"]] == expected


def test_page_cap_is_the_default_page_size(make_server, small_truth, largest):
    expected = case_ids_newest_first(small_truth, largest["id"])
    with make_server(page_cap=50) as server, client_for(server) as client:
        path = CASES.format(largest["id"])
        pages = walk(client, path)
        under_cap = walk(client, f"{path}?$top=30")
    assert [len(page["value"]) for page in pages[:-1]] == [50] * (len(pages) - 1)
    assert 0 < len(pages[-1]["value"]) <= 50
    assert [row["id"] for page in pages for row in page["value"]] == expected
    assert all(len(page["value"]) == 30 for page in under_cap[:-1])
    assert [row["id"] for page in under_cap for row in page["value"]] == expected


# -- empty pages and option errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "query", ["$top=0", "$top=0&$count=true", "$skip=100000", "$skip=100000&$top=5"]
)
def test_empty_pages_have_no_next_link(small_client, small_truth, largest, query):
    total = len(case_ids_newest_first(small_truth, largest["id"]))
    response = small_client.get(f"{CASES.format(largest['id'])}?{query}")
    assert response.status_code == 200
    body = response.json()
    assert body["value"] == []
    assert "@odata.nextLink" not in body
    assert body["@odata.totalCount"] == total
    if "$count=true" in query:
        assert body["@odata.count"] == 0


def test_skip_exactly_at_the_end_is_empty(small_client, small_truth, largest):
    total = len(case_ids_newest_first(small_truth, largest["id"]))
    body = small_client.get(f"{CASES.format(largest['id'])}?$skip={total}").json()
    assert body["value"] == []
    assert "@odata.nextLink" not in body


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("$top=-1", ["$top"]),
        ("$top=abc", ["$top"]),
        ("$top=2.5", ["$top"]),
        ("$top=", ["$top"]),
        ("$top=%C2%B2", ["$top"]),  # a Unicode digit that is not a decimal number
        ("$skip=-3", ["$skip"]),
        ("$skip=ten", ["$skip"]),
        ("$count=maybe", ["$count"]),
        ("$top=1&$top=2", ["$top"]),
        ("$skip=1&$top=5&$skip=1", ["$skip"]),
        ("$filter=id%20gt%201&$filter=id%20lt%205", ["$filter"]),
        ("$top=1&%24top=1", ["$top"]),  # the same option, once encoded
        ("$select=id", ["$select"]),
        ("$orderby=id%20asc", ["$orderby"]),
        ("$search=urgent", ["$search"]),
    ],
)
def test_bad_options_answer_a_flat_400(small_client, largest, query, words):
    flat_400(small_client.get(f"{CASES.format(largest['id'])}?{query}"), *words)


def test_lenient_server_ignores_select_orderby_search(make_server, small_truth, largest):
    expected = case_ids_newest_first(small_truth, largest["id"])[:20]
    path = CASES.format(largest["id"])
    with make_server(lenient_options=True) as server, client_for(server) as client:
        plain = client.get(f"{path}?$top=20").json()["value"]
        assert [row["id"] for row in plain] == expected
        for option in ("$select=id", "$orderby=id%20asc", "$search=urgent"):
            response = client.get(f"{path}?$top=20&{option}")
            assert response.status_code == 200, option
            assert response.json()["value"] == plain, option  # ignored: same rows, same fields
        flat_400(client.get(f"{path}?$top=20&$select=id&$select=id"), "$select")


def test_expand_is_accepted(small_client, small_truth, largest):
    expected = case_ids_newest_first(small_truth, largest["id"])[:5]
    response = small_client.get(CASES.format(largest["id"]), params={"$top": 5, "$expand": "*"})
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["value"]] == expected


# -- large entities and the inbox ----------------------------------------------------------------


def test_product_values_page_to_every_value_once(small_client, small_truth):
    entities = small_client.get("/odata/data/entities").json()["value"]
    (product,) = [e for e in entities if e["name"] == "Product"]
    values = small_truth["entity_values"]
    expected = set(values.loc[values["entity_id"] == product["id"], "value_id"])
    assert len(expected) == 100_000
    rows = page_all(small_client, f"/odata/data/entities({product['id']})/values?$top=1000")
    ids = [row["id"] for row in rows]
    assert len(ids) == 100_000
    assert set(ids) == expected


@pytest.mark.parametrize("resource", ["cases", "casesWithWorkitems"])
def test_inbox_pages_to_exactly_the_open_cases(small_client, small_truth, resource):
    inbox = small_truth["inbox"]
    cases = small_truth["cases"]
    open_ids = set(cases.loc[~cases["closed"], "id"])
    assert set(inbox["idCase"]) == open_ids  # the truth agrees with itself
    pages = walk(small_client, f"/odata/data/{resource}?$top=25")
    rows = [row for page in pages for row in page["value"]]
    ids = [row["idCase"] for row in rows]
    assert len(ids) == len(set(ids)) == len(inbox)
    assert set(ids) == open_ids
    assert {page["@odata.totalCount"] for page in pages} == {len(inbox)}
    if resource == "casesWithWorkitems":
        items = small_truth["workitems"].groupby("case_id")["id"].apply(list).to_dict()
        for row in rows:
            assert [w["id"] for w in row["workitems"]] == items.get(row["idCase"], [])
