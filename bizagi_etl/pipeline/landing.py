"""Loading what an extraction wrote, described as plain data.

A ``StreamLoad`` is what one stream's extraction wrote (its partitions' files and when), with
its requests for the report; a ``ViewPlan`` is what refreshing the views needs to know of the
streams. ``land`` and ``apply_views`` need only these and a warehouse, and this module imports
neither pyarrow nor the streams: a process that only loads (the CLI's, see
``bizagi_etl/handover.py``) does without them. ``view_plan`` is made where the streams are.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bizagi_etl.pipeline.names import check_identifier

if TYPE_CHECKING:
    import pyarrow as pa

    from bizagi_etl.pipeline.extract import ExtractResult
    from bizagi_etl.pipeline.streams import Stream
    from bizagi_etl.pipeline.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionFiles:
    table: str
    value: str  # the partition: YYYY-MM-DD
    files: tuple[str, ...]
    rows: int


@dataclass(frozen=True, slots=True)
class StreamLoad:
    """What one stream's extraction wrote, to load and to report."""

    stream: str
    extracted_at: dt.datetime
    partitions: tuple[PartitionFiles, ...]
    requests: int = 0
    retries: int = 0
    token_refreshes: int = 0
    seconds: float = 0.0

    @classmethod
    def of(cls, result: ExtractResult, extracted_at: dt.datetime) -> StreamLoad:
        parts = tuple(PartitionFiles(p.table, p.value, tuple(str(f) for f in p.files), p.rows)
                      for p in result.partitions)  # fmt: skip
        return cls(result.stream, extracted_at, parts, result.requests, result.retries,
                   result.token_refreshes, result.seconds)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "extracted_at": self.extracted_at.isoformat(),
                "partitions": [[p.table, p.value, list(p.files), p.rows] for p in self.partitions],
                "requests": self.requests, "retries": self.retries,
                "token_refreshes": self.token_refreshes, "seconds": self.seconds}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamLoad:
        parts = tuple(PartitionFiles(t, v, tuple(f), int(r)) for t, v, f, r in data["partitions"])
        return cls(data["stream"], dt.datetime.fromisoformat(data["extracted_at"]), parts,
                   int(data["requests"]), int(data["retries"]), int(data["token_refreshes"]),
                   float(data["seconds"]))  # fmt: skip


def land(warehouse: Warehouse, loads: Sequence[StreamLoad]) -> dict[str, int]:
    """Load every partition the streams wrote, one transaction per table of a stream; the rows
    each table's loaded partitions hold."""
    loaded: dict[str, int] = {}
    for load in loads:
        by_table: dict[str, list[tuple[str, tuple[str, ...]]]] = defaultdict(list)
        for p in load.partitions:
            by_table[p.table].append((p.value, p.files))
        for table, parts in by_table.items():
            loaded[table] = warehouse.load_partitions(table, parts, load.extracted_at)
    return loaded


@dataclass(frozen=True, slots=True)
class ViewPlan:
    """What refreshing the views needs to know of the streams."""

    declared: tuple[tuple[str, str], ...]  # built-in table, an empty Parquet file of its schema
    latest: tuple[tuple[str, tuple[str, ...]], ...]  # table, key: gets analytics.latest_<table>
    families: tuple[tuple[str, str, tuple[str, ...]], ...]  # stream, its members' prefix, key

    def to_json(self) -> dict[str, Any]:
        return {"declared": [list(d) for d in self.declared],
                "latest": [[t, list(k)] for t, k in self.latest],
                "families": [[n, p, list(k)] for n, p, k in self.families]}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ViewPlan:
        return cls(tuple((t, f) for t, f in data["declared"]),
                   tuple((t, tuple(k)) for t, k in data["latest"]),
                   tuple((n, p, tuple(k)) for n, p, k in data["families"]))  # fmt: skip


def view_plan(
    streams: Sequence[Stream], folder: str | Path, present: Collection[str] = ()
) -> ViewPlan:
    """The views' plan for a catalog's streams; the built-in tables' empty files go in
    ``folder``, which must outlive the plan's use, but for the tables in ``present``."""
    from bizagi_etl.pipeline.frames import empty_table
    from bizagi_etl.pipeline.streams import BUILTIN, BUILTIN_KIND, FAMILY, SNAPSHOT

    declared = tuple(
        (table, declared_file(table, empty_table(columns).schema, folder))
        for stream in BUILTIN
        for table, columns in stream.declared_tables()
        if table not in present
    )
    latest: list[tuple[str, tuple[str, ...]]] = []
    families: list[tuple[str, str, tuple[str, ...]]] = []
    for stream in streams:
        if stream.kind == BUILTIN_KIND or stream.partitioning != SNAPSHOT:
            continue  # the built-in snapshot tables have theirs in sql/
        if stream.kind == FAMILY:
            families.append((stream.name, stream.table_prefix, stream.key))
        else:
            latest += stream.tables_among(())
    return ViewPlan(declared, tuple(latest), tuple(families))


def apply_views(warehouse: Warehouse, plan: ViewPlan) -> list[str]:
    """Create the built-in tables if missing, apply sql/, and add an ``analytics.latest_*``
    view for every table of the other snapshot streams (a family's members included)."""
    for table, empty_file in plan.declared:
        warehouse.ensure_table_like(table, empty_file)
    views = warehouse.apply_sql()
    present = warehouse.tables()
    wanted = list(plan.latest) + [
        (table, key)
        for name, prefix, key in plan.families
        for table in sorted(present)
        if table == name or table.startswith(prefix)
    ]
    for table, key in wanted:
        if table not in present:
            continue
        if not set(key) <= set(warehouse.columns(table)):  # a key the table never had
            log.warning("analytics.latest_%s: key %s is not a column of bizagi.%s; skipped",
                        table, list(key), table)  # fmt: skip
            continue
        views.append(warehouse.create_latest_view(table, key))
    return views


def declared_file(table: str, schema: pa.Schema, folder: str | Path) -> str:
    """An empty Parquet file of ``schema`` in ``folder``, for ``Warehouse.ensure_table_like``."""
    import pyarrow.parquet as pq  # only here: loading alone never needs it

    path = str(Path(folder) / f"{check_identifier('table', table)}.parquet")
    pq.write_table(schema.empty_table(), path)
    return path
