"""pandas DataFrames with Arrow-backed dtypes, where users touch the data.

The pipeline stays in Arrow; this module is the only one that imports pandas. Every frame is
an Arrow table wrapped by ``to_frame``: each column has a ``pd.ArrowDtype`` whose array *is*
the Arrow array, no copy made, so decimals stay exact ``Decimal`` values, timestamps stay UTC
instants and ``""`` stays distinct from a null (``<NA>``).

- ``page_frames``: a stream's pages straight from the API (a notebook, no lake needed).
- ``read_frame``: one partition of a lake table, its newest, or the whole table.
- ``partition_frames``: a lake table's partitions one by one, with their day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa

from bizagi_etl.connector import BizagiClient, SchemaError, iter_pages, odata
from bizagi_etl.pipeline.extract import (
    flat_record,
    midnight,
    resolve_streams,
    stream_paths,
    typed_by_metadata,
)
from bizagi_etl.pipeline.frames import combine, empty_table, to_table
from bizagi_etl.pipeline.lake import Lake
from bizagi_etl.pipeline.streams import DAILY, Catalog, Child, Stream

LATEST = "latest"  # read_frame's partition: the table's newest partition


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas without copying: every column a ``pd.ArrowDtype``.

    Nulls, decimals and UTC timestamps survive the trip. The frame's arrays are the table's:
    ``frame[c].array.__arrow_array__()`` gives back the same buffers.
    """
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def page_frames(
    client: BizagiClient,
    stream: Stream | str,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    table: str | None = None,
) -> Iterator[pd.DataFrame]:
    """One DataFrame per page the API returns for a stream, typed exactly like the lake.

    Each page goes through the pipeline's own conversion (``to_table``: declared columns first,
    with their types, then any attribute the declaration lacks), and the frame wraps that Arrow
    table without copying. Nothing is written anywhere and Dagster is not involved.

    ``stream`` is a ``Stream`` or the name of a built-in or ``entity_<name>`` stream (a stream
    of your own streams file: pass ``Catalog.load(path).get(name)``). A daily stream needs a
    window of UTC days, ``start`` inclusive and ``end`` exclusive, which the server filters on
    the stream's cursor; a snapshot stream takes none. A fanned-out stream (``cases``) runs one
    query per process, adding ``process_id``. ``table`` picks one of the stream's tables
    (``stream.tables``, e.g. ``"case_parameters"``); by default the stream's own. Frames come
    in the API's order, pages holding no row of the table are skipped, and a query that finds
    nothing yields one empty frame with the declared columns, so ``pd.concat`` always works.
    Pages may differ in columns when an undeclared attribute appears in some of them;
    ``pd.concat`` aligns them by name.

    >>> with BizagiClient(BizagiSettings.from_env()) as client:
    ...     week = pd.concat(page_frames(client, "cases", start=dt.date(2025, 3, 1),
    ...                                  end=dt.date(2025, 3, 8)), ignore_index=True)
    """
    s = typed_by_metadata(client, _stream(client, stream))  # typed as extraction types it
    wanted = table or s.name
    if wanted not in s.tables:
        raise SchemaError(
            f"stream {s.name!r} has no table {wanted!r}; its tables: {', '.join(s.tables)}"
        )
    return _pages(client, s, wanted, _window(s, start, end))  # checked now, fetched lazily


def read_frame(lake: Lake, table: str, partition: dt.date | str | None = None) -> pd.DataFrame:
    """A lake table as one DataFrame: a partition, the newest one, or all of them.

    ``partition`` is a day (``dt.date`` or ``"YYYY-MM-DD"``, such as a Dagster partition key)
    naming the ``day=`` partition of a daily table or the ``snapshot=`` partition of a
    snapshot table; ``"latest"`` is the table's newest partition (the last snapshot); ``None``
    is every partition, in order (every snapshot of a snapshot table, repeated rows included).
    The Parquet files are read into Arrow and wrapped without a copy. A table or partition the
    lake does not hold raises ``SchemaError`` naming what is there.

    >>> lake = Lake(Path("bizagi-data/lake"))
    >>> day = read_frame(lake, "cases", "2025-03-04")
    >>> products = read_frame(lake, "entity_product", "latest")
    """
    partitions = _partitions(lake, table)
    if partition is None:
        return _read(lake, table, partitions)
    if partition == LATEST:
        return _read(lake, table, partitions[-1:])
    value = _day(partition, f"partition (or {LATEST!r})").isoformat()
    chosen = [(c, v) for c, v in partitions if v == value]
    if not chosen:
        raise SchemaError(
            f"table {table!r} has no partition {value} in the lake at {lake.root}; it has "
            f"{_span(partitions)}"
        )
    return _read(lake, table, chosen)


