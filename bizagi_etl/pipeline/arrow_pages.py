"""Pages of a plain entity set read straight into Arrow, the JSON parsed in C++.

The general path parses a page into Python dicts (exactly, with ``Decimal``, where a column
needs more digits than a double holds), flattens each row and converts column by column:
about 7 ms of Python, holding the GIL, per 1,000-row page of a 16-column entity set. Where a
stream's rows are the entity set's properties as they come (no flattening, no child tables,
no JSON-text columns, one query), pyarrow's JSON reader does all of it from the response's
bytes with the stream's declared types: about 4 ms per page, mostly off the GIL, decimals
exact (they are read from the number's text), and the same table the general path gives
(``tests/test_arrow_pages.py`` holds the two to that).

A page the reader cannot take as declared (an attribute the stream does not declare, a value
of another type, ``"NaN"`` for a double, a body that is not a collection) gives ``None``, and
the caller reads it the general way, which types or rejects it with a message naming the
column.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.json as pj

from bizagi_etl.pipeline.schema import Col
from bizagi_etl.pipeline.streams import FAMILY, Stream

__all__ = ["ArrowPages", "arrow_pages_for"]

ODATA_ID = "@odata.id"


def _wire(type_: pa.DataType) -> pa.DataType | None:
    """How a column's values arrive in JSON, as the reader parses them; None: not read here."""
    if pa.types.is_date(type_):
        return pa.string()  # the reader parses dates from numbers only; text is cast after
    if (
        pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_boolean(type_)
        or pa.types.is_string(type_) or pa.types.is_timestamp(type_)
        or pa.types.is_decimal(type_)
    ):  # fmt: skip
        return type_
    return None


@dataclass(frozen=True, slots=True)
class ArrowPages:
    """Reads one stream's collection pages into tables of its declared columns."""

    columns: tuple[Col, ...]
    options: pj.ParseOptions

    def read(self, body: bytes) -> pa.Table | None:
        """The page's rows with the declared columns, or None when it is not as declared."""
        # The whole body is one JSON object: a block must hold it (the default is 1 MiB).
        whole = pj.ReadOptions(block_size=max(len(body) + 1, 1 << 20))
        try:
            page = pj.read_json(io.BytesIO(body), read_options=whole, parse_options=self.options)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        if page.num_rows != 1 or "value" not in page.column_names:
            return None
        value = page.column("value")[0].values
        if value is None or not pa.types.is_struct(value.type):
            return None
        names = {value.type.field(i).name for i in range(value.type.num_fields)}
        declared = {c.source for c in self.columns}
        if {n for n in names - declared if not n.startswith("@odata.")}:
            return None  # an attribute nothing declares: the general path adds its column
        rows = pa.Table.from_struct_array(value)
        try:
            arrays = [rows.column(c.source).cast(c.type) for c in self.columns]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return pa.Table.from_arrays(arrays, names=[c.name for c in self.columns])


def arrow_pages_for(stream: Stream) -> ArrowPages | None:
    """A reader for the stream's pages, if its rows are its entity set's properties as they
    come; None where the general path must read them."""
    plain = (
        stream.flatten is None and not stream.children and not stream.fan_out
        and stream.kind != FAMILY and stream.columns
        and not any(c.json for c in stream.columns)
    )  # fmt: skip
    if not plain:
        return None
    fields = []
    for col in stream.columns:
        wire = _wire(col.type)
        if wire is None:
            return None
        fields.append(pa.field(col.source, wire))
    rows = pa.struct([*fields, pa.field(ODATA_ID, pa.string())])
    envelope = pa.schema([pa.field("value", pa.list_(rows))])
    options = pj.ParseOptions(explicit_schema=envelope, unexpected_field_behavior="infer",
                              newlines_in_values=True)  # fmt: skip
    return ArrowPages(columns=stream.columns, options=options)
