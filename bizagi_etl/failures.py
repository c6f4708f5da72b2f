"""One line for every failure a user of the CLI can meet: what failed, where, what to do.

The library raises its own error tree (``bizagi_etl.connector.errors``), which ``diagnose``
explains; the rest comes from the operating system, TLS, DuckDB or a bug, and gets a line that
names the type and says how to see more. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import errno
import ssl

from bizagi_etl.connector import BizagiError, diagnose
from bizagi_etl.connector.errors import excerpt

DEBUG_HINT = "run with --debug (or BIZAGI_LOG_LEVEL=DEBUG) for the traceback"

# errno -> what to do about it
_OS_ADVICE = {
    errno.ENOSPC: "the disk is full: free space or point BIZAGI_LAKE/BIZAGI_WAREHOUSE elsewhere",
    errno.EDQUOT: "the disk quota is used up: free space or point the lake elsewhere",
    errno.EACCES: "permission denied: check who owns the path",
    errno.EPERM: "operation not permitted: check who owns the path",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.ENOTDIR: "a file stands where a folder should be: check BIZAGI_LAKE/BIZAGI_WAREHOUSE",
    errno.EISDIR: "a folder stands where a file should be: check BIZAGI_WAREHOUSE",
    errno.ENOENT: "no such file or folder: check the path",
    errno.ENAMETOOLONG: "the path is too long",
}


def explain(error: BaseException) -> str:
    """One line for any error: what failed and what to do."""
    if isinstance(error, BizagiError):
        return diagnose(error)
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error}; check https vs http, BIZAGI_CA_BUNDLE or BIZAGI_VERIFY_TLS"
    if isinstance(error, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8"
    if isinstance(error, OSError):
        where = f" ({excerpt(str(error.filename))})" if error.filename else ""
        advice = _OS_ADVICE.get(error.errno or 0, error.strerror or str(error))
        return f"{advice}{where}"
    if "duckdb" in type(error).__module__:  # duckdb's errors live in its _duckdb module
        return f"the warehouse (DuckDB) failed: {_first_line(error)}; {DEBUG_HINT}"
    return f"unexpected {type(error).__name__}: {_first_line(error)}; {DEBUG_HINT}"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else "")[:300]