def partition_frames(
    lake: Lake,
    table: str,
    *,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
) -> Iterator[tuple[dt.date, pd.DataFrame]]:
    """(day, DataFrame) for each partition of a lake table in [start, end), in order.

    Either bound may be left out. For a daily table given both bounds, every day of the
    window must have been extracted (extraction writes a partition for every day, an empty one
    included), otherwise ``SchemaError`` lists the missing days before anything is read: a
    window read in part would look like a quiet day. Memory holds one partition at a time.

    >>> for day, cases in partition_frames(lake, "cases", start=dt.date(2025, 3, 1),
    ...                                    end=dt.date(2025, 4, 1)):
    ...     print(day, len(cases))
    """
    lo = _day(start, "start") if start is not None else None
    hi = _day(end, "end") if end is not None else None
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"table {table!r}: give start < end, got {lo}, {hi}")
    partitions = _partitions(lake, table)
    chosen = [
        (c, v)
        for c, v in partitions
        if (lo is None or lo.isoformat() <= v) and (hi is None or v < hi.isoformat())
    ]
    if lo is not None and hi is not None and partitions[0][0] == "day":
        present = {v for _, v in chosen}
        missing = [d for d in _days(lo, hi) if d.isoformat() not in present]
        if missing:
            shown = ", ".join(d.isoformat() for d in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise SchemaError(
                f"table {table!r} in the lake at {lake.root}: {len(missing)} days of "
                f"{lo}..{hi} (end exclusive) were never extracted: {shown}{more}; "
                f"it has {_span(partitions)}"
            )
    return ((dt.date.fromisoformat(v), _read(lake, table, [(c, v)])) for c, v in chosen)


# -- pages ----------------------------------------------------------------------------------------


def _stream(client: BizagiClient, stream: Stream | str) -> Stream:
    if isinstance(stream, Stream):
        return stream
    found = resolve_streams(client, Catalog.load(), [stream])
    if len(found) != 1:
        raise SchemaError(
            f"stream {stream!r} stands for {len(found)} streams; name one of them: "
            f"{', '.join(s.name for s in found)}"
        )
    return found[0]


def _window(stream: Stream, start: dt.date | None, end: dt.date | None) -> str | None:
    if stream.partitioning != DAILY:
        if start is not None or end is not None:
            raise ValueError(
                f"stream {stream.name!r} is a snapshot: it takes no window, got {start}, {end}"
            )
        return None
    if start is None or end is None or not start < end:
        raise ValueError(f"stream {stream.name!r} is daily: give start < end, got {start}, {end}")
    assert stream.cursor is not None
    return odata.window(stream.cursor, midnight(start), midnight(end))


def _pages(
    client: BizagiClient, stream: Stream, table: str, window: str | None
) -> Iterator[pd.DataFrame]:
    yielded = False
    for path, process_id in stream_paths(client, stream):
        for page in iter_pages(client, path, filter=window):
            arrow = _page_table(stream, table, page.rows, process_id)
            if arrow is not None and arrow.num_rows:
                yielded = True
                yield to_frame(arrow)
    if not yielded:
        columns = stream.columns if table == stream.name else _child(stream, table).columns
        yield to_frame(empty_table(columns))


def _page_table(
    stream: Stream, table: str, rows: list[dict[str, Any]], process_id: str | None
) -> pa.Table | None:
    """One page as the Arrow table the pipeline would write for ``table`` (or None: no rows)."""
    records = [flat_record(stream, r, process_id) for r in rows]
    if not records:
        return None
    if table == stream.name:
        return to_table(records, stream.columns, stream.name, stream.child_sources)
    return _child(stream, table).table(records)[0]


def _child(stream: Stream, table: str) -> Child:
    return next(c for c in stream.children if c.name == table)


# -- lake -----------------------------------------------------------------------------------------


def _partitions(lake: Lake, table: str) -> list[tuple[str, str]]:
    partitions = lake.partitions(table) if lake.has_table(table) else []
    if not partitions:
        raise SchemaError(
            f"table {table!r} is not in the lake at {lake.root}; tables there: "
            f"{', '.join(lake.tables()) or 'none'}"
        )
    return partitions


def _read(lake: Lake, table: str, partitions: list[tuple[str, str]]) -> pd.DataFrame:
    files = [f for column, value in partitions for f in lake.files(table, column, value)]
    return to_frame(combine([lake.read_file(f) for f in files], None, table))


def _span(partitions: list[tuple[str, str]]) -> str:
    (column, first), (_, last) = partitions[0], partitions[-1]
    count = f"{len(partitions)} partition{'s' if len(partitions) > 1 else ''}"
    return f"{count}, {column}={first}" + (f" .. {column}={last}" if last != first else "")


def _day(value: dt.date | str, name: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValueError(f"{name}: expected a day (dt.date or YYYY-MM-DD), got {value!r}")
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{name}: expected a day (dt.date or YYYY-MM-DD), got {value!r}") from None


def _days(lo: dt.date, hi: dt.date) -> list[dt.date]:
    return [lo + dt.timedelta(days=i) for i in range((hi - lo).days)]
