"""What the CLI shows while it works: a progress bar per stream and a summary table."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
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
from bizagi_etl.pipeline.landing import land, view_plan
from bizagi_etl.report import out, summary, where_it_landed

if TYPE_CHECKING:
    from bizagi_etl.handover import LoadPlan
    from bizagi_etl.pipeline.warehouse import Warehouse

console = Console(stderr=True)


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
    out.print(summary(report.loads, report.loaded))
    out.print(where_it_landed(where.lake, where.warehouse if load else None))
    return report


def extract_for_handover(
    client: BizagiClient,
    catalog: Catalog,
    names: Sequence[str],
    where: PipelineSettings,
    start: dt.date,
    end: dt.date,
) -> tuple[LoadPlan, Path]:
    """Extract the named streams with a live progress line each and load nothing: the plan
    of their load, and the folder that holds its files (see bizagi_etl/handover.py).

    An error that ends the run loads what the streams before it extracted, in this process,
    as ``run`` loads each stream once extracted, and is raised then.
    """
    from bizagi_etl import handover
    from bizagi_etl.failures import explain

    use_system_allocator()
    defer_pandas()
    freeze_imports()
    lake = open_lake(where.lake, lock_timeout=where.lock_timeout)
    report = RunReport()
    try:
        with stream_progress() as progress:
            run(client, catalog, names, lake, None, start=start, end=end, progress=progress,
                report=report)  # fmt: skip
    except BaseException:
        _land_before_failing(where, report)
        raise
    folder = handover.plan_folder(where.warehouse)
    try:
        views = view_plan(catalog.all(), folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    plan = handover.LoadPlan(
        lake=where.lake, warehouse=where.warehouse, memory_limit=where.duckdb_memory_limit,
        data=where.warehouse_data, lock_timeout=where.lock_timeout, loads=tuple(report.loads),
        views=views, failed={name: explain(error) for name, error in report.failed.items()},
    )  # fmt: skip
    return plan, folder


def _land_before_failing(where: PipelineSettings, report: RunReport) -> None:
    """Load what a failing run extracted; a load that fails too is shown, not raised, so the
    run's own error is the one reported."""
    if not report.loads:
        return
    from bizagi_etl.failures import explain

    try:
        with _warehouse(where) as warehouse:
            land(warehouse, report.loads)
    except Exception as exc:
        console.print(f"what was extracted before the failure did not load: {explain(exc)}",
                      markup=False, style="yellow")  # fmt: skip


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
