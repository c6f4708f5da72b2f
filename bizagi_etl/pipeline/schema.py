"""Column declarations: names safe for files and SQL, and Bizagi's types as Arrow types."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import pyarrow as pa

from bizagi_etl.connector import Property, SchemaError

TIMESTAMP = pa.timestamp("us", tz="UTC")
MONEY = pa.decimal128(19, 4)  # SQL Server's money
DECIMAL = pa.decimal128(38, 12)  # Decimal/Numeric: precision unknown, room on both sides
BOOKKEEPING = ("_partition", "_extracted_at")

# Bizagi data types (reference §3) -> Arrow.
BIZAGI_TYPES: dict[str, pa.DataType] = {
    "BigInt": pa.int64(), "Int": pa.int32(), "SmallInt": pa.int16(), "TinyInt": pa.uint8(),
    "Money": MONEY, "Decimal": DECIMAL, "Numeric": DECIMAL,
    "Float": pa.float64(), "Real": pa.float64(),
    "Boolean": pa.bool_(),
    "DateTime": TIMESTAMP, "SmallDateTime": TIMESTAMP,
    "Char": pa.string(), "VarChar": pa.string(), "Text": pa.string(), "NChar": pa.string(),
    "NVarChar": pa.string(), "NText": pa.string(), "Guid": pa.string(), "Entity": pa.string(),
    "Stakeholder": pa.string(), "Persona": pa.string(), "Collection": pa.string(),
    "Image": pa.string(), "Upload": pa.string(), "Binary": pa.string(), "VarBinary": pa.string(),
}  # fmt: skip

# Names users may write in a streams file -> Arrow.
TYPE_NAMES: dict[str, pa.DataType] = {
    "string": pa.string(), "int64": pa.int64(), "int32": pa.int32(), "int16": pa.int16(),
    "float64": pa.float64(), "bool": pa.bool_(), "boolean": pa.bool_(),
    "timestamp": TIMESTAMP, "decimal": DECIMAL, "money": MONEY, "json": pa.string(),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Col:
    """One column: where its value comes from in a record, and its Arrow type."""

    name: str  # column name in Parquet and DuckDB (safe_name'd)
    source: str  # key in the API record
    type: pa.DataType
    json: bool = False  # nested value kept as JSON text


@functools.lru_cache(maxsize=8192)
def safe_name(text: str) -> str:
    """A lower-case identifier for files and SQL: ``Area (km²)`` -> ``area_km2``."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    folded = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", folded)  # camelCase -> camel_Case
    folded = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", folded)  # EUMember -> EU_Member
    name = re.sub(r"[^0-9a-zA-Z]+", "_", folded).strip("_").lower()
    if not name or name[0].isdigit():
        name = f"c_{name}"
    return name[:63]


def unique_names(names: list[str]) -> list[str]:
    """``safe_name`` each, suffixing repeats and steering clear of bookkeeping columns."""
    out: list[str] = []
    for raw in names:
        base = safe_name(raw)
        if base in BOOKKEEPING:
            base = f"x{base}"
        name, n = base, 2
        while name in out:
            suffix = f"_{n}"
            name, n = f"{base[: 63 - len(suffix)]}{suffix}", n + 1
        out.append(name)
    return out


def arrow_type(type_name: str, where: str) -> pa.DataType:
    try:
        return TYPE_NAMES[type_name]
    except KeyError:
        raise SchemaError(
            f"{where}: unknown column type {type_name!r}; expected one of {', '.join(TYPE_NAMES)}"
        ) from None


# OData's primitive types (CSDL §4.4) -> Arrow, for properties a service's $metadata declares.
# Duration, TimeOfDay and Binary stay text as served (ISO 8601 duration, hh:mm:ss, base64).
EDM_TYPES: dict[str, pa.DataType] = {
    "Edm.DateTimeOffset": TIMESTAMP, "Edm.Date": pa.date32(),
    "Edm.Int64": pa.int64(), "Edm.Int32": pa.int32(), "Edm.Int16": pa.int16(),
    "Edm.Byte": pa.uint8(), "Edm.SByte": pa.int8(),
    "Edm.Double": pa.float64(), "Edm.Single": pa.float32(), "Edm.Boolean": pa.bool_(),
    "Edm.String": pa.string(), "Edm.Guid": pa.string(), "Edm.Duration": pa.string(),
    "Edm.TimeOfDay": pa.string(), "Edm.Binary": pa.string(),
    "Edm.Time": pa.string(),  # CSDL 1-3's duration
}  # fmt: skip
_DECIMAL_INTEGER_DIGITS = DECIMAL.precision - DECIMAL.scale


def edm_arrow_type(prop: Property) -> pa.DataType | None:
    """The Arrow type of a declared property, or ``None``: keep today's typing.

    ``None`` for a nested value (``prop.nested``: a collection, a complex or entity type), which
    callers keep as JSON text (``Col(json=True)``), and for what has no faithful column type
    (``Edm.Untyped``, ``Edm.Stream``, geography and geometry, CSDL 1-3's ``Edm.DateTime``, a type
    the document does not declare), which callers type as before. An enumeration is its
    member names: text.

    ``Edm.Decimal`` (values must never be rounded, a narrower type would reject them):

    - Precision p and Scale s: ``decimal(p, s)``; decimal256 beyond 38 digits, ``None`` beyond
      76 (Arrow's limit). Without Precision (arbitrary): ``decimal(38, s)``.
    - Scale absent: CSDL says 0, yet services omit it while serving fractions, so ``DECIMAL``
      (38, 12) as for Bizagi's own Decimal, or ``decimal(p, 0)`` when p needs more integer
      digits than ``DECIMAL`` has.
    - Scale ``variable`` (up to p of the p digits may follow the point): ``decimal(2p, p)``
      holds every such value exactly; without Precision, ``DECIMAL``.
    - Scale ``floating`` (CSDL 4.01's decimal floating point): no fixed-point type holds its
      exponent range, so ``float64``, which is what the values would be read as anyway.
    """
    if prop.nested:
        return None
    if prop.kind == "enum":
        return pa.string()
    if prop.type == "Edm.Decimal":
        return _decimal_type(prop.precision, prop.scale)
    return EDM_TYPES.get(prop.type) if prop.kind == "primitive" else None


def _decimal_type(precision: int | None, scale: int | str | None) -> pa.DataType | None:
    if scale == "floating":
        return pa.float64()
    if scale is None or scale == "variable":
        if precision is None:
            return DECIMAL
        if scale == "variable":
            return _decimal(2 * precision, precision)
        return DECIMAL if precision <= _DECIMAL_INTEGER_DIGITS else _decimal(precision, 0)
    if not isinstance(scale, int):
        return None
    return _decimal(max(precision if precision is not None else 38, scale, 1), scale)


def _decimal(precision: int, scale: int) -> pa.DataType | None:
    if precision <= 38:
        return pa.decimal128(max(precision, 1), scale)
    if precision <= 76:
        return pa.decimal256(precision, scale)
    return None
