"""What the CLI shows while it works: a progress bar per stream and a summary table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from bizagi_etl.connector import BizagiClient
from bizagi_etl.pipeline import (
    MOVED,
    NEW,
    OPEN,
    Catalog,
    ExtractResult,
    PipelineSettings,
    RunReport,
    SyncReport,
    defer_pandas,
    freeze_imports,
    open_lake,
    refresh_views,
    resolve_streams,
    run,
    sync_stream,
    use_system_allocator,
)
from bizagi_etl.pipeline import Progress as ProgressCallback

if TYPE_CHECKING:
    from bizagi_etl.pipeline.warehouse import Warehouse

console = Console(stderr=True)
out = Console()
if not out.is_terminal:  # piped or captured: no terminal width to respect, keep tables whole
    out = Console(width=160)


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "", style="cyan")


@contextmanager
def stream_progress() -> Iterator[ProgressCallback]:
    """A callback that keeps one live line per stream: rows, pages, rate, time."""
    bars = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<18}"),
        TextColumn("{task.completed:>10,.0f} rows"),
        TextColumn("{task.fields[pages]:>6,} pages"),
        _Rate(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def update(stream: str, rows: int, pages: int) -> None:
        if stream not in tasks:
            tasks[stream] = bars.add_task(stream, total=None, pages=0)
        bars.update(tasks[stream], completed=rows, pages=pages)

    with bars:
        yield update


def summary(results: Sequence[ExtractResult], loaded: dict[str, int]) -> Table:
    table = Table(title="What landed", title_justify="left")
    for name in ("stream", "table", "partitions", "rows", "in warehouse", "requests", "retries",
                 "token refreshes", "seconds"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("stream", "table") else "right")
    for result in results:
        tables = sorted({p.table for p in result.partitions}, key=lambda t: t != result.stream)
        for i, name in enumerate(tables):
            parts = [p for p in result.partitions if p.table == name]
            first = i == 0
            table.add_row(
                result.stream if first else "",
                name,
                f"{len(parts):,}",
                f"{sum(p.rows for p in parts):,}",
                f"{loaded[name]:,}" if name in loaded else "-",
                f"{result.requests:,}" if first else "",
                f"{result.retries:,}" if first else "",
                f"{result.token_refreshes:,}" if first else "",
                f"{result.seconds:.1f}" if first else "",
            )
    return table


def run_and_report(
    client: BizagiClient,
    catalog: Catalog,
    names: Sequence[str],
    where: PipelineSettings,
    load: bool,
    start: dt.date,
    end: dt.date,
) -> RunReport:
    """Run the named streams with a live progress line each, then print what landed. The
    warehouse is opened for each load only, so analysts can query it while the run extracts."""
    use_system_allocator()
    defer_pandas()
    freeze_imports()
    lake = open_lake(where.lake, lock_timeout=where.lock_timeout)
    with stream_progress() as progress:
        report = run(client, catalog, names, lake, partial(_warehouse, where) if load else None,
                     start=start, end=end, progress=progress)  # fmt: skip
    out.print(summary(report.results, report.loaded))
    shown = f"   Warehouse: {where.warehouse}" if load else "   (not loaded)"
    out.print(f"Lake: {where.lake}{shown}")
    return report


def sync_and_report(
    client: BizagiClient,
    catalog: Catalog,
    names: Sequence[str],
    where: PipelineSettings,
    db: str | None,
    now: dt.datetime,
) -> list[SyncReport]:
    """Sync the named daily streams with a progress line each, then print what each did."""
    use_system_allocator()
    defer_pandas()
    freeze_imports()
    lake = open_lake(where.lake, lock_timeout=where.lock_timeout)
    warehouse = _warehouse(where) if db else None
    reports = []
    try:
        with stream_progress() as progress:
            for stream in resolve_streams(client, catalog, list(names)):
                reports.append(sync_stream(client, stream, lake, warehouse, start=where.start_date,
                                    now=now, progress=progress))  # fmt: skip
        if warehouse is not None:
            refresh_views(warehouse, catalog.all())
    finally:
        if warehouse is not None:
            warehouse.close()
    for report in reports:
        out.print(sync_summary(report))
    return reports


def sync_summary(report: SyncReport) -> Table:
    plan = report.plan
    table = Table(title=f"Sync of {plan.stream}", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("", justify="right")
    for reason, why in ((NEW, "new days (since the last, incomplete one)"),
                        (OPEN, "days that held open cases"),
                        (MOVED, "days whose count at the source moved")):  # fmt: skip
        days = plan.days(reason)
        shown = f"{len(days):,}" + (f"  ({_span(days)})" if days else "")
        table.add_row(f"read: {why}", shown)
    table.add_row("days landed before", f"{plan.landed_days:,}")
    table.add_row("rows added / changed / deleted",
                  f"{report.added:,} / {report.changed:,} / {report.deleted:,}")  # fmt: skip
    table.add_row("requests: counts + reads", f"{plan.count_requests:,} + "
                  f"{report.requests - plan.count_requests:,} = {report.requests:,}")  # fmt: skip
    table.add_row("a full re-extraction would cost", f"~{report.full_requests:,} requests")
    return table


def _span(days: list[dt.date]) -> str:
    return days[0].isoformat() if len(days) == 1 else f"{days[0]} .. {days[-1]}"


def _warehouse(where: PipelineSettings) -> Warehouse:
    from bizagi_etl.pipeline.warehouse import Warehouse  # duckdb, only when a load runs

    return Warehouse(where.warehouse, memory_limit=where.duckdb_memory_limit,
                     data=where.warehouse_data, lock_timeout=where.lock_timeout)  # fmt: skip
