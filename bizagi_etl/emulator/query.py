"""OData query options as Bizagi takes them, or as a standard OData v4 service does.

Bizagi decodes ``$filter`` values twice: reserved characters are percent-encoded once, and a
``+`` must be sent as ``%252B`` (reference §3). The emulator does the same, so a client that
works against it also works against the real server. The raw query string is kept so the next
link repeats the client's options byte for byte, with only ``$skip`` advanced.

The standard flavour decodes the query once (RFC 3986): ``%2B`` is a plus sign, ``%20`` a space,
and a literal ``+`` is refused with a 400, since servers disagree on whether it means a space.
It also takes ``$skiptoken``, the opaque position its own next links carry (``skiptoken``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from bizagi_etl.emulator.config import Flavor
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
    skiptoken: str | None = None  # standard flavour only: the position a next link carries


def parse_query(query_string: bytes, lenient: bool, flavor: Flavor = "bizagi") -> QueryOptions:
    text = query_string.decode("latin-1")
    standard = flavor == "standard"
    if standard and "+" in text:
        raise ODataError(
            400,
            "A '+' in the query string is ambiguous: this service decodes the query once, so "
            "send a space as %20 and a plus sign as %2B.",
            target=_option_with_plus(text),
        )
    decode = unquote if standard else unquote_plus
    documented = DOCUMENTED | {"$skiptoken"} if standard else DOCUMENTED
    pairs = _split(text)
    seen: dict[str, str] = {}
    for name, _raw_name, raw in pairs:
        if name in seen:
            raise ODataError(
                400, f"The query option {name!r} is specified more than once.", target=name
            )
        seen[name] = raw
        if name.startswith("$") and name not in documented:
            if name in UNDOCUMENTED and lenient:
                continue
            raise ODataError(
                400, f"The query option {name!r} is not supported by this service.", target=name
            )
    filter_text = seen.get("$filter")
    if filter_text is None:
        filter_value = None
    else:  # Bizagi decodes $filter twice, a standard service once
        filter_value = unquote(filter_text) if standard else unquote_plus(unquote_plus(filter_text))
    skiptoken = unquote(seen["$skiptoken"]) if standard and "$skiptoken" in seen else None
    if skiptoken is not None:
        for name in ("$skip", "$top"):
            if name in seen:
                raise ODataError(
                    400,
                    f"{name} cannot be combined with $skiptoken: the token carries the position "
                    "and the limit. Send the next link as it was given.",
                    target=name,
                )
    return QueryOptions(
        top=_non_negative(seen, "$top", decode),
        skip=_non_negative(seen, "$skip", decode) or 0,
        count=_boolean(seen, "$count", decode),
        filter=filter_value,
        raw=tuple(pairs),
        skiptoken=skiptoken,
    )


def _option_with_plus(query: str) -> str:
    for part in query.split("&"):
        if "+" in part:
            return unquote(part.partition("=")[0])
    return "query"


def _split(query: str) -> list[tuple[str, str, str]]:
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote(name), name, value))
    return pairs


def _non_negative(
    options: dict[str, str], name: str, decode: Callable[[str], str] = unquote_plus
) -> int | None:
    if name not in options:
        return None
    text = decode(options[name]).strip()
    if not _DIGITS.fullmatch(text):
        raise ODataError(
            400, f"The value {text!r} of {name} is not a non-negative integer.", target=name
        )
    return int(text)


def _boolean(
    options: dict[str, str], name: str, decode: Callable[[str], str] = unquote_plus
) -> bool:
    text = decode(options.get(name, "false")).strip().lower()
    if text not in ("true", "false"):
        raise ODataError(400, f"The value {text!r} of {name} is not true or false.", target=name)
    return text == "true"


def with_skip(options: QueryOptions, skip: int) -> str:
    """The client's query string with ``$skip`` set, every other option untouched."""
    parts = [f"{raw_name}={v}" for n, raw_name, v in options.raw if n != "$skip"]
    at = next((i for i, (n, _, _) in enumerate(options.raw) if n == "$skip"), 0)
    parts.insert(at, f"$skip={skip}")
    return "&".join(parts)
