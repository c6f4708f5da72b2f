"""What the lake and the warehouse say of local storage: a folder checked before anything is
written there, an OSError told as what failed, where, why and what to do, and where a
warehouse's short-lived files go.

Kept apart from the lake so that the warehouse imports neither pyarrow nor the lake's
machinery (a process that only loads, see bizagi_etl/handover.py).
"""

from __future__ import annotations

import errno
from pathlib import Path

from bizagi_etl.connector.errors import StorageError
from bizagi_etl.pipeline.settings import DUCKLAKE

_REASONS = {
    errno.ENOSPC: ("the disk is full", "free space there and rerun"),
    errno.EDQUOT: ("the disk quota is used up", "free space there and rerun"),
    errno.EROFS: ("the file system is read-only", "choose a writable place and rerun"),
    errno.EACCES: ("permission denied", "give this user write access there and rerun"),
    errno.EPERM: ("operation not permitted", "give this user write access there and rerun"),
    errno.ENOTDIR: ("a file stands where a folder should be", "choose a folder and rerun"),
    errno.EEXIST: ("a file stands where a folder should be", "choose a folder and rerun"),
    errno.ENOENT: ("a folder there cannot be created or has vanished", "choose a folder and "
                   "rerun"),
}  # fmt: skip


def storage_error(
    subject: str, variable: str, what: str, where: Path | str, exc: OSError, after: str = ""
) -> StorageError:
    """``{subject}: {what} failed at {where}: {reason} ({error}); {after}; {what to do}``."""
    reason, todo = _REASONS.get(exc.errno or 0, (exc.strerror or "", "rerun once fixed"))
    detail = f"{reason} ({exc})" if reason else str(exc)
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.ENOENT, errno.EROFS):
        todo = f"{todo}, or set {variable} elsewhere"
    return StorageError(f"{subject}: {what} failed at {where}: {detail}; "
                        f"{after + '; ' if after else ''}{todo}")  # fmt: skip


def check_folder(folder: Path, subject: str, variable: str, *, own: bool = True) -> None:
    """``folder`` is a folder, or can become one: neither it nor an ancestor is a file.

    ``own``: the folder is the subject's own path (the lake), not the one holding it.
    """
    for place in (folder, *folder.parents):
        try:
            if place.is_dir():
                return
            exists = place.exists()
        except OSError as exc:
            raise storage_error(subject, variable, "checking the path", place, exc) from None
        if exists:
            mine = own and place == folder
            what, instead = ("it", "a folder") if mine else (str(place), "a path under a folder")
            raise StorageError(
                f"{subject}: {what} is a file, not a folder, so nothing can be written there; "
                f"set {variable} to {instead}"
            )


def scratch_home(warehouse: str) -> str | None:
    """Where a warehouse's short-lived files go: beside a DuckDB file (a folder its runs write
    anyway, so no writable system temp folder is needed); for a DuckLake, or a file whose
    folder is not there yet, None: the system's temp folder."""
    parent = Path(warehouse).parent
    return None if warehouse.startswith(DUCKLAKE) or not parent.is_dir() else str(parent)
