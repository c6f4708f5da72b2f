"""The pages of one OData query, defensively.

Asks for the total the standard way (``$count=true`` on the first page; the total is read from
Bizagi's ``@odata.totalCount``, else the standard ``@odata.count``), sends ``$top``/``$skip``
and follows ``@odata.nextLink`` whatever it carries (``$skip``, an opaque ``$skiptoken``, a
keyset token; absolute or relative), replacing the query, never appending to it.

The page size, unless set: ``AUTO_PAGE_SIZE`` rows, which a server that pages by itself caps
(its own size then drives, through its next links) and one that honours ``$top`` serves whole;
while pages take longer than ``SLOW_PAGE_SECONDS``, the size is halved (down to
``MIN_AUTO_PAGE_SIZE``), so a slow server is never asked for what it cannot answer in time.
``page_size=0`` sends no ``$top`` at all.

Guards against what servers do on a bad day:

- a page capped below ``$top`` with no next link: while the server's total says rows remain
  (or, with no total, until a page comes back empty), ask again from the next offset instead
  of stopping on the short page;
- a next link seen before, or a page identical to an earlier one: ``PagingError``, not a loop;
- a next link to another origin: ``PagingError`` before any request goes there;
- more pages than ``max_pages``: ``PagingError``;
- rows that come twice because the server's offsets shifted under us (new rows inserted in
  front while we page): dropped by ``@odata.id`` (against the last two pages) and counted;
- a total that does not match the distinct rows received: logged and kept in the statistics.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import orjson

from bizagi_etl.connector.client import BizagiClient, RequestStats
from bizagi_etl.connector.errors import PagingError, SchemaError
from bizagi_etl.connector.redact import redact_url
from bizagi_etl.connector.settings import origin_of

log = logging.getLogger(__name__)

# Measured on the emulator (benchmarks/page_size_bench.py, 50k cases, README "Paging"): 1,000-row
# pages need a tenth of the requests of 100-row ones and ran 1.9x (0 ms) to 7.0x (100 ms) faster.
# 5,000 gained more at 100 ms (16x) but lost at 0 ms (1.8x) and holds 5x the rows per page in
# flight; concurrent workers overlap the latency instead.
AUTO_PAGE_SIZE = 1_000
MIN_AUTO_PAGE_SIZE = 100
SLOW_PAGE_SECONDS = 5.0
ID_MEMORY_PAGES = 2  # pages whose row ids a query remembers, to drop rows that come twice


@dataclass(slots=True)
class QueryStats:
    """What one query took and got."""

    path: str
    requests: int = 0  # HTTP attempts, retries included
    pages: int = 0
    rows: int = 0  # distinct rows yielded
    duplicates: int = 0  # rows dropped because an earlier page already had them
    retries: Counter[str] = field(default_factory=Counter)  # reason -> count
    token_refreshes: int = 0
    bytes: int = 0
    seconds: float = 0.0
    server_total: int | None = None  # @odata.totalCount (or @odata.count) of the last page

    @property
    def total_mismatch(self) -> bool:
        return self.server_total is not None and self.server_total != self.rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "requests": self.requests, "pages": self.pages, "rows": self.rows,
            "duplicates": self.duplicates, "retries": dict(self.retries),
            "token_refreshes": self.token_refreshes, "bytes": self.bytes,
            "seconds": round(self.seconds, 3), "server_total": self.server_total,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Page:
    number: int  # 1-based
    rows: list[dict[str, Any]]  # distinct rows not seen on earlier pages
    server_total: int | None


def iter_pages(
    client: BizagiClient,
    path: str,
    *,
    filter: str | None = None,
    page_size: int | None = None,
    max_pages: int | None = None,
    stats: QueryStats | None = None,
    exact: bool = False,
    rows: tuple[int, int] | None = None,
) -> Generator[Page, None, None]:
    """Every page of ``path`` (optionally filtered); fills ``stats`` as it goes. ``exact``
    reads fractional numbers as ``Decimal`` (see ``BizagiClient.get_json``).

    ``rows=(skip, limit)`` reads one range of the collection: from offset ``skip``, at most
    ``limit`` rows, in pages, whatever the server's links say beyond it; no total is asked
    (``Page.server_total`` is None). Concurrent ranges read a collection whose total is known.
    """
    pager = _Pager(client, path, filter, page_size, max_pages, stats, exact, rows)
    yield from pager.run()


def iter_rows(client: BizagiClient, path: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for page in iter_pages(client, path, **kwargs):
        yield from page.rows


class _Pager:
    def __init__(
        self,
        client: BizagiClient,
        path: str,
        filter_: str | None,
        page_size: int | None,
        max_pages: int | None,
        stats: QueryStats | None,
        exact: bool = False,
        rows: tuple[int, int] | None = None,
    ) -> None:
        self.client = client
        self.exact = exact
        self.path = path
        self.filter = filter_
        chosen = page_size if page_size is not None else client.settings.page_size
        self.auto = chosen is None  # adapt the size to how fast the server answers
        self.size: int = AUTO_PAGE_SIZE if chosen is None else chosen  # 0: no $top
        self.max_pages = max_pages or client.settings.max_pages
        self.stats = stats if stats is not None else QueryStats(path=path)
        self.origin = client.settings.origin
        self.seen_links: set[str] = set()
        self.seen_pages: set[bytes] = set()
        self.seen_ids: deque[set[str]] = deque(maxlen=ID_MEMORY_PAGES)
        self.offset = 0  # rows the server has handed out so far, duplicates included
        self.asked_from = 0  # the offset of the last query this pager built (not a link)
        self.start: int = rows[0] if rows else 0
        self.limit: int | None = rows[1] if rows else None

    def url_at(self, offset: int, count: bool = False) -> str:
        """The query from ``offset`` rows into this pager's rows."""
        options: dict[str, Any] = {}
        skip = self.start + offset
        size = self.size
        if self.limit is not None:  # never ask beyond the range
            left = self.limit - offset
            size = min(size, left) if size else left
        if size:
            options |= {"$top": size, "$skip": skip}
        elif skip:
            options["$skip"] = skip
        if self.filter:
            options["$filter"] = self.filter
        if count:
            options["$count"] = True
        return self.client.url(self.path, options)

    def run(self) -> Iterator[Page]:
        url: str | None = self.url_at(0, count=self.limit is None)
        refreshes_before = self.client.auth.refreshes
        began = time.monotonic()
        try:
            while url is not None:
                asked = time.monotonic()
                body = self._fetch(url)
                self._adapt(time.monotonic() - asked)
                value = _value(body, url)
                if self.limit is not None:  # a range: what lies beyond it is another range's
                    value = value[: self.limit - self.offset]
                    body.pop("@odata.totalCount", None)
                    body.pop("@odata.count", None)
                self._check_repeat(value, url)
                self.offset += len(value)
                total = total_of(body)
                self.stats.server_total = total if total is not None else self.stats.server_total
                rows = self._distinct(value)
                yield Page(number=self.stats.pages, rows=rows, server_total=total)
                url = self._next(url, body, value, total)
        finally:
            self.stats.token_refreshes += self.client.auth.refreshes - refreshes_before
            self.stats.seconds += time.monotonic() - began
        self._report()

    def _fetch(self, url: str) -> dict[str, Any]:
        if self.stats.pages >= self.max_pages:
            raise PagingError(
                f"{self.path}: more than {self.max_pages} pages; stopped at "
                f"{redact_url(url)} (raise max_pages if the collection is really this large)"
            )
        request_stats = RequestStats()
        try:
            return self.client.get_json(url, request_stats, exact=self.exact)
        finally:
            self.stats.pages += 1
            self.stats.requests += request_stats.requests
            self.stats.retries.update(request_stats.retries)
            self.stats.bytes += request_stats.bytes

    def _adapt(self, seconds: float) -> None:
        """Halve an automatic page size while pages answer slowly. The first page does not
        count: it asks for the total too, which a server may take long to compute."""
        first = self.stats.pages <= 1 and self.limit is None
        if first or not self.auto:
            return
        if seconds > SLOW_PAGE_SECONDS and self.size > MIN_AUTO_PAGE_SIZE:
            self.size = max(MIN_AUTO_PAGE_SIZE, self.size // 2)
            log.info("%s: a page took %.1f s; asking %d rows a page from now on",
                     self.path, seconds, self.size)  # fmt: skip

    def _check_repeat(self, value: list[Any], url: str) -> None:
        if not value:
            return
        # A page is known by its length and its first and last rows: hashing two rows, not
        # the page, keeps this off the profile; a server that repeats a page repeats both.
        ends = orjson.dumps([len(value), value[0], value[-1]], default=str)  # Decimals as text
        digest = hashlib.blake2b(ends, digest_size=16).digest()
        if digest in self.seen_pages:
            raise PagingError(
                f"{self.path}: page {self.stats.pages} at {redact_url(url)} repeats an earlier "
                "page; the server is not advancing"
            )
        self.seen_pages.add(digest)

    def _distinct(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The page without rows the last pages already gave (by ``@odata.id``).

        Rows come twice when rows inserted in front shift the server's offsets while we page:
        the last rows of a page come back at the start of the next. Only the ids of the last
        ``ID_MEMORY_PAGES`` pages are kept, so memory holds pages, not the collection.
        """
        rows, ids = [], set()
        for row in value:
            identity = row.get("@odata.id") if isinstance(row, dict) else None
            if identity is not None:
                if identity in ids or any(identity in seen for seen in self.seen_ids):
                    self.stats.duplicates += 1
                    continue
                ids.add(identity)
            rows.append(row)
        self.seen_ids.append(ids)
        self.stats.rows += len(rows)
        return rows

    def _next(
        self, url: str, body: dict[str, Any], value: list[Any], total: int | None
    ) -> str | None:
        if self.limit is not None and self.offset >= self.limit:
            return None  # the range is read, whatever the server links to next
        link = body.get("@odata.nextLink")
        if link:
            # A relative link is relative to the payload's context URL, or else to the request
            # URL (OData JSON format, "Relative URLs"); a service-root-relative link such as
            # "processes(1)/cases?$skiptoken=..." only resolves right against the context.
            context = body.get("@odata.context")
            base = urljoin(url, context) if isinstance(context, str) and context else url
            return self._follow(base, str(link))
        if not value:
            return None  # an empty page
        # No next link. A server that caps pages below $top may still hold rows: trust its
        # total; without one, a short page proves nothing (the server may cap $top silently),
        # so ask from the next offset until a page comes back empty: one request more, no row
        # lost. A server that ignored $skip would repeat a page, which _check_repeat stops.
        # A server that linked its pages and linked no more has ended the collection, unless
        # its links ended at the $top asked: in standard OData $top limits the whole answer,
        # which the server may page below it, so the rows after it are asked for.
        known = total if total is not None else self.stats.server_total
        if self.limit is not None:
            more = self.offset < self.limit
        elif self.seen_links:
            at_top = bool(self.size) and self.offset - self.asked_from >= self.size
            more = at_top and (known is None or self.offset < known)
        else:
            more = self.offset < known if known is not None else True
        return self._asked(self.offset) if more else None

    def _asked(self, offset: int) -> str:
        """The query from ``offset``, remembered as where the server's answer to it began."""
        self.asked_from = offset
        return self.url_at(offset)

    def _follow(self, url: str, link: str) -> str:
        absolute = urljoin(url, link)
        if origin_of(absolute) != self.origin:
            raise PagingError(
                f"{self.path}: the next link points to another origin ({redact_url(absolute)}); "
                "refused, and no credentials were sent there"
            )
        if absolute in self.seen_links:
            raise PagingError(
                f"{self.path}: the next link {redact_url(absolute)} was already followed; "
                "the server is looping"
            )
        self.seen_links.add(absolute)
        return absolute

    def _report(self) -> None:
        s = self.stats
        if s.total_mismatch:
            log.warning(
                "%s: the server reported %s rows, %d distinct rows arrived (%d duplicates dropped)",
                self.path, s.server_total, s.rows, s.duplicates,
            )  # fmt: skip
        log.debug("%s: %s", self.path, s.as_dict())


def _value(body: dict[str, Any], url: str) -> list[dict[str, Any]]:
    value = body.get("value")
    if not isinstance(value, list):
        raise SchemaError(
            f"GET {redact_url(url)}: expected a collection with a 'value' list, got keys "
            f"{sorted(body)[:8]}"
        )
    return value


def total_of(body: dict[str, Any]) -> int | None:
    """The total a collection page reports: Bizagi's ``@odata.totalCount`` first (Bizagi's
    ``@odata.count`` counts the page), else the standard ``@odata.count``; None without."""
    for key in ("@odata.totalCount", "@odata.count"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
