"""The CLI's load, in a fresh image of its own process.

Extracting holds pyarrow, httpx and the heap its pages used (glibc keeps what is freed for
later mallocs, and DuckDB allocates with its own jemalloc), so a DuckDB load on top of an
extraction needed the sum of the two, though they never run at once. ``bizagi-etl extract``
therefore, once every stream is in the lake, writes what to load into a plan file and replaces
its own image with ``bizagi-etl land PLAN`` (``os.execv``: the same process, PID, terminal and
exit status, the same interpreter with the options multiprocessing passes on and ``sys.path``),
which imports DuckDB but not pyarrow. The process then needs the larger of the two phases
instead of their sum (see the README's Performance section for the numbers).

Only the program does this (``bizagi_etl.cli.program``), on POSIX. A run that an error ends
(network, credentials, a full disk) loads what was extracted in its own process, as the
library's ``run`` does, and then reports the error; and so does a program whose ``execv``
cannot start. The files a plan names are loaded as they are when the load runs: a second run
that rewrote the same partitions meanwhile makes that load fail or take its version, as a
load right after its extraction could, only over a longer time for a run of many streams.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bizagi_etl import __version__
from bizagi_etl.connector.errors import SettingsError
from bizagi_etl.pipeline.landing import StreamLoad, ViewPlan, apply_views, land
from bizagi_etl.pipeline.storage import scratch_home
from bizagi_etl.report import out, summary, where_it_landed

log = logging.getLogger(__name__)

PLAN = "plan.json"
FOLDER_PREFIX = ".bizagi-land-"  # a plan's folder, which landing it removes
STALE = 24 * 3600.0  # a plan's folder this old is a killed load's: the next run removes it
# The loading image's start: the extracting image's sys.path (not the working folder's, nor
# whatever a wrapper or PYTHONPATH would give a new interpreter), then the program as itself.
_BOOT = ("import json, sys; sys.path[:] = json.loads(sys.argv.pop(1)); "
         "sys.argv[0] = 'bizagi-etl'; from bizagi_etl.cli import program; program()")  # fmt: skip


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
            "version": __version__, "lake": self.lake, "warehouse": self.warehouse,
            "memory_limit": self.memory_limit, "data": self.data,
            "lock_timeout": self.lock_timeout,
            "loads": [load.to_json() for load in self.loads], "views": self.views.to_json(),
            "failed": self.failed,
        }  # fmt: skip
        path.write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> LoadPlan:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != __version__:
            raise SettingsError(f"{path}: a load plan of bizagi-etl {data.get('version')!r}, "
                                f"not of this {__version__!r}; rerun the extraction")  # fmt: skip
        return cls(data["lake"], data["warehouse"], data["memory_limit"], data["data"],
                   float(data["lock_timeout"]),
                   tuple(StreamLoad.from_json(d) for d in data["loads"]),
                   ViewPlan.from_json(data["views"]), dict(data["failed"]))  # fmt: skip


def possible() -> bool:
    """Whether this process can replace its image with a fresh interpreter of its own: on
    POSIX, from a Python (a frozen program's executable is the program itself)."""
    return os.name == "posix" and bool(sys.executable) and not getattr(sys, "frozen", False)


def plan_folder(warehouse: str) -> Path:
    """A private folder for the plan and the declared tables' empty files, where the
    warehouse keeps its own short-lived files (``storage.scratch_home``)."""
    home = Path(scratch_home(warehouse) or tempfile.gettempdir())
    for old in home.glob(f"{FOLDER_PREFIX}*"):  # a load that was killed left it
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > STALE:
                shutil.rmtree(old)
    return Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=home))


def hand_over(plan: LoadPlan, folder: Path, *, debug: bool) -> Path:
    """Write the plan in ``folder`` and replace this process with ``bizagi-etl land``; returns
    the plan's path only if the new image could not start (then load it here)."""
    from bizagi_etl.pipeline.lake import finish_replacing

    path = folder / PLAN
    try:
        plan.write(path)
        finish_replacing()  # exec runs no atexit handler
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    argv = [sys.executable, *_interpreter_options(), "-P", "-c", _BOOT, json.dumps(sys.path),
            *(["--debug"] if debug else []), "land", str(path)]  # fmt: skip
    try:
        os.execv(sys.executable, argv)  # noqa: S606 (our own interpreter, no shell)
    except OSError as exc:
        log.warning("could not start the load in a fresh process (%s); loading in this one", exc)
    return path


def _interpreter_options() -> list[str]:
    """This interpreter's options (-X, -W, -O...) as multiprocessing passes them on to its
    children; none where the standard library's helper is missing or refuses (the load then
    runs without them rather than not at all)."""
    try:
        options = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    except Exception as exc:  # a private helper: any failure means none
        log.debug("the loading image starts without this interpreter's options: %s", exc)
        return []
    # An empty warning filter (python -W '') comes back as a bare -W, which would take the
    # next option as its value.
    return [str(o) for o in options if o != "-W"]


def land_plan(path: Path) -> LoadPlan:
    """Load the plan at ``path``, refresh the views and print what landed; the plan's folder
    is removed whatever happens (a failed load is a rerun of the extraction)."""
    from bizagi_etl.pipeline.warehouse import Warehouse

    if path.name != PLAN or not path.parent.name.startswith(FOLDER_PREFIX):
        raise SettingsError(f"{path} is not a load plan: expected {FOLDER_PREFIX}*/{PLAN}, as "
                            f"bizagi-etl extract writes and lands itself")  # fmt: skip
    try:
        plan = LoadPlan.read(path)
        with Warehouse(plan.warehouse, memory_limit=plan.memory_limit, data=plan.data,
                       lock_timeout=plan.lock_timeout) as warehouse:  # fmt: skip
            loaded = land(warehouse, plan.loads)
            apply_views(warehouse, plan.views)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    out.print(summary(plan.loads, loaded))
    out.print(where_it_landed(plan.lake, plan.warehouse))
    return plan
