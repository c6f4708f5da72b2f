"""OData query options built from values, never from pasted strings.

Literals are typed (strings with quotes doubled, DateTimeOffset in UTC, GUIDs bare, numbers
without exponents) and property names are checked, so a value can never change the shape of a
filter. Bizagi decodes ``$filter`` twice (reference §3): ``+`` and ``%`` are encoded twice,
everything else once, which a double-decoding server and a careful reader of logs both accept.
Servers that decode once get the standard encoding (``filter_encoding="standard"``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from decimal import Decimal
from urllib.parse import quote

from bizagi_etl.connector.errors import SettingsError

Literal = str | int | float | Decimal | bool | None | dt.datetime | dt.date | uuid.UUID

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")
_OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")


def literal(value: Literal) -> str:
    """The OData literal for a Python value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise SettingsError(
                f"a DateTimeOffset needs a time zone, got naive {value.isoformat()}"
            )
        utc = value.astimezone(dt.UTC)
        # not strftime: glibc writes year 1 as "1", which no server reads
        text = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc:%H:%M:%S}"
        return f"{text}.{utc.microsecond:06d}Z" if utc.microsecond else f"{text}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        if isinstance(value, float) and not math.isfinite(value):
            raise SettingsError(f"{value!r} has no OData literal")
        return format(Decimal(str(value)), "f")
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise SettingsError(f"no OData literal for {type(value).__name__} {value!r}")


def prop(name: str) -> str:
    """A property path, checked: identifiers separated by '/'."""
    if not _NAME.fullmatch(name):
        raise SettingsError(f"{name!r} is not an OData property name")
    return name


def compare(name: str, operator: str, value: Literal) -> str:
    """``name op literal``, e.g. ``compare("creationDate", "ge", start)``."""
    if operator not in _OPERATORS:
        raise SettingsError(f"operator {operator!r} is not one of {', '.join(_OPERATORS)}")
    return f"{prop(name)} {operator} {literal(value)}"


def all_of(*conditions: str) -> str:
    return " and ".join(f"({c})" if " or " in c else c for c in conditions if c)


def window(name: str, start: dt.datetime, end: dt.datetime) -> str:
    """A half-open time window: start inclusive, end exclusive."""
    if not start < end:
        raise SettingsError(f"window on {name!r}: start {start} must be before end {end}")
    return all_of(compare(name, "ge", start), compare(name, "lt", end))


def encode_filter(text: str, encoding: str = "bizagi") -> str:
    """Percent-encode a $filter: for Bizagi, which decodes it twice (``+`` and ``%`` encoded
    twice), or the standard way, decoded once (``%20`` for a space, never ``+``)."""
    if encoding == "bizagi":
        text = text.replace("%", "%25").replace("+", "%2B")
    return quote(text, safe="'(),:/")


def query_string(options: dict[str, str | int | bool], encoding: str = "bizagi") -> str:
    """A query string with OData options encoded, ``$`` kept readable; ``encoding`` is how
    ``$filter`` is encoded (see ``encode_filter``)."""
    parts = []
    for name, value in options.items():
        if name == "$filter":
            text = encode_filter(str(value), encoding)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = quote(str(value), safe="")
        parts.append(f"{quote(name, safe='$')}={text}")
    return "&".join(parts)
