"""Identifiers: the names of streams, tables and columns that may go into a path or SQL.

Apart from the schema module so that the warehouse can check names without importing pyarrow.
"""

from __future__ import annotations

import re

from bizagi_etl.connector.errors import SchemaError

_SAFE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_identifier(kind: str, name: str) -> str:
    """Stream and table names: lower-case identifiers only, so no path or SQL can hide in them."""
    if not _SAFE.fullmatch(name):
        raise SchemaError(
            f"{kind} {name!r} is not allowed: use lower-case letters, digits and _ "
            "(at most 63, not starting with a digit)"
        )
    return name
