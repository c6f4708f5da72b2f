"""Records -> typed Arrow tables with the stream's declared types.

Timestamps with any offset become UTC instants (naive ones are read as UTC); decimals are
built from the shortest text of the JSON number, so ``199.99`` stays exactly 199.99; empty
strings and nulls stay distinct; an attribute the declaration lacks is kept as a new column
(typed from its values) rather than dropped; an empty batch is a typed empty table.
"""

from __future__ import annotations

import functools
import gc
import importlib.abc
import os
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from bizagi_etl.connector import SchemaError
from bizagi_etl.pipeline.schema import TIMESTAMP, Col, unique_names

Record = dict[str, Any]
_NAIVE = r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)$"
_TICKS = r"(T\d{2}:\d{2}:\d{2}\.\d{6})\d+"  # .NET writes 7 digits; Arrow keeps 6 (1 us)
_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, InvalidOperation, TypeError, ValueError)
_DATE_ONLY = r"^(\d{4}-\d{2}-\d{2})$"


def use_system_allocator() -> None:
    """Let Arrow allocate with the C library's malloc, unless ARROW_DEFAULT_MEMORY_POOL says.

    Arrow's default, mimalloc, keeps what each thread frees in that thread's heap: with fetch
    and writer threads, a backfill of 1M cases peaked at 477 MB against 363 MB with malloc, at
    the same speed (benchmarks/pipeline_bench.py). The allocator belongs to the process, so
    the programs call this (the CLI, the Dagster code location, the benchmark), not the library.
    """
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())


def freeze_imports() -> None:
    """Leave what the process has loaded so far out of the garbage collector's passes.

    An extraction allocates millions of short-lived containers (a dict per row), so the
    collector runs often, and each full pass walks every module object too: 0.79 s of 8 at
    100k cases, 6.9 s of 36 at 1M (py-spy). Frozen, they are never walked again: 0.24 s and
    2.5 s. The programs call this once their imports are done (the CLI, the benchmark).
    """
    gc.collect()
    gc.freeze()


class _HidePandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ModuleNotFoundError(f"{name} is hidden while pyarrow probes for it", name=name)


def defer_pandas() -> None:
    """Keep pandas (about 50 MB) out of a process that only extracts.

    pyarrow imports pandas the first time it converts a Python object, only to check whether
    the object is a pandas one, which extraction never hands it. That check runs once here
    with pandas hidden, so pyarrow records it as absent; it imports pandas after all when
    something asks for pandas (``to_pandas``), so DataFrames still work afterwards
    (tests/test_layers.py holds pyarrow to that). It stays a choice of the program (the CLI
    makes it), not of the library: until pandas is imported, pyarrow takes a pandas object
    handed to ``pa.array`` as a plain sequence (a missing value becomes NaN, not null).
    """
    if "pandas" in sys.modules:
        return
    finder = _HidePandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(finder)


def to_table(
    records: Sequence[Record],
    columns: Sequence[Col],
    table: str,
    ignore: frozenset[str] = frozenset(),
) -> pa.Table:
    """One batch of (flat) records as an Arrow table: declared columns, then new ones.

    Attributes in ``ignore`` (lists that child tables take) are not turned into columns.
    """
    declared = [_column(records, c, table) for c in columns]
    fields = [pa.field(c.name, arr.type) for c, arr in zip(columns, declared, strict=True)]
    extra = _undeclared(records, columns, ignore)
    for col in extra:
        array = _column(records, col, table)
        declared.append(array)
        fields.append(pa.field(col.name, array.type))
    return pa.Table.from_arrays(declared, schema=pa.schema(fields))


