"""Column declarations: names safe for files and SQL, and Bizagi's types as Arrow types."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import pyarrow as pa

from bizagi_etl.connector import SchemaError

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

_SAFE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


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


def check_identifier(kind: str, name: str) -> str:
    """Stream and table names: lower-case identifiers only, so no path or SQL can hide in them."""
    if not _SAFE.fullmatch(name):
        raise SchemaError(
            f"{kind} {name!r} is not allowed: use lower-case letters, digits and _ "
            "(at most 63, not starting with a digit)"
        )
    return name


def arrow_type(type_name: str, where: str) -> pa.DataType:
    try:
        return TYPE_NAMES[type_name]
    except KeyError:
        raise SchemaError(
            f"{where}: unknown column type {type_name!r}; expected one of {', '.join(TYPE_NAMES)}"
        ) from None
