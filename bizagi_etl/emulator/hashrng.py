"""Counter-based random numbers: every value is a pure function of (seed, stream, key).

The emulator never keeps per-case state it can recompute. A case's parameters, a value of a
parameter entity, a fault on the n-th attempt of a request: each is drawn by hashing its
coordinates, so any slice of a million-row history can be produced on demand, in any order,
vectorised over numpy arrays, and always the same.
"""

from __future__ import annotations

import zlib

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1


def stream_id(name: str) -> int:
    """A stable number for a named purpose (crc32 does not change between Python runs)."""
    return zlib.crc32(name.encode("utf-8"))


def _mix(x: U64) -> U64:
    # splitmix64's finaliser: a bijection on 64 bits with good avalanche.
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def bits(seed: int, stream: str, keys: npt.ArrayLike) -> U64:
    """64 random bits per key."""
    salt = np.uint64((seed * 0x100000001B3 + stream_id(stream)) & _MASK)
    k = np.asarray(keys).astype(np.uint64, copy=False)
    with np.errstate(over="ignore"):
        return _mix(_mix(k * _GOLDEN + salt) ^ salt)


def uniform(seed: int, stream: str, keys: npt.ArrayLike) -> F64:
    """Floats in [0, 1)."""
    return (bits(seed, stream, keys) >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def integers(seed: int, stream: str, keys: npt.ArrayLike, low: int, high: int) -> I64:
    """Integers in [low, high)."""
    span = np.uint64(high - low)
    return (bits(seed, stream, keys) % span).astype(np.int64) + low


def choice(seed: int, stream: str, keys: npt.ArrayLike, weights: npt.ArrayLike) -> I64:
    """Indexes into ``weights``, drawn in proportion to them."""
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    u = uniform(seed, stream, keys) * cumulative[-1]
    return np.searchsorted(cumulative, u, side="right").astype(np.int64)


def uniform_one(seed: int, stream: str, key: int) -> float:
    """One float in [0, 1), for per-request decisions."""
    return float(uniform(seed, stream, np.array([key & _MASK], dtype=np.uint64))[0])


def guids(seed: int, stream: str, keys: npt.ArrayLike) -> list[str]:
    """Lower-case hyphenated GUIDs (version 4 layout), one per key."""
    hi = bits(seed, stream + "/hi", keys)
    lo = bits(seed, stream + "/lo", keys)
    out = []
    for h, low in zip(hi.tolist(), lo.tolist(), strict=True):
        h = (h & ~0xF000) | 0x4000  # version nibble
        low = (low & ~(0xC << 60)) | (0x8 << 60)  # RFC 4122 variant
        x = f"{h:016x}{low:016x}"
        out.append(f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}")
    return out


def guid(seed: int, stream: str, key: int) -> str:
    return guids(seed, stream, [key])[0]
