"""The CLI's load, in a fresh image of its own process.

Extracting holds pyarrow, httpx and the heap its pages used (glibc keeps what is freed for
later mallocs, and DuckDB allocates with its own jemalloc), so a DuckDB load on top of an
extraction needed the sum of the two, though they never run at once. ``bizagi-etl extract``
therefore, once every stream is in the lake, writes what to load into a plan file and replaces
its own image with ``bizagi-etl land PLAN`` (``os.execve``: the same process, PID, terminal and
exit status), which imports DuckDB but not pyarrow. The process then needs the larger of the
two phases instead of their sum (see the README's Performance section for the numbers).

Only the program does this (``bizagi_etl.cli.program``), on POSIX. A run that an error ends
(network, credentials, a full disk) loads what was extracted in its own process, as the
library's ``run`` does, and then reports the error; and so does a program whose ``execve``
cannot start.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bizagi_etl.pipeline.landing import StreamLoad, ViewPlan, apply_views, land
from bizagi_etl.pipeline.settings import DUCKLAKE
from bizagi_etl.report import out, summary, where_it_landed

log = logging.getLogger(__name__)

PLAN = "plan.json"


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What a load needs, written by the extracting image and read by the loading one. It
    holds paths and settings, never a secret: the loading image reads no Bizagi setting."""

    lake: str
    warehouse: str
    memory_limit: str | None
    data: str | None
    lock_timeout: float
    loads: tuple[StreamLoad, ...]
    views: ViewPlan
    failed: dict[str, str]  # stream -> why it failed, already explained

    def write(self, path: Path) -> None:
        data: dict[str, Any] = {
            "lake": self.lake, "warehouse": self.warehouse, "memory_limit": self.memory_limit,
            "data": self.data, "lock_timeout": self.lock_timeout,
            "loads": [load.to_json() for load in self.loads], "views": self.views.to_json(),
            "failed": self.failed,
        }  # fmt: skip
        path.write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> LoadPlan:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["lake"], data["warehouse"], data["memory_limit"], data["data"],
                   float(data["lock_timeout"]),
                   tuple(StreamLoad.from_json(d) for d in data["loads"]),
                   ViewPlan.from_json(data["views"]), dict(data["failed"]))  # fmt: skip


def possible() -> bool:
    """Whether this platform can replace the process's image with a fresh interpreter."""
    return os.name == "posix" and bool(sys.executable)


def plan_folder(warehouse: str) -> Path:
    """A private folder for the plan and the declared tables' empty files: beside a DuckDB
    file (its runs write there anyway), else in the system's temp folder."""
    parent = Path(warehouse).parent
    beside = None if warehouse.startswith(DUCKLAKE) or not parent.is_dir() else str(parent)
    return Path(tempfile.mkdtemp(prefix=".bizagi-land-", dir=beside))


def hand_over(plan: LoadPlan, folder: Path, *, debug: bool) -> Path:
    """Write the plan in ``folder`` and replace this process with ``bizagi-etl land``; returns
    the plan's path only if the new image could not start (then load it here)."""
    from bizagi_etl.pipeline.lake import finish_replacing

    path = folder / PLAN
    plan.write(path)
    finish_replacing()  # execve runs no atexit handler
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-P", "-m", "bizagi_etl.cli", *(["--debug"] if debug else []),
            "land", str(path)]  # fmt: skip
    try:
        os.execve(sys.executable, argv, _same_code())  # noqa: S606 (our own interpreter)
    except OSError as exc:
        log.warning("could not start the load in a fresh process (%s); loading in this one", exc)
    return path


def _same_code() -> dict[str, str]:
    """The environment, with the folder this ``bizagi_etl`` came from first on the path: the
    loading image runs the same code, not a copy it would find in the working directory (``-P``
    keeps that off the path)."""
    import bizagi_etl

    home = str(Path(bizagi_etl.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": home + (os.pathsep + path if path else "")}


def land_plan(path: Path) -> LoadPlan:
    """Load the plan at ``path``, refresh the views and print what landed; the plan's folder
    is removed whatever happens (a failed load is a rerun of the extraction)."""
    from bizagi_etl.pipeline.warehouse import Warehouse

    plan = LoadPlan.read(path)
    try:
        with Warehouse(plan.warehouse, memory_limit=plan.memory_limit, data=plan.data,
                       lock_timeout=plan.lock_timeout) as warehouse:  # fmt: skip
            loaded = land(warehouse, plan.loads)
            apply_views(warehouse, plan.views)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    out.print(summary(plan.loads, loaded))
    out.print(where_it_landed(plan.lake, plan.warehouse))
    return plan
