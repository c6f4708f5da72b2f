"""A served collection: filter it, cut a page, wrap it in Bizagi's envelope."""

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
            raise ODataError(400, str(exc)) from None
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
