"""Paging as real OData servers do it, not only as our emulator does: totals asked the standard
way, next links whatever they carry, servers that cap or ignore $top, page by themselves, give
no total, end on an empty page. Every row arrives exactly once."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bizagi_etl.connector import BizagiClient, BizagiSettings, QueryStats, iter_rows, paging
from bizagi_etl.emulator.server import AsgiServer


@dataclass
class Server:
    """A generic OData v4 entity set ``Rows`` with the paging habits one server may have."""

    rows: int = 250
    cap: int = 100  # most rows in a page
    honours_top: bool = True  # False: every page holds `cap` rows whatever $top says
    links: str = "skiptoken"  # skiptoken (relative), root (relative to the context), skip, none
    totals: str = "standard"  # standard (@odata.count with $count=true), bizagi, none
    empty_last: bool = False  # a full last page still links to an empty one
    # standard OData: $top limits the whole answer, which the server pages below it through
    # $skiptoken links, the last of its pages without a link whatever rows remain
    top_is_limit: bool = False
    slow: float = 0.0  # seconds the answers in `slow_answers` take
    slow_answers: tuple[int, ...] = (1,)  # which answers are slow (1-based)
    seen: list[dict[str, str]] = field(default_factory=list)  # query parameters of each request

    def page(self, request: Request) -> JSONResponse:
        query = dict(request.query_params)
        self.seen.append(query)
        if self.slow and len(self.seen) in self.slow_answers:
            time.sleep(self.slow)
        token = query.get("$skiptoken")
        decoded = base64.urlsafe_b64decode(token).decode().split(".") if token else []
        start = int(decoded[0]) if token else int(query.get("$skip", 0))
        if self.top_is_limit:
            stop = int(decoded[1]) if token else start + int(query.get("$top", self.rows))
            size = min(self.cap, stop - start)
        else:
            stop = self.rows
            size = (
                min(self.cap, int(query["$top"]))
                if "$top" in query and self.honours_top
                else self.cap
            )
        end = min(self.rows, start + size)
        body: dict[str, Any] = {
            "@odata.context": f"{request.base_url}odata/$metadata#Sets(1)/Rows"
            if self.links == "root"
            else "$metadata#Rows",
            "value": [{"@odata.id": f"Rows({i})", "id": i} for i in range(start, end)],
        }
        if self.totals == "bizagi":
            body["@odata.totalCount"] = self.rows
        elif self.totals == "standard" and query.get("$count") == "true":
            body["@odata.count"] = self.rows
        more = end < min(self.rows, stop) or (self.empty_last and end == self.rows and start < end)
        if more and self.links == "skiptoken":
            state = f"{end}.{stop}" if self.top_is_limit else str(end)
            body["@odata.nextLink"] = (
                f"Rows?$skiptoken={base64.urlsafe_b64encode(state.encode()).decode()}"
            )
        elif more and self.links == "root":  # relative to the service root, via the context
            token = base64.urlsafe_b64encode(str(end).encode()).decode()
            body["@odata.nextLink"] = f"Sets(1)/Rows?$skiptoken={token}"
        elif more and self.links == "skip":
            body["@odata.nextLink"] = f"{request.base_url}odata/Rows?$top={size}&$skip={end}"
        return JSONResponse(body)


def fetch(
    server: Server, path: str = "odata/Rows", **settings: Any
) -> tuple[list[int], QueryStats]:
    app = Starlette(routes=[Route("/odata/Rows", server.page),
                            Route("/odata/Sets(1)/Rows", server.page)])  # fmt: skip
    with AsgiServer(app) as http:
        values = {"base_url": http.base_url, "client_id": "c", "client_secret": "the-token",
                  "auth_method": "bearer_token", **settings}  # fmt: skip
        with BizagiClient(BizagiSettings(**values)) as client:
            stats = QueryStats(path=path)
            ids = [row["id"] for row in iter_rows(client, path, stats=stats)]
    return ids, stats


@pytest.mark.parametrize("links", ["skiptoken", "skip", "none"])
@pytest.mark.parametrize("totals", ["standard", "bizagi", "none"])
@pytest.mark.parametrize("honours_top", [True, False])
def test_every_row_exactly_once_however_the_server_pages(links, totals, honours_top):
    server = Server(links=links, totals=totals, honours_top=honours_top)
    ids, stats = fetch(server)
    assert ids == list(range(250))
    assert stats.duplicates == 0
    assert stats.server_total == (None if totals == "none" else 250)


def test_a_link_relative_to_the_service_root_resolves_against_the_context():
    """OData JSON: relative URLs are relative to the context URL when there is one; against
    the request URL, "Sets(1)/Rows?..." would become odata/Sets(1)/Sets(1)/Rows."""
    server = Server(links="root")
    ids, _ = fetch(server, path="odata/Sets(1)/Rows")
    assert ids == list(range(250))


def test_the_total_is_asked_the_standard_way_once():
    server = Server(totals="standard")
    _, stats = fetch(server)
    assert server.seen[0].get("$count") == "true"
    assert all("$count" not in q for q in server.seen[1:])
    assert stats.server_total == 250
    assert not stats.total_mismatch


def test_by_default_pages_are_large_and_a_capping_server_drives():
    server = Server(rows=2_500, cap=1_000)
    _, stats = fetch(server)
    assert server.seen[0]["$top"] == str(paging.AUTO_PAGE_SIZE) == "1000"
    assert stats.requests == 3  # not 25 pages of 100

    capped = Server(rows=250, cap=100)
    _, stats = fetch(capped)
    assert stats.requests == 3  # the server's own page size, through its next links


def test_a_server_that_pages_by_itself_gets_no_top():
    server = Server(rows=250, cap=100, links="skiptoken")
    ids, _ = fetch(server, page_size=0)
    assert ids == list(range(250))
    assert "$top" not in server.seen[0]
    assert [q.get("$skiptoken") is not None for q in server.seen] == [False, True, True]


def test_an_empty_last_page_ends_the_query():
    server = Server(rows=200, cap=100, empty_last=True)
    ids, stats = fetch(server)
    assert ids == list(range(200))
    assert stats.pages == 3  # 100, 100, then the empty one the last link pointed to


def test_with_no_total_and_no_link_a_short_page_is_not_taken_for_the_last():
    """A server that silently caps $top: 1,000 asked, 100 given, nothing says more remain."""
    server = Server(rows=250, cap=100, links="none", totals="none")
    ids, stats = fetch(server)
    assert ids == list(range(250))
    assert stats.pages == 4  # three pages of rows, one empty page to be sure


def test_an_automatic_page_size_shrinks_while_the_server_is_slow(monkeypatch):
    monkeypatch.setattr(paging, "SLOW_PAGE_SECONDS", 0.2)
    server = Server(rows=2_200, cap=1_000, links="none", totals="bizagi", slow=0.4,
                    slow_answers=(2,))  # fmt: skip
    ids, _ = fetch(server)
    assert ids == list(range(2_200))
    assert [q["$top"] for q in server.seen] == ["1000", "1000", "500"]


def test_a_slow_first_page_which_counts_the_total_keeps_the_size(monkeypatch):
    """The first page also asks for the total, which a server may take long to count: a slow
    first answer says nothing about how fast pages come, so the size stays."""
    monkeypatch.setattr(paging, "SLOW_PAGE_SECONDS", 0.2)
    server = Server(rows=2_200, cap=1_000, links="none", totals="bizagi", slow=0.4)
    ids, _ = fetch(server)
    assert ids == list(range(2_200))
    assert [q["$top"] for q in server.seen] == ["1000", "1000", "1000"]


def test_a_set_page_size_is_kept_even_when_slow(monkeypatch):
    monkeypatch.setattr(paging, "SLOW_PAGE_SECONDS", 0.2)
    server = Server(rows=600, cap=1_000, links="none", totals="bizagi", slow=0.4,
                    slow_answers=(1, 2))  # fmt: skip
    fetch(server, page_size=300)
    assert [q["$top"] for q in server.seen] == ["300", "300"]


@pytest.mark.parametrize("totals", ["standard", "none"])
def test_a_top_that_limits_the_answer_below_which_the_server_pages(totals):
    """Standard OData: $top=1000 is the whole answer, served in pages of 300 linked by
    $skiptoken, the last without a link although rows remain. The chain ending at exactly the
    $top asked means more may follow: the next $skip is asked, until the server runs out."""
    server = Server(rows=2_500, cap=300, links="skiptoken", totals=totals, top_is_limit=True)
    ids, _ = fetch(server, page_size=1_000)
    assert ids == list(range(2_500))
    assert [q.get("$skip") for q in server.seen if "$skip" in q] == ["0", "1000", "2000"]
