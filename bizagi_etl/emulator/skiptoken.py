"""``$skiptoken`` of the standard flavour: where the next page starts, opaque to clients.

A token is ``base64url("<offset>.<end>.<mac>")`` without padding, where ``offset`` is the first
row of the next page in served order, ``end`` the row the client's ``$top`` stops at (``-`` for
no limit) and ``mac`` 16 hex digits of an HMAC-SHA256, keyed by the seed, over the offset, the
end, the resource path and the query's other options (decoded once, in the client's order). A
token changed by hand, or sent with another path or other options, is refused with a 400.

The alphabet of base64url needs no percent-encoding, so a token survives any client's URL
handling. Only the standard flavour takes ``$skiptoken``; Bizagi's next links carry ``$skip``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import unquote

from bizagi_etl.emulator.errors import ODataError
from bizagi_etl.emulator.query import QueryOptions

CONSUMED = ("$skip", "$top", "$skiptoken")  # what a token replaces in the next link


class SkipTokens:
    """Makes and reads the tokens of one server (the key comes from the seed)."""

    def __init__(self, seed: int) -> None:
        self._key = hashlib.sha256(f"bizagi-etl emulator skiptoken {seed}".encode()).digest()

    def make(self, path: str, options: QueryOptions, offset: int, end: int | None) -> str:
        head = f"{offset}.{'-' if end is None else end}"
        text = f"{head}.{self._mac(head, path, options)}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    def read(self, path: str, options: QueryOptions, token: str) -> tuple[int, int | None]:
        """(offset, end) of a token this server made for this path and these options."""
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
            offset_text, end_text, mac = text.split(".")
            offset = int(offset_text)
            end = None if end_text == "-" else int(end_text)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _invalid() from None
        head = f"{offset_text}.{end_text}"
        if (
            not offset_text.isdigit()
            or not (end_text == "-" or end_text.isdigit())
            or not hmac.compare_digest(mac, self._mac(head, path, options))
        ):
            raise _invalid()
        return offset, end

    def _mac(self, head: str, path: str, options: QueryOptions) -> str:
        others = "&".join(
            f"{name}={unquote(value)}" for name, _raw, value in options.raw if name not in CONSUMED
        )
        message = f"{head}|{path}|{others}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:16]


def next_link_query(options: QueryOptions, token: str) -> str:
    """The client's options in its own spelling, ``$skip``/``$top`` dropped, the token last."""
    kept = [f"{raw_name}={value}" for name, raw_name, value in options.raw if name not in CONSUMED]
    return "&".join([*kept, f"$skiptoken={token}"])


def _invalid() -> ODataError:
    return ODataError(
        400,
        "The $skiptoken is not valid for this request: send the next link exactly as the "
        "service gave it.",
        target="$skiptoken",
    )
