"""Extract streams, load them and refresh the views: what the CLI and the demo run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from bizagi_etl.connector import BizagiClient
from bizagi_etl.pipeline.extract import (
    ExtractResult,
    Progress,
    extract_stream,
    load_result,
    resolve_streams,
)
from bizagi_etl.pipeline.frames import empty_table
from bizagi_etl.pipeline.lake import Lake
from bizagi_etl.pipeline.streams import BUILTIN, SNAPSHOT, Catalog, Stream
from bizagi_etl.pipeline.warehouse import Warehouse


@dataclass(slots=True)
class RunReport:
    results: list[ExtractResult] = field(default_factory=list)
    loaded: dict[str, int] = field(default_factory=dict)  # table -> rows in loaded partitions
    views: list[str] = field(default_factory=list)


def run(
    client: BizagiClient,
    catalog: Catalog,
    names: Sequence[str],
    lake: Lake,
    warehouse: Warehouse | None,
    *,
    start: dt.date | None,
    end: dt.date | None,
    progress: Progress | None = None,
) -> RunReport:
    """Extract each named stream into the lake and, given a warehouse, load it and the views."""
    report = RunReport()
    streams = resolve_streams(client, catalog, list(names))
    for stream in streams:
        extracted_at = dt.datetime.now(dt.UTC)
        result = extract_stream(
            client, stream, lake, start=start, end=end, extracted_at=extracted_at, progress=progress
        )
        report.results.append(result)
        if warehouse is not None:
            report.loaded |= load_result(warehouse, result, extracted_at)
    if warehouse is not None:
        report.views = refresh_views(warehouse, [*catalog.all(), *streams])
    return report


def refresh_views(warehouse: Warehouse, streams: Sequence[Stream]) -> list[str]:
    """Create the built-in tables if missing, apply sql/, add latest_* views for the rest."""
    for stream in BUILTIN:
        warehouse.ensure_table(stream.name, empty_table(stream.columns).schema)
        for child in stream.children:
            warehouse.ensure_table(child.name, empty_table(child.columns).schema)
    views = warehouse.apply_sql()
    builtin = {s.name for s in BUILTIN}
    for stream in streams:
        dynamic = stream.partitioning == SNAPSHOT and stream.name not in builtin
        if dynamic and warehouse.columns(stream.name):
            views.append(warehouse.create_latest_view(stream.name, stream.key))
    return views
