"""OData query options as Bizagi takes them, and the next link it hands back.

Bizagi decodes ``$filter`` values twice: reserved characters are percent-encoded once, and a
``+`` must be sent as ``%252B`` (reference §3). The emulator does the same, so a client that
works against it also works against the real server. The raw query string is kept so the next
link repeats the client's options byte for byte, with only ``$skip`` advanced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from bizagi_etl.emulator.errors import ODataError

DOCUMENTED = {"$top", "$skip", "$count", "$filter", "$expand", "$format"}
_DIGITS = re.compile(r"[0-9]+")
UNDOCUMENTED = {"$select", "$orderby", "$search", "$apply", "$compute", "$levels", "$skiptoken"}


@dataclass(frozen=True, slots=True)
class QueryOptions:
    top: int | None
    skip: int
    count: bool
    filter: str | None
    raw: tuple[tuple[str, str, str], ...]  # (decoded name, raw name, raw value), client's order


def parse_query(query_string: bytes, lenient: bool) -> QueryOptions:
    pairs = _split(query_string.decode("latin-1"))
    seen: dict[str, str] = {}
    for name, _raw_name, raw in pairs:
        if name in seen:
            raise ODataError(400, f"The query option {name!r} is specified more than once.")
        seen[name] = raw
        if name.startswith("$") and name not in DOCUMENTED:
            if name in UNDOCUMENTED and lenient:
                continue
            raise ODataError(400, f"The query option {name!r} is not supported by this service.")
    filter_text = seen.get("$filter")
    return QueryOptions(
        top=_non_negative(seen, "$top"),
        skip=_non_negative(seen, "$skip") or 0,
        count=_boolean(seen, "$count"),
        filter=unquote_plus(unquote_plus(filter_text)) if filter_text is not None else None,
        raw=tuple(pairs),
    )


def _split(query: str) -> list[tuple[str, str, str]]:
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote(name), name, value))
    return pairs


def _non_negative(options: dict[str, str], name: str) -> int | None:
    if name not in options:
        return None
    text = unquote_plus(options[name]).strip()
    if not _DIGITS.fullmatch(text):
        raise ODataError(400, f"The value {text!r} of {name} is not a non-negative integer.")
    return int(text)


def _boolean(options: dict[str, str], name: str) -> bool:
    text = unquote_plus(options.get(name, "false")).strip().lower()
    if text not in ("true", "false"):
        raise ODataError(400, f"The value {text!r} of {name} is not true or false.")
    return text == "true"


def with_skip(options: QueryOptions, skip: int) -> str:
    """The client's query string with ``$skip`` set, every other option untouched."""
    parts = [f"{raw_name}={v}" for n, raw_name, v in options.raw if n != "$skip"]
    at = next((i for i, (n, _, _) in enumerate(options.raw) if n == "$skip"), 0)
    parts.insert(at, f"$skip={skip}")
    return "&".join(parts)
