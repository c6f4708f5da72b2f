"""Values written into DuckDB statements as SQL literals, instead of bound as parameters.

DuckDB's Python client imports pandas whenever a statement has a bound parameter (to check
whether it is a DataFrame): 46 MB and 0.16 s in a process that never uses pandas otherwise,
which is every run of the CLI. So the warehouse writes its values (file names, partition
values, instants, settings) as literals. Strings are standard SQL strings, where a quote is
doubled and nothing else is special (DuckDB reads backslashes literally outside ``E'...'``);
a NUL, which no SQL string can hold, is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable


def string(value: str) -> str:
    """``value`` as a SQL string literal."""
    if "\x00" in value:
        raise ValueError(f"a NUL character cannot be written into SQL: {value!r}")
    return "'" + value.replace("'", "''") + "'"


def strings(values: Iterable[str]) -> str:
    """``values`` as a ``VARCHAR[]`` literal (typed, so an empty list is one too)."""
    return "[" + ", ".join(string(v) for v in values) + "]::VARCHAR[]"


def instant(value: dt.datetime) -> str:
    """An aware ``value`` as a ``TIMESTAMPTZ`` literal, written in UTC (DuckDB cannot read an
    offset with fractions of a second; a naive value would take the session's time zone, so
    it is refused)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"an instant needs a time zone, got the naive {value.isoformat()}")
    return f"{string(value.astimezone(dt.UTC).isoformat())}::TIMESTAMPTZ"
