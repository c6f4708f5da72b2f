"""Extract streams, load them and refresh the views: what the CLI and the demo run."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from bizagi_etl.connector import (
    BizagiClient,
    BizagiError,
    ClientError,
    PagingError,
    ResponseError,
    SchemaError,
)
from bizagi_etl.pipeline.extract import (
    ExtractResult,
    Progress,
    extract_stream,
    resolve_streams,
)
from bizagi_etl.pipeline.lake import Lake
from bizagi_etl.pipeline.landing import StreamLoad, apply_views, land, view_plan
from bizagi_etl.pipeline.streams import Catalog, Stream

if TYPE_CHECKING:  # only a load opens the warehouse: extracting never imports duckdb
    from bizagi_etl.pipeline.warehouse import Warehouse

log = logging.getLogger(__name__)


# A stream's own problem (a wrong key or path, data that does not fit, a server that pages
# badly) fails that stream only; what every stream would meet (credentials, network, a full
# disk, settings) stops the run.
STREAM_ERRORS = (SchemaError, ClientError, PagingError, ResponseError)


@dataclass(slots=True)
class RunReport:
    results: list[ExtractResult] = field(default_factory=list)
    loads: list[StreamLoad] = field(default_factory=list)  # what each result wrote, to load
    loaded: dict[str, int] = field(default_factory=dict)  # table -> rows in loaded partitions
    views: list[str] = field(default_factory=list)
    failed: dict[str, BizagiError] = field(default_factory=dict)  # stream -> why it failed


# A warehouse to hold for the whole run, or a way to open one for each load: DuckDB lets no
# other process open a file one holds, so a long extraction should not hold it.
WarehouseSource: TypeAlias = "Warehouse | Callable[[], Warehouse] | None"


def run(
    client: BizagiClient,
    catalog: Catalog,
    names: Sequence[str],
    lake: Lake,
    warehouse: WarehouseSource,
    *,
    start: dt.date | None,
    end: dt.date | None,
    progress: Progress | None = None,
    report: RunReport | None = None,
) -> RunReport:
    """Extract each named stream into the lake and, given a warehouse, load it and the views.

    A stream that fails on its own account (``STREAM_ERRORS``) is reported in ``failed`` and
    the others go on; nothing of it lands, so it poisons nothing. A ``report`` given is filled
    in place, so its caller keeps what was extracted when another error ends the run.
    """
    report = RunReport() if report is None else report
    streams = resolve_streams(client, catalog, list(names))
    for i, stream in enumerate(streams):
        extracted_at = dt.datetime.now(dt.UTC)
        try:
            result = extract_stream(client, stream, lake, start=start, end=end,
                                    extracted_at=extracted_at, progress=progress)  # fmt: skip
        except STREAM_ERRORS as exc:
            report.failed[stream.name] = exc
            continue
        report.results.append(result)
        load = StreamLoad.of(result, extracted_at)
        report.loads.append(load)
        if warehouse is not None:
            with _opened(warehouse) as open_warehouse:
                report.loaded |= land(open_warehouse, [load])
                if i == len(streams) - 1:  # the views in the same opening: one less open
                    report.views = refresh_views(open_warehouse, catalog.all())
    if warehouse is not None and not report.views:  # the last stream failed: not viewed yet
        with _opened(warehouse) as open_warehouse:
            report.views = refresh_views(open_warehouse, catalog.all())
    return report


@contextmanager
def _opened(source: Warehouse | Callable[[], Warehouse]) -> Iterator[Warehouse]:
    """The warehouse given, or one opened for this load and closed after it."""
    if not callable(source):
        yield source
        return
    with source() as warehouse:
        yield warehouse


def refresh_views(warehouse: Warehouse, streams: Sequence[Stream]) -> list[str]:
    """``landing.apply_views`` with the plan of ``streams``, its files in the warehouse's
    scratch folder; the views' names."""
    with warehouse.scratch() as folder:
        return apply_views(warehouse, view_plan(streams, folder, present=warehouse.tables()))