def columns_table(values: dict[str, list[Any]], columns: Sequence[Col], table: str) -> pa.Table:
    """Rows already split into columns (by source) as an Arrow table of ``columns``."""
    arrays = [_converted(values[c.source], c, table) for c in columns]
    fields = [pa.field(c.name, a.type) for c, a in zip(columns, arrays, strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def combine(batches: Sequence[pa.Table], schema: pa.Schema | None, table: str) -> pa.Table:
    """One table from batches whose schemas may differ (new columns, wider types), with the
    fields of ``schema`` first."""
    tables = [b for b in batches if b.num_columns]
    if not tables:
        return (schema or pa.schema([])).empty_table()
    if len(tables) == 1 and schema is not None and _leads_with(tables[0].schema, schema):
        return tables[0]  # already conformed (a slice of an earlier combine): nothing to unify
    try:
        unified = pa.unify_schemas(
            [schema, *(t.schema for t in tables)] if schema else [t.schema for t in tables],
            promote_options="permissive",
        )
        return pa.concat_tables([_conform(t, unified) for t in tables])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(f"table {table!r}: batches do not agree on a schema: {exc}") from None


def _leads_with(have: pa.Schema, want: pa.Schema) -> bool:
    """``have`` starts with exactly the fields of ``want``, in order."""
    return len(have) >= len(want) and all(have.field(i) == f for i, f in enumerate(want))


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    arrays = []
    for field in schema:
        index = table.schema.get_field_index(field.name)
        column = table.column(index) if index >= 0 else pa.nulls(table.num_rows, field.type)
        arrays.append(column.cast(field.type) if column.type != field.type else column)
    return pa.Table.from_arrays(arrays, schema=schema.remove_metadata())


def empty_table(columns: Sequence[Col]) -> pa.Table:
    return _empty_table(tuple(columns))


@functools.lru_cache(maxsize=256)
def _empty_table(columns: tuple[Col, ...]) -> pa.Table:
    # Asked for once per partition written; Arrow tables are immutable, so one serves all.
    return pa.schema([pa.field(c.name, c.type) for c in columns]).empty_table()


def _column(records: Sequence[Record], col: Col, table: str) -> pa.Array:
    return _converted([r.get(col.source) for r in records], col, table)


def _converted(values: list[Any], col: Col, table: str) -> pa.Array:
    try:
        return _convert(values, col)
    except _CONVERSION_ERRORS as exc:
        bad = next((v for v in values if not _converts(v, col)), "?")
        raise SchemaError(
            f"table {table!r}, column {col.name!r} (from {col.source!r}): cannot read "
            f"{bad!r} as {col.type}: {exc}"
        ) from None


def _convert(values: list[Any], col: Col) -> pa.Array:
    if col.json:
        return pa.array([_json(v) for v in values], pa.string())
    if col.type == TIMESTAMP:
        return _timestamps(values)
    if pa.types.is_decimal(col.type):
        return pa.array([_decimal(v) for v in values], col.type)
    if pa.types.is_string(col.type):
        return _strings(values, _text)
    try:
        return pa.array(values, col.type)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        # OData JSON may send values as text: Edm.Date, Int64 and Decimal under
        # IEEE754Compatible, "NaN"/"INF"/"-INF" for Edm.Double. Arrow parses the text strictly.
        return _strings(values, _text).cast(col.type)


def _strings(values: list[Any], as_text: Callable[[Any], str | None]) -> pa.Array:
    """Text values as Arrow in one call; only a batch holding a non-text value (a number, a
    list) pays for ``as_text`` on every value."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([as_text(v) for v in values], pa.string())


def _converts(value: Any, col: Col) -> bool:
    try:
        _convert([value], col)
    except _CONVERSION_ERRORS:
        return False
    return True


def _timestamps(values: list[Any]) -> pa.Array:
    text = _strings(values, lambda v: v if v is None or isinstance(v, str) else str(v))
    try:  # ISO 8601 with an offset, as Bizagi writes them, casts as it is
        return text.cast(TIMESTAMP)
    except pa.ArrowInvalid:  # each rewrite below applies only to text this cast refuses
        pass
    text = pc.replace_substring_regex(text, _TICKS, r"\1")
    text = pc.replace_substring_regex(text, _DATE_ONLY, r"\1T00:00:00Z")
    text = pc.replace_substring_regex(text, _NAIVE, r"\1Z")  # naive values are read as UTC
    return text.cast(TIMESTAMP)


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is not a number")
    # repr of a float is its shortest round-trip text: 199.99 stays 199.99, not 199.9899...
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json_text(value)


def _json(value: Any) -> str | None:
    return None if value is None else json_text(value)


def json_text(value: Any) -> str:
    """JSON text of a value; a ``Decimal`` (from an exact page) keeps its exact digits."""
    return orjson.dumps(value, default=_exact_number).decode()


def _exact_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def _undeclared(
    records: Sequence[Record], columns: Sequence[Col], ignore: frozenset[str]
) -> list[Col]:
    """Columns for attributes no declaration names, typed from their values."""
    known = {c.source for c in columns} | ignore
    # Found without a loop over the rows in Python. OData's annotations are not data: a
    # server may annotate every entity (@odata.id, @odata.etag), which made this loop over
    # every attribute of every row, 0.53 ms a page of 1,000 cases.
    sources = sorted(k for k in set().union(*records) - known if not k.startswith("@odata."))
    if not sources:
        return []
    names = unique_names([c.name for c in columns] + sources)[len(columns) :]
    return [
        _inferred(name, source, [r[source] for r in records if source in r])
        for name, source in zip(names, sources, strict=True)
    ]


def _inferred(name: str, source: str, values: list[Any]) -> Col:
    present = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in present) and present:
        return Col(name, source, pa.bool_())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present) and present:
        return Col(name, source, pa.int64())
    if (
        all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in present)
        and present
    ):
        return Col(name, source, pa.float64())
    if all(isinstance(v, str) for v in present):
        return Col(name, source, pa.string())
    return Col(name, source, pa.string(), json=True)  # nested or mixed: JSON text
