"""What the CLI shows while it works: a progress bar per stream and a summary table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

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
    Catalog,
    ExtractResult,
    Lake,
    RunReport,
    Warehouse,
    run,
    use_system_allocator,
)
from bizagi_etl.pipeline import Progress as ProgressCallback

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
    lake_root: Path,
    db: Path | None,
    start: dt.date,
    end: dt.date,
    memory_limit: str | None = None,
) -> RunReport:
    """Run the named streams with a live progress line each, then print what landed."""
    use_system_allocator()
    warehouse = Warehouse(db, memory_limit=memory_limit) if db else None
    try:
        with stream_progress() as progress:
            report = run(client, catalog, names, Lake(lake_root), warehouse,
                         start=start, end=end, progress=progress)  # fmt: skip
    finally:
        if warehouse is not None:
            warehouse.close()
    out.print(summary(report.results, report.loaded))
    out.print(f"Lake: {lake_root}" + (f"   Warehouse: {db}" if db else "   (not loaded)"))
    return report
