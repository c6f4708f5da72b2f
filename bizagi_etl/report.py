"""What the CLI prints when a run has landed: the table of what each stream wrote and loaded.

It imports rich and the plain data of ``pipeline.landing`` only, so the process that loads
(``bizagi_etl/handover.py``) prints it without the extraction's stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from bizagi_etl.pipeline.landing import StreamLoad

out = Console()
if not out.is_terminal:  # piped or captured: no terminal width to respect, keep tables whole
    out = Console(width=160)


def summary(loads: Sequence[StreamLoad], loaded: dict[str, int]) -> Table:
    table = Table(title="What landed", title_justify="left")
    for name in ("stream", "table", "partitions", "rows", "in warehouse", "requests", "retries",
                 "token refreshes", "seconds"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("stream", "table") else "right")
    for load in loads:
        tables = sorted({p.table for p in load.partitions}, key=lambda t: t != load.stream)
        for i, name in enumerate(tables):
            parts = [p for p in load.partitions if p.table == name]
            first = i == 0
            table.add_row(
                load.stream if first else "",
                name,
                f"{len(parts):,}",
                f"{sum(p.rows for p in parts):,}",
                f"{loaded[name]:,}" if name in loaded else "-",
                f"{load.requests:,}" if first else "",
                f"{load.retries:,}" if first else "",
                f"{load.token_refreshes:,}" if first else "",
                f"{load.seconds:.1f}" if first else "",
            )
    return table


def where_it_landed(lake: str, warehouse: str | None) -> str:
    """The line under the table: the lake, and the warehouse if the run loaded one."""
    return f"Lake: {lake}" + (f"   Warehouse: {warehouse}" if warehouse else "   (not loaded)")
