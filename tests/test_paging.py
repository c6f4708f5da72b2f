"""Paging against the emulator on a bad day: every row exactly once, or a clear PagingError."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter

import pytest
from conftest import settings_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bizagi_etl.connector import odata
from bizagi_etl.connector.client import BizagiClient
from bizagi_etl.connector.errors import PagingError
from bizagi_etl.connector.paging import QueryStats, iter_pages, iter_rows
from bizagi_etl.connector.settings import BizagiSettings
from bizagi_etl.emulator.server import AsgiServer

HISTORY = odata.window(
    "creationDate", dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
)


def _settings(server, **changes) -> BizagiSettings:
    return settings_for(server, **({"page_size": 500} | changes))


def _all_cases(client: BizagiClient) -> tuple[list[int], list[QueryStats]]:
    """Every case of every process, with one QueryStats per process."""
    ids, stats = [], []
    for process in iter_rows(client, "odata/data/processes"):
        query = QueryStats(path=f"processes({process['id']})/cases")
        path = f"odata/data/processes({process['id']})/cases"
        rows = iter_rows(client, path, filter=HISTORY, stats=query)
        ids += [row["id"] for row in rows]
        stats.append(query)
    return ids, stats


def _expected_ids(server) -> list[int]:
    ds = server.emulated.ds
    return sorted(ds.case_ids(ds.all_positions()).tolist())


def test_tens_of_thousands_of_rows_with_two_second_tokens(make_server):
    with make_server(cases=30_000, token_ttl=2, latency_ms=60) as server:
        with BizagiClient(_settings(server, page_size=400)) as client:
            began = dt.datetime.now()
            ids, stats = _all_cases(client)
            seconds = (dt.datetime.now() - began).total_seconds()
            refreshes = client.auth.refreshes
        issued = server.emulated.tokens.issued
    assert len(ids) == 30_000
    assert sorted(ids) == _expected_ids(server)
    assert seconds > 4, "the run outlives two tokens"
    # Refreshed ahead of expiry: roughly one token per lifetime, never one per request.
    assert refreshes == issued >= seconds / 2 - 1
    assert refreshes < sum(s.requests for s in stats) / 3
    assert all(not s.total_mismatch and s.duplicates == 0 for s in stats)


@pytest.mark.parametrize(
    ("switch", "reasons"),
    [
        ({"fault_rate": 0.2}, {"429", "503"}),
        ({"drop_rate": 0.2}, {"dropped"}),
        ({"truncate_rate": 0.2}, {"garbled"}),
    ],
)
def test_every_row_exactly_once_through_faults(make_server, switch, reasons):
    with make_server(cases=6_000, retry_after=0, **switch) as server:
        with BizagiClient(_settings(server, page_size=300)) as client:
            ids, stats = _all_cases(client)
    assert len(ids) == len(set(ids)) == 6_000
    assert sorted(ids) == _expected_ids(server)
    retried = Counter()
    for s in stats:
        retried.update(s.retries)
    assert reasons <= set(retried), retried
    assert sum(s.requests for s in stats) > sum(s.pages for s in stats)


def test_page_cap_below_page_size_loses_nothing(make_server):
    with make_server(page_cap=70) as server, BizagiClient(_settings(server)) as client:
        ids, stats = _all_cases(client)
    assert sorted(ids) == _expected_ids(server)
    biggest = max(stats, key=lambda s: s.rows)
    assert biggest.pages >= biggest.rows / 70


def test_repeated_next_link_is_a_paging_error_within_the_ceiling(make_server):
    with (
        make_server(repeat_next_link=True) as server,
        BizagiClient(_settings(server, page_size=2, max_pages=50)) as client,
    ):
        stats = QueryStats(path="stakeholders")
        with pytest.raises(PagingError, match="already followed"):
            list(iter_pages(client, "odata/data/stakeholders", stats=stats))
    assert stats.pages <= 3


def test_page_ceiling_bounds_a_query(small_server):
    with BizagiClient(_settings(small_server, page_size=10, max_pages=4)) as client:
        with pytest.raises(PagingError, match="more than 4 pages"):
            list(iter_rows(client, "odata/data/cases"))


def test_next_link_to_another_origin_is_refused_and_gets_no_token(make_server):
    seen: list[dict] = []

    async def record(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        return JSONResponse({"value": []})

    trap = Starlette(routes=[Route("/{path:path}", record)])
    with AsgiServer(trap) as elsewhere, make_server(next_link_origin=elsewhere.base_url) as server:
        with BizagiClient(_settings(server, page_size=2)) as client:
            with pytest.raises(PagingError, match="another origin"):
                list(iter_rows(client, "odata/data/stakeholders"))
            # Even asked directly, the client keeps its token to its own origin.
            client.http.get(f"{elsewhere.base_url}/odata/data/stakeholders")
    assert len(seen) == 1
    assert "authorization" not in seen[0]


def _fake_bizagi(pages: dict[int, dict]) -> Starlette:
    """A small server answering by $skip, for shapes the emulator does not produce."""

    async def collection(request: Request) -> JSONResponse:
        skip = int(request.query_params.get("$skip", "0"))
        return JSONResponse(pages.get(skip, {"value": []}))

    return Starlette(routes=[Route("/odata/data/things", collection)])


def _rows(start: int, n: int) -> list[dict]:
    return [{"@odata.id": f"x/things({i})", "id": i} for i in range(start, start + n)]


def test_relative_next_links_are_resolved_against_the_request():
    pages = {
        0: {"value": _rows(0, 3), "@odata.nextLink": "things?$skip=3&$top=3"},
        3: {"value": _rows(3, 3), "@odata.nextLink": "/odata/data/things?$skip=6&$top=3"},
        6: {"value": _rows(6, 1)},
    }
    with AsgiServer(_fake_bizagi(pages)) as server:
        settings = BizagiSettings(base_url=server.base_url, client_id="c", client_secret="s",
                                  auth_method="bearer_token", page_size=3)  # fmt: skip
        with BizagiClient(settings) as client:
            ids = [r["id"] for r in iter_rows(client, "odata/data/things")]
    assert ids == list(range(7))


def test_capped_pages_without_next_links_are_continued_by_the_total():
    # The server caps at 4 rows whatever $top says, and never links: trust its total.
    pages = {s: {"@odata.totalCount": 10, "value": _rows(s, min(4, 10 - s))} for s in (0, 4, 8)}
    with AsgiServer(_fake_bizagi(pages)) as server:
        settings = BizagiSettings(base_url=server.base_url, client_id="c", client_secret="s",
                                  auth_method="bearer_token", page_size=100)  # fmt: skip
        with BizagiClient(settings) as client:
            stats = QueryStats(path="things")
            ids = [r["id"] for r in iter_rows(client, "odata/data/things", stats=stats)]
    assert ids == list(range(10))
    assert stats.pages == 3
    assert not stats.total_mismatch


def test_a_server_that_ignores_skip_is_caught():
    same = {"@odata.totalCount": 10, "value": _rows(0, 4)}
    with AsgiServer(_fake_bizagi({0: same, 4: same})) as server:
        settings = BizagiSettings(base_url=server.base_url, client_id="c", client_secret="s",
                                  auth_method="bearer_token", page_size=100)  # fmt: skip
        with BizagiClient(settings) as client, pytest.raises(PagingError, match="repeats"):
            list(iter_rows(client, "odata/data/things"))


def test_shifted_offsets_drop_duplicates_and_report_the_total(make_server, caplog):
    with (
        make_server(mutate_rate=0.5) as server,
        BizagiClient(_settings(server, page_size=50)) as client,
    ):
        ds = server.emulated.ds
        original = set(ds.case_ids(ds.open_positions()).tolist())
        stats = QueryStats(path="cases")
        with caplog.at_level(logging.WARNING, logger="bizagi_etl.connector.paging"):
            ids = [r["idCase"] for r in iter_rows(client, "odata/data/cases", stats=stats)]
    assert len(ids) == len(set(ids)), "no row is yielded twice"
    assert stats.duplicates > 0, "offsets did shift"
    assert original <= set(ids), "nothing that was there before is lost"
    assert stats.total_mismatch, "new cases in front were never reached"
    assert "reported" in caplog.text


def test_stats_of_a_query(small_server):
    with BizagiClient(_settings(small_server, page_size=300)) as client:
        stats = QueryStats(path="inbox")
        rows = list(iter_rows(client, "odata/data/cases", stats=stats))
    assert stats.rows == len(rows) == stats.server_total
    assert stats.pages == -(-len(rows) // 300)
    assert stats.requests == stats.pages
    assert stats.bytes > 1000
    assert stats.token_refreshes == 1
    assert stats.seconds > 0
    assert set(stats.as_dict()) >= {"requests", "pages", "rows", "retries", "token_refreshes",
                                    "bytes", "seconds", "server_total"}  # fmt: skip


def test_a_full_run_logs_neither_secret_nor_token(make_server, caplog):
    switches = {"token_ttl": 1, "fault_rate": 0.2, "drop_rate": 0.05, "truncate_rate": 0.05,
                "retry_after": 0, "latency_ms": 20}  # fmt: skip
    with caplog.at_level(logging.DEBUG), make_server(**switches) as server:
        with BizagiClient(_settings(server, page_size=100)) as client:
            ids, _ = _all_cases(client)
            token = client.auth.token
        with BizagiClient(_settings(server, client_secret="wrong-" + server.client_secret)) as bad:
            with pytest.raises(Exception, match="refused"):
                bad.get_json(bad.url("odata/data/userProfile"))
    assert len(ids) == 3_000
    assert token is not None
    assert server.client_secret not in caplog.text
    assert token.value not in caplog.text
    assert not re.search(r"\b[0-9a-f]{64}\b", caplog.text), "no token-like string is logged"
    assert "Basic " not in caplog.text
    assert "GET" in caplog.text, "the run was logged"
