"""``Claims``: a business entity set with the values real tables hold, in both flavours.

Every value is a pure function of (seed, size, column, claim id), drawn for exactly the rows a
request needs, so the set costs nothing at start-up whatever its size. Rows are served by
ascending id.
The properties (``schema.CLAIM``) cover every scalar type, each with its limits:

- ``amount`` Edm.Decimal(18,4) from -99999999999999.9999 to 99999999999999.9999, 0 and
  0.0001; ``reserveRatio`` Edm.Decimal(5,5) in [-0.99999, 0.99999]. Served as JSON numbers
  with exactly ``scale`` decimals (``12.3400``), so the exact value survives a parser that
  keeps decimals (a binary double does not: 99999999999999.9999 is not one);
- ``score`` Edm.Double: the largest and smallest doubles, a subnormal, 0.30000000000000004;
- ``priorityCode`` Edm.Int16, ``itemCount`` Edm.Int32, ``externalRef`` Edm.Int64 with their
  minimum and maximum (2^63 - 1 is beyond a double's exact integers);
- ``lastModified`` Edm.DateTimeOffset in UTC with milliseconds when there are any (trailing
  zeros dropped), the incremental cursor: many rows share a timestamp and some sit exactly at
  midnight UTC; ``submittedAt`` with offsets from -12:00 to +14:00, ``Z`` and ``+00:00``;
- ``incidentDate`` Edm.Date including 0001-01-01, 1900-01-01 and 9999-12-31;
- ``policyId`` Edm.Guid including the nil GUID; ``policyHolder`` and ``notes`` Edm.String with
  non-BMP text (emoji, CJK extension B), quotes, tabs, CR/LF, a 4,000-character text, the text
  ``"null"``, and ``""`` beside real nulls.

The first rows (ids 1, 2, ...) carry each column's extremes in turn, so even a small set has
them all; further extremes are scattered through the rest.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from bizagi_etl.emulator import hashrng, vocab
from bizagi_etl.emulator.schema import CLAIM, Prop

I64 = npt.NDArray[np.int64]
Column = tuple[np.ndarray, np.ndarray]  # (values, null mask)
Record = dict[str, Any]
FIRST_CLAIM_ID = 1
PROPS: dict[str, Prop] = {p.name: p for p in CLAIM}

STATUSES = ("Open", "In review", "Approved", "Rejected", "Paid", "Closed")
NIL_GUID = "00000000-0000-0000-0000-000000000000"
MAX_GUID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DOUBLE_MAX = 1.7976931348623157e308

# (minutes east of UTC, how the offset is written)
SUBMIT_OFFSETS = (
    (0, "Z"), (0, "+00:00"), (-720, "-12:00"), (-570, "-09:30"), (-300, "-05:00"),
    (-180, "-03:00"), (60, "+01:00"), (330, "+05:30"), (345, "+05:45"), (525, "+08:45"),
    (780, "+13:00"), (840, "+14:00"),
)  # fmt: skip
_OFFSET_MINUTES = np.array([m for m, _ in SUBMIT_OFFSETS], dtype=np.int64)

TRICKY_TEXT = (
    "🚀 launch day", "東京都千代田区", "𠮷野家 (CJK extension B)", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 fraktur",
    "👩‍💻 zero-width joiner", "🇨🇴 flag", "O'Brien", 'she said "yes"', "both ' and \"",
    "col1\tcol2\tcol3", "line 1\nline 2", "line 1\r\nline 2", "  padded  ", "C:\\claims\\2025",
    "e\u0301 (combining accent)", "line\u2028separator", '{"looks": "like JSON"}', "null",
    "N/A", "a, b; c", "%20 and + and %2B", "'; DROP TABLE claims; --", "Ærøskøbing – naïve café",
    "مرحبا بالعالم", "Привет, мир",
    "4000 characters: " + ("Ωmega 🚀 \"q\" 'x'\t" * 250)[: 4000 - len("4000 characters: ")],
)  # fmt: skip

# Per column: values the first rows carry, and that 2 % of the others draw.
EXTREMES: dict[str, tuple[Any, ...]] = {
    "amount": (10**18 - 1, -(10**18 - 1), 0, 1, -1, 123456789012345678, 10_000),
    "reserveRatio": (99_999, -99_999, 0, 1, -1),
    "score": (DOUBLE_MAX, -DOUBLE_MAX, 5e-324, 2.2250738585072014e-308, 0.1 + 0.2, -1e-300, 0.0),
    "priorityCode": (-32_768, 32_767, 0),
    "itemCount": (-2_147_483_648, 2_147_483_647, 0),
    "externalRef": (INT64_MIN, INT64_MAX, 0, 2**53 + 1),
    # Days since 1970-01-01: 0001-01-01, 1900-01-01, 1970-01-01, 9999-12-31, 2000-02-29.
    "incidentDate": (-719_162, -25_567, 0, 2_932_896, 11_016),
    "policyId": (NIL_GUID, MAX_GUID),
    "notes": TRICKY_TEXT,
    "policyHolder": TRICKY_TEXT[:12],
}
NULL_SHARE = {
    "policyHolder": 0.04, "reserveRatio": 0.10, "score": 0.08, "priorityCode": 0.05,
    "externalRef": 0.10, "approved": 0.30, "incidentDate": 0.10, "notes": 0.10,
}  # fmt: skip
EMPTY_SHARE = {"policyHolder": 0.03, "notes": 0.08}  # "" beside null


class Claims:
    """``size`` claims whose history runs over [``start``, ``end``) (UTC seconds)."""

    def __init__(self, seed: int, size: int, start: int, end: int) -> None:
        self.seed = seed
        self.size = size
        self.start = start
        self.end = end
        self.days = max(1, (end - start) // 86_400)

    def positions(self) -> I64:
        return np.arange(self.size, dtype=np.int64)

    def position_of(self, claim_id: int) -> int | None:
        position = claim_id - FIRST_CLAIM_ID
        return position if 0 <= position < self.size else None

    # -- raw columns ---------------------------------------------------------------------------

    def column(self, name: str, positions: I64) -> Column:
        """One property for some rows: (values, nulls) in its raw form.

        Int types: int64; decimals: int64 scaled by 10**scale; doubles: float64; booleans: bool;
        ``lastModified``: UTC microseconds; ``submittedAt``: UTC seconds; ``incidentDate``: days
        since 1970-01-01; strings and GUIDs: objects.
        """
        keys = positions.astype(np.int64) + FIRST_CLAIM_ID
        values = self._draw(name, keys)
        nulls = np.zeros(len(keys), dtype=bool)
        extremes = EXTREMES.get(name)
        forced = np.zeros(len(keys), dtype=bool)
        if extremes is not None:
            values, forced = self._extremes(name, keys, values, extremes)
        share = NULL_SHARE.get(name, 0.0)
        if share:
            u = hashrng.uniform(self.seed, f"claim/{name}/null", keys)
            nulls = (u < share) & ~forced
            empty = (u >= share) & (u < share + EMPTY_SHARE.get(name, 0.0)) & ~forced
            if empty.any():
                values = values.copy()
                values[empty] = ""
            if values.dtype == object:
                values = values.copy()
                values[nulls] = None
        return values, nulls

    def submitted_offsets(self, positions: I64) -> I64:
        """Index into SUBMIT_OFFSETS of each row's ``submittedAt``."""
        keys = positions.astype(np.int64) + FIRST_CLAIM_ID
        return hashrng.integers(self.seed, "claim/submittedAt/offset", keys, 0, len(SUBMIT_OFFSETS))

    def _extremes(
        self, name: str, keys: I64, values: np.ndarray, extremes: tuple[Any, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        first = keys - FIRST_CLAIM_ID < len(extremes)
        scattered = hashrng.uniform(self.seed, f"claim/{name}/extreme", keys) < 0.02
        forced = first | scattered
        if not forced.any():
            return values, forced
        pick = np.where(
            first,
            keys - FIRST_CLAIM_ID,
            hashrng.integers(self.seed, f"claim/{name}/extreme/pick", keys, 0, len(extremes)),
        )
        table = np.array(extremes, dtype=values.dtype)
        values = values.copy()
        values[forced] = table[pick[forced]]
        return values, forced

    def _draw(self, name: str, keys: I64) -> np.ndarray:
        seed, stream = self.seed, f"claim/{name}"
        if name == "id":
            return keys.copy()
        if name == "claimNumber":
            return np.array([f"CLM-{k:07d}" for k in keys.tolist()], dtype=object)
        if name == "status":
            picks = hashrng.integers(seed, stream, keys, 0, len(STATUSES))
            return np.array(STATUSES, dtype=object)[picks]
        if name == "lastModified":
            return self._last_modified(keys)
        if name == "submittedAt":
            day = hashrng.integers(seed, stream + "/day", keys, 0, self.days)
            return self.start + day * 86_400 + hashrng.integers(seed, stream, keys, 0, 86_400)
        if name == "policyId":  # about three claims per policy
            policy = hashrng.integers(seed, stream + "/policy", keys, 0, max(1, self.size // 3))
            return np.array(hashrng.guids(seed, stream, policy), dtype=object)
        if name == "policyHolder":
            first = hashrng.integers(seed, stream + "/f", keys, 0, len(vocab.FIRST_NAMES))
            last = hashrng.integers(seed, stream + "/l", keys, 0, len(vocab.LAST_NAMES))
            return np.array(
                [
                    f"{vocab.FIRST_NAMES[a]} {vocab.LAST_NAMES[b]}"
                    for a, b in zip(first.tolist(), last.tolist(), strict=True)
                ],
                dtype=object,
            )
        if name == "amount":  # mostly cents, some with four decimals
            raw = hashrng.integers(seed, stream, keys, -2 * 10**10, 5 * 10**11)
            cents = hashrng.uniform(seed, stream + "/cents", keys) < 0.7
            return np.where(cents, raw - raw % 100, raw)
        if name == "reserveRatio":
            return hashrng.integers(seed, stream, keys, -99_999, 100_000)
        if name == "score":
            return (hashrng.uniform(seed, stream, keys) * 2000 - 500).astype(np.float64)
        if name == "priorityCode":
            return hashrng.integers(seed, stream, keys, 1, 6)
        if name == "itemCount":
            return hashrng.integers(seed, stream, keys, 0, 501)
        if name == "externalRef":
            return hashrng.integers(seed, stream, keys, 1, 9 * 10**15)
        if name == "approved":
            return hashrng.uniform(seed, stream, keys) < 0.45
        if name == "incidentDate":
            submitted = self._draw("submittedAt", keys) // 86_400
            return submitted - hashrng.integers(seed, stream, keys, 0, 400)
        if name == "notes":
            texts = np.array(TRICKY_TEXT, dtype=object)[
                hashrng.integers(seed, stream + "/tricky", keys, 0, len(TRICKY_TEXT))
            ]
            words = hashrng.integers(seed, stream + "/w", keys, 0, len(vocab.WORDS)).tolist()
            plain = np.array([f"Claim note: {vocab.WORDS[w]}" for w in words], dtype=object)
            return np.where(hashrng.uniform(seed, stream, keys) < 0.4, texts, plain)
        raise KeyError(name)

    def _last_modified(self, keys: I64) -> I64:
        """UTC microseconds: 6 % at midnight, 30 % in batches sharing one instant, others any
        millisecond (half of them on a whole second)."""
        seed, stream = self.seed, "claim/lastModified"
        mode = hashrng.uniform(seed, stream + "/mode", keys)
        day = hashrng.integers(seed, stream + "/day", keys, 0, self.days)
        ms = hashrng.integers(seed, stream + "/ms", keys, 0, 86_400_000)
        whole = hashrng.uniform(seed, stream + "/whole", keys) < 0.5
        ms = np.where(whole, ms - ms % 1000, ms)
        batch = hashrng.integers(seed, stream + "/batch", keys, 0, max(1, self.size // 25))
        batch_day = hashrng.integers(seed, stream + "/batch/day", batch, 0, self.days)
        batch_ms = hashrng.integers(seed, stream + "/batch/ms", batch, 0, 86_400_000)
        day = np.where(mode < 0.36, np.where(mode < 0.06, day, batch_day), day)
        ms = np.where(mode < 0.06, 0, np.where(mode < 0.36, batch_ms, ms))
        return (self.start + day * 86_400) * 1_000_000 + ms * 1000

    # -- what the HTTP layer serves ------------------------------------------------------------

    def records(self, base: str, positions: I64) -> list[Record]:
        columns = {p.name: self.json_column(p.name, positions) for p in CLAIM}
        ids = columns["id"]
        return [
            {
                "@odata.id": f"{base}/odata/data/Claims({ids[j]})",
                **{name: values[j] for name, values in columns.items()},
            }
            for j in range(len(positions))
        ]

    def json_column(self, name: str, positions: I64) -> list[Any]:
        """One property as JSON values; decimals as ``Decimal`` (the serializer writes them)."""
        values, nulls = self.column(name, positions)
        prop = PROPS[name]
        out: list[Any]
        if name == "lastModified":
            out = _utc_text(values)
        elif name == "submittedAt":
            out = _local_text(values, self.submitted_offsets(positions))
        elif prop.edm == "Edm.Decimal":
            scale = -(prop.scale or 0)
            out = [Decimal(v).scaleb(scale) for v in values.tolist()]
        elif prop.edm == "Edm.Date":
            out = np.datetime_as_string(values.astype("datetime64[D]")).tolist()
        else:
            out = values.tolist()
        return [None if null else v for v, null in zip(out, nulls.tolist(), strict=True)]

    def filter_column(self, name: str, positions: I64) -> Column | None:
        """A property as ``filters`` compares it: date-times in UTC microseconds, dates in days,
        decimals as doubles, strings with nulls as ""."""
        if name not in PROPS:
            return None
        values, nulls = self.column(name, positions)
        prop = PROPS[name]
        if name == "submittedAt":
            values = values * 1_000_000
        elif prop.edm == "Edm.Decimal":
            values = values / 10 ** (prop.scale or 0)
        elif values.dtype == object:
            values = np.where(nulls, "", values)
        return values, nulls


def _utc_text(micros: I64) -> list[str]:
    """``2025-03-04T10:11:12.34Z``: milliseconds without trailing zeros, none on a whole second."""
    text = np.datetime_as_string(micros.astype("datetime64[us]"), unit="ms").tolist()
    out = []
    for t in text:
        whole, _, fraction = t.partition(".")
        fraction = fraction.rstrip("0")
        out.append(f"{whole}.{fraction}Z" if fraction else f"{whole}Z")
    return out


def _local_text(seconds: I64, codes: I64) -> list[str]:
    """Local wall time and its offset, as ``2025-03-04T15:41:12+05:30``."""
    local = seconds + _OFFSET_MINUTES[codes] * 60
    text = np.datetime_as_string(local.astype("datetime64[s]"), unit="s").tolist()
    return [f"{t}{SUBMIT_OFFSETS[c][1]}" for t, c in zip(text, codes.tolist(), strict=True)]
