"""A served collection: filter it, cut a page, wrap it in Bizagi's envelope or a standard one."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bizagi_etl.emulator import filters
from bizagi_etl.emulator.config import EmulatorConfig
from bizagi_etl.emulator.errors import ODataError
from bizagi_etl.emulator.query import QueryOptions, with_skip
from bizagi_etl.emulator.records import Record
from bizagi_etl.emulator.schema import props_of
from bizagi_etl.emulator.skiptoken import SkipTokens, next_link_query

Positions = np.ndarray


@dataclass
class Collection:
    """Rows of one OData collection in served order, and how to turn them into records."""

    context: str  # what follows '#' in @odata.context
    type_name: str  # schema type, for $filter typing
    positions: Positions
    records: Callable[[Positions], list[Record]]
    fast_column: Callable[[str, Positions], filters.Column | None] | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. @bizagi.entity
    cache_key: str | None = None  # stable name of this collection, for the filter cache
    service: str = "data"


class FilterCache:
    """Filtered positions of recent (collection, data version, $filter) triples.

    A client pages one query many times; evaluating the filter once per query, not per page,
    keeps a page of a million-case history cheap.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str, int, str], Positions] = OrderedDict()

    def get(self, key: tuple[str, str, int, str], compute: Callable[[], Positions]) -> Positions:
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = compute()
        self._entries[key] = value
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value


def filtered(
    coll: Collection, options: QueryOptions, cache: FilterCache, version: int, drift: bool
) -> Positions:
    if not options.filter:
        return coll.positions
    text = options.filter

    def compute() -> Positions:
        positions = coll.positions
        fast = coll.fast_column
        source = filters.Source(
            type_name=coll.type_name,
            props=props_of(coll.type_name, coll.service, drift),
            size=len(positions),
            records=lambda: coll.records(positions),
            fast_column=(lambda name: fast(name, positions)) if fast else (lambda name: None),
        )
        try:
            mask = filters.evaluate(filters.parse(text), source)
        except filters.FilterError as exc:
            raise ODataError(400, str(exc), target="$filter") from None
        return positions[mask]

    if coll.cache_key is None:
        return compute()
    return cache.get((coll.cache_key, coll.type_name, version, text), compute)


def page_body(
    coll: Collection,
    rows: Positions,
    options: QueryOptions,
    base: str,
    path: str,
    config: EmulatorConfig,
) -> dict[str, Any]:
    """The envelope: context, counts, next link while rows remain, and the page's records."""
    size = min(options.top if options.top is not None else config.page_cap, config.page_cap)
    page = rows[options.skip : options.skip + size]
    value = coll.records(page)
    body: dict[str, Any] = {
        "@odata.context": f"{base}/odata/{coll.service}/$metadata#{coll.context}"
    }
    body |= coll.extras
    if options.count:
        # Bizagi's docs call @odata.count "records fetched"; totals are in @odata.totalCount.
        body["@odata.count"] = len(value)
    body["@odata.totalCount"] = len(rows)
    link_base = config.next_link_origin or base
    if config.repeat_next_link and size:
        body["@odata.nextLink"] = f"{link_base}{path}?{with_skip(options, size)}"
    elif value and options.skip + len(value) < len(rows):
        skip = options.skip + len(value)
        body["@odata.nextLink"] = f"{link_base}{path}?{with_skip(options, skip)}"
    body["value"] = value
    return body


def standard_page_body(
    coll: Collection,
    rows: Positions,
    options: QueryOptions,
    window: tuple[int, int | None],
    size: int,
    path: str,
    config: EmulatorConfig,
    tokens: SkipTokens,
    base: str,
) -> dict[str, Any]:
    """A generic OData v4 page: rows ``window`` = (first row, row ``$top`` stops at or None).

    The server pages by itself (``size`` rows at most) and does not look ahead: a full page gets
    a next link unless the client's ``$top`` is used up, so a total that is a multiple of the
    page size ends with an empty page. Next links are relative to the service root (the context
    URL's base, OData JSON §4.5.5) and carry an opaque ``$skiptoken``. ``@odata.count`` is the
    total of the filtered collection, and only with ``$count=true``.
    """
    start, end = window
    stop = start + size if end is None else min(start + size, end)
    value = coll.records(rows[start:stop])
    body: dict[str, Any] = {
        "@odata.context": f"{base}/odata/{coll.service}/$metadata#{coll.context}"
    }
    body |= coll.extras
    if options.count:
        body["@odata.count"] = len(rows)
    link = None
    if config.repeat_next_link and size:
        link = tokens.make(path, options, size, end)
    elif value and len(value) == stop - start and (end is None or stop < end):
        link = tokens.make(path, options, stop, end)
    if link is not None:
        root = f"/odata/{coll.service}/"
        origin = config.next_link_origin or ""  # a bad proxy's links are absolute, elsewhere
        target = path.removeprefix(root) if path.startswith(root) and not origin else path
        body["@odata.nextLink"] = f"{origin}{target}?{next_link_query(options, link)}"
    body["value"] = value
    return body
