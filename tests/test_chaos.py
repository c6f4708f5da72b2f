"""Chaos: the real CLI killed with SIGKILL during a backfill and during its load, two CLI runs at
once on one lake and one warehouse, and servers that echo credentials under a persistent Dagster
instance whose every stored byte is searched.

Everything is real: ``python -m bizagi_etl.cli`` subprocesses, DuckDB, Parquet, Dagster's SQLite
storage and compute logs. Servers run in this process on 127.0.0.1; expected rows come from the
emulator's ground truth (``export_truth``), never from the code under test.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import pytest
from conftest import SMALL, presented_credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bizagi_etl.emulator import EmulatorServer
from bizagi_etl.emulator.server import AsgiServer
from bizagi_etl.emulator.truth import export_truth
from bizagi_etl.pipeline.lake import RETIRED
from dagster_project.defs.assets import stream_assets
from dagster_project.defs.resources import BizagiResource, LakehouseResource, bizagi_from_env
from dagster_project.translator import catalog

# Kills aimed at phases timed beforehand: make test runs this file alone, after the others.
pytestmark = pytest.mark.timing

ROOT = Path(__file__).resolve().parent.parent
START, END = dt.date(2026, 5, 1), dt.date(2026, 6, 30)  # 60 days, ~320 cases
# 30 ms a request, pages of 10 rows and two requests at a time: a run lasts ~2 s, of which
# ~0.5 s writes the lake while pages still arrive and ~0.15 s loads DuckDB (the rest is start-up).
LATENCY_MS = 30
SEED = 20261129
KILLS = 6


# -- the emulator, its truth, and the CLI as a subprocess ---------------------------------------


@pytest.fixture(scope="module")
def slow_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(dataclasses.replace(SMALL, latency_ms=LATENCY_MS)) as server:
        yield server


@pytest.fixture(scope="module")
def truth(slow_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("chaos-truth")
    assert slow_server.emulated is not None
    export_truth(slow_server.emulated.ds, folder)
    return {name: pd.read_parquet(folder / f"{name}.parquet")
            for name in ("cases", "case_parameters")}  # fmt: skip


def cli_env(server: EmulatorServer, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIZAGI_", "DAGSTER_"))}
    return env | {
        "BIZAGI_BASE_URL": server.base_url,
        "BIZAGI_CLIENT_ID": server.client_id,
        "BIZAGI_CLIENT_SECRET": server.client_secret,
        "BIZAGI_LAKE": str(folder / "lake"),
        "BIZAGI_WAREHOUSE": str(folder / "w.duckdb"),
        "BIZAGI_PAGE_SIZE": "10",
        "BIZAGI_MAX_CONCURRENCY": "2",
        "BIZAGI_MAX_BACKOFF": "0.2",
        "BIZAGI_LOCK_TIMEOUT": "60",
        # a kill while Python writes a .pyc would leave a temporary file in the repository
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def extract(env: dict[str, str], start: dt.date = START, end: dt.date = END) -> subprocess.Popen:
    command = [sys.executable, "-m", "bizagi_etl.cli", "extract", "cases",
               "--start", start.isoformat(), "--end", end.isoformat()]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


class Watch:
    """What a CLI process is doing, from the files it holds open (``/proc/PID/fd``): ``load``
    with the warehouse open (DuckDB's file or its WAL), ``lake`` with a lake file open (a table's
    lock, held while a partition is being written, or a Parquet file), else ``fetch`` (starting
    up, reading pages, or between two partitions); ``done`` once it has exited. ``wrote`` and
    ``loaded`` tell whether it has been seen writing the lake, and loading, so far."""

    def __init__(self, process: subprocess.Popen, folder: Path) -> None:
        self.process = process
        self.lake = str(folder / "lake") + "/"
        self.warehouse = str(folder / "w.duckdb")
        self.began = time.monotonic()
        self.wrote = False
        self.loaded = False
        self.wal = False  # DuckDB's WAL open at the last look

    def phase(self) -> str:
        if self.process.poll() is not None:
            return "done"
        files = []
        fds = f"/proc/{self.process.pid}/fd"
        try:
            for fd in os.listdir(fds):
                try:
                    files.append(os.readlink(f"{fds}/{fd}"))
                except OSError:
                    continue  # closed meanwhile
        except OSError:
            return "done"
        self.wal = f"{self.warehouse}.wal" in files
        if any(f.startswith(self.warehouse) for f in files):
            self.loaded = True
            return "load"
        if any(f.startswith(self.lake) for f in files):
            self.wrote = True
            return "lake"
        return "fetch"

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def until(self, phases: tuple[str, ...], timeout: float = 30.0) -> str:
        """Poll (every 2 ms) until the process is in one of ``phases`` or has exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            phase = self.phase()
            if phase in (*phases, "done"):
                return phase
            time.sleep(0.002)
        raise AssertionError(f"still not in {phases} after {timeout} s")


@dataclasses.dataclass(frozen=True)
class Timing:
    lake: float  # seconds from start until the lake is first written
    load: float  # ... until the warehouse is first opened
    load_end: float  # ... last seen open
    end: float  # ... until the process exited


def calibrate(server: EmulatorServer, folder: Path) -> Timing:
    """One whole run, watched: when it writes the lake, loads, ends."""
    watch = Watch(extract(cli_env(server, folder)), folder)
    seen: dict[str, list[float]] = {"lake": [], "load": []}
    while (phase := watch.phase()) != "done":
        if phase in seen:
            seen[phase].append(watch.elapsed())
        time.sleep(0.002)
    end = watch.elapsed()
    _, err = watch.process.communicate(timeout=30)
    assert watch.process.returncode == 0, err
    assert seen["lake"], f"never seen writing the lake: {seen}"
    assert seen["load"], f"never seen loading: {seen}"
    return Timing(min(seen["lake"]), min(seen["load"]), max(seen["load"]), end)


# -- what the warehouse and the lake must hold ----------------------------------------------------


def truth_by_day(truth: dict, start: dt.date, end: dt.date) -> tuple[dict, dict]:
    """Case ids per day and (case_id, position) of their parameters per day, for [start, end);
    a case's day is its creation day in UTC."""
    cases = truth["cases"]
    lo, hi = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    window = cases[(cases.creation_utc >= lo) & (cases.creation_utc < hi)]
    day_of = dict(zip(window.id.astype(int), window.creation_utc.dt.strftime("%Y-%m-%d"),
                      strict=True))  # fmt: skip
    ids: dict[str, list[int]] = {}
    for case_id, day in day_of.items():
        ids.setdefault(day, []).append(case_id)
    params = truth["case_parameters"]
    chosen = params[params.case_id.isin(set(day_of))]
    by_day: dict[str, list[tuple[int, int]]] = {}
    for case_id, position in zip(chosen.case_id.astype(int), chosen.position.astype(int),
                                 strict=True):  # fmt: skip
        by_day.setdefault(day_of[case_id], []).append((case_id, position))
    return ({d: sorted(v) for d, v in ids.items()}, {d: sorted(v) for d, v in by_day.items()})


def landed_by_day(warehouse: Path) -> tuple[dict, dict, tuple[int, int], tuple[int, int]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cases = con.execute("SELECT _partition, id FROM bizagi.cases").fetchall()
        params = con.execute(
            "SELECT _partition, case_id, position FROM bizagi.case_parameters"
        ).fetchall()
        distinct = con.execute("SELECT count(*), count(DISTINCT id) FROM bizagi.cases").fetchone()
        distinct_params = con.execute(
            "SELECT count(*), count(DISTINCT (case_id, position)) FROM bizagi.case_parameters"
        ).fetchone()
    finally:
        con.close()
    ids: dict[str, list[int]] = {}
    for day, case_id in cases:
        ids.setdefault(day, []).append(case_id)
    by_day: dict[str, list[tuple[int, int]]] = {}
    for day, case_id, position in params:
        by_day.setdefault(day, []).append((case_id, position))
    assert distinct is not None
    assert distinct_params is not None
    return ({d: sorted(v) for d, v in ids.items()}, {d: sorted(v) for d, v in by_day.items()},
            distinct, distinct_params)  # fmt: skip


def assert_truth(folder: Path, truth: dict, start: dt.date, end: dt.date, why: str = "") -> None:
    expected_ids, expected_params = truth_by_day(truth, start, end)
    ids, params, (rows, distinct), (param_rows, distinct_params) = landed_by_day(
        folder / "w.duckdb"
    )
    assert rows == distinct, f"{rows - distinct} duplicate case ids{why}"
    assert param_rows == distinct_params, f"duplicate case parameters{why}"
    wrong = sorted(d for d in expected_ids.keys() | ids.keys() if ids.get(d) != expected_ids.get(d))
    assert not wrong, (
        f"cases differ from the truth on {len(wrong)} days, e.g. {wrong[:3]}: "
        f"{[(len(ids.get(d, [])), len(expected_ids.get(d, []))) for d in wrong[:3]]} "
        f"(landed, truth){why}"
    )
    wrong = sorted(
        d for d in expected_params.keys() | params.keys() if params.get(d) != expected_params.get(d)
    )
    assert not wrong, f"case_parameters differ from the truth on days {wrong[:5]}{why}"
    assert sum(map(len, ids.values())) > 300, "a real window: hundreds of cases"


def assert_no_debris(folder: Path, why: str = "") -> None:
    lake = folder / "lake"
    staging = lake / "_staging"
    # The lake keeps one (empty) staging folder per table, and one for the versions a write
    # replaced, which a run deletes a moment later, before it exits: nothing may be inside.
    left = [p for p in staging.rglob("*") if p.parent != staging or not p.is_dir()]
    assert not left, f"left in {staging}: {sorted(map(str, left))[:10]}{why}"
    stray = [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".old", ".wal"))]
    # DuckDB checkpoints when the last connection closes and removes its WAL; a run that ended
    # with exit 0 closed it, so a WAL left here would be one a killed load wrote that no later
    # run replayed (or a run that did not close the warehouse).
    assert not stray, f"stray files: {sorted(map(str, stray))}{why}"
    for table in ("cases", "case_parameters"):
        entries = sorted(p.name for p in (lake / table).iterdir())
        assert entries, table
        strays = [e for e in entries if not re.fullmatch(r"day=\d{4}-\d{2}-\d{2}", e)]
        assert not strays, f"{table}: {strays}{why}"
        for partition in (lake / table).iterdir():
            names = [p.name for p in partition.iterdir()]
            assert all(re.fullmatch(r"part-\d{5}\.parquet", n) for n in names), (partition, names)
    locks = sorted(p.name for p in (lake / "_locks").iterdir())
    assert all(n.endswith((".lock", ".swap")) for n in locks), locks
    assert sorted(p.name for p in lake.iterdir()) == ["_locks", "_staging", "case_parameters",
                                                      "cases"], why  # fmt: skip


# -- 1. kill -9 during the backfill and during the load, then a rerun --------------------------

# What each kill aims at, and when it counts as landed (else the run is killed again).
# anytime: a random moment of the run, start-up included; lake: a random moment of the lake
# writes, then the next partition in its staging folder (left behind for the next run to sweep);
# load: a random moment while the warehouse is open; wal: just after DuckDB has created its WAL
# (a committed load not yet checkpointed, which the next run must replay).
AIMS = ["anytime", "anytime", "lake", "lake", "load", "wal"]
ATTEMPTS = 4


@dataclasses.dataclass
class Kill:
    aim: str
    delay: float  # seconds after the aimed moment
    phase: str  # fetch (start-up, pages), extract (writing the lake), load, between loads, done
    at: float  # seconds after the process started
    staged: int  # partitions this run left in the lake's staging (half written, never swapped)
    wal: bool  # a DuckDB WAL was left next to the warehouse

    @property
    def landed(self) -> bool:
        return {
            "anytime": self.phase != "done",
            "lake": self.staged > 0,
            "load": self.phase == "load",
            "wal": self.phase == "load" and self.wal,
        }[self.aim]

    def __str__(self) -> str:
        wal = ", WAL left" if self.wal else ""
        return (f"{self.aim}+{self.delay:.3f}s -> {self.phase} at {self.at:.2f}s, "
                f"{self.staged} left in staging{wal}")  # fmt: skip


def staged(folder: Path) -> set[Path]:
    """Partitions in the lake's staging: being written, or left there by a killed run."""
    staging = folder / "lake" / "_staging"
    found = staging.glob("*/*") if staging.exists() else []
    return {p for p in found if not p.parent.name.endswith(RETIRED)}  # not a replaced version


def kill_once(server: EmulatorServer, folder: Path, aim: str, timing: Timing,
              draw: random.Random) -> Kill:  # fmt: skip
    """Start the backfill, wait for the aimed moment plus a seeded random delay, SIGKILL it."""
    stale = staged(folder)  # left by earlier kills: the run sweeps them as it starts writing
    watch = Watch(extract(cli_env(server, folder)), folder)
    wal_file = folder / "w.duckdb.wal"

    def wait(seconds: float) -> None:
        until = watch.elapsed() + seconds
        while watch.elapsed() < until and watch.phase() != "done":
            time.sleep(0.002)

    try:
        if aim == "anytime":
            delay = draw.uniform(0.2, timing.end)
            wait(delay)
        elif aim == "lake":
            delay = draw.uniform(0.0, max(0.05, timing.load - timing.lake))
            watch.until(("lake", "load"))
            wait(delay)
            while not staged(folder) - stale and watch.phase() in ("fetch", "lake"):
                time.sleep(0.0005)  # until the next partition is in staging
        elif aim == "load":
            delay = draw.uniform(0.0, max(0.02, 0.8 * (timing.load_end - timing.load)))
            watch.until(("load",))
            wait(delay)
        else:
            delay = draw.uniform(0.0, 0.01)
            deadline = time.monotonic() + 30
            while (phase := watch.phase()) != "done" and not (phase == "load" and watch.wal):
                assert time.monotonic() < deadline, "no WAL in 30 s"
                time.sleep(0.001)
            wait(delay)
        now = watch.phase()  # the moment of the kill: nothing runs in between but a syscall
        at = watch.elapsed()
        if now != "done":
            os.kill(watch.process.pid, signal.SIGKILL)
    finally:
        if watch.process.poll() is None:
            watch.process.kill()
        watch.process.communicate(timeout=30)
    if now != "done":
        assert watch.process.returncode == -signal.SIGKILL
    if now in ("load", "done"):
        phase = now
    else:
        phase = "between loads" if watch.loaded else "extract" if watch.wrote else "fetch"
    left = len(staged(folder) - stale)
    return Kill(aim, delay, phase, at, left, wal_file.exists())


@pytest.mark.timeout(150)
def test_kill_9_during_backfill_and_load_then_a_rerun_lands_the_truth_with_no_debris(
    slow_server, truth, tmp_path
):
    """Six SIGKILLs of ``bizagi-etl extract cases`` over 60 days, at seeded random moments
    aimed at start-up, the lake writes (a partition left half written in staging), the DuckDB
    load and a WAL not yet checkpointed; the same command then exits 0, the warehouse holds
    exactly the truth, and no staging, .tmp, .old or WAL file is left."""
    timing = calibrate(slow_server, tmp_path / "calibration")
    assert timing.end < 20, timing
    folder = tmp_path / "chaos"
    draw = random.Random(SEED)
    aims = list(AIMS)
    draw.shuffle(aims)
    kills: list[Kill] = []
    for aim in aims:
        for _attempt in range(ATTEMPTS):  # a kill that missed its aim is tried again
            kills.append(kill_once(slow_server, folder, aim, timing, draw))
            if kills[-1].landed:
                break
        else:
            raise AssertionError(f"{ATTEMPTS} kills aimed at {aim} missed: "
                                 f"{list(map(str, kills[-ATTEMPTS:]))}, {timing}")  # fmt: skip
    why = f"\n  timing {timing}\n  kills " + "\n        ".join(map(str, kills))
    began = time.monotonic()
    final = extract(cli_env(slow_server, folder))
    out, err = final.communicate(timeout=60)
    took = time.monotonic() - began
    assert final.returncode == 0, f"{err[-3000:]}{why}"
    assert "FAILED" not in err, err
    assert "case_parameters" in out, out
    assert_truth(folder, truth, START, END, why)
    assert_no_debris(folder, why)
    assert took < 30, took


# -- 2. two CLI runs at once on one lake and one warehouse ------------------------------------


@pytest.mark.timeout(120)
def test_two_concurrent_cli_runs_of_overlapping_windows_land_the_union_once(
    slow_server, truth, tmp_path
):
    """Two ``extract cases`` started at once on one lake and one warehouse, their windows
    sharing June: both exit 0 (each waits for the other's lock on the warehouse, up to
    BIZAGI_LOCK_TIMEOUT), and the warehouse holds the union's truth, every row once."""
    env = cli_env(slow_server, tmp_path) | {"BIZAGI_LOG_LEVEL": "INFO"}  # logs lock waits
    second = (dt.date(2026, 6, 1), dt.date(2026, 7, 31))  # overlaps June with the first
    began = time.monotonic()
    runs = [extract(env), extract(env, *second)]
    watches = [Watch(run, tmp_path) for run in runs]
    overlapped = contended = 0  # looks at both writing, at both holding the warehouse file
    while any(run.poll() is None for run in runs):
        phases = [w.phase() for w in watches]
        overlapped += "done" not in phases and all(w.wrote for w in watches)
        contended += phases == ["load", "load"]  # one holds it, the other tries its lock
        time.sleep(0.002)
    outputs = [run.communicate(timeout=60) for run in runs]
    took = time.monotonic() - began
    waits = sum(err.count("waiting up to 60 s") for _, err in outputs)
    why = (f" (looks: {overlapped} both writing, {contended} both at the warehouse file; "
           f"{waits} waits for the warehouse's lock)")  # fmt: skip
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err[-3000:] + why
        assert "FAILED" not in err, err
        assert "case_parameters" in out, out
    assert overlapped, "the runs never wrote the lake at the same time" + why
    assert_truth(tmp_path, truth, START, second[1], why)
    assert_no_debris(tmp_path, why)
    assert took < 60, took


# -- 3. an echoed secret never lands in Dagster's storage or logs ------------------------------

CLIENT_ID = "etl-reader"


class Echo:
    """A hostile Bizagi. ``token``: the token endpoint refuses the credentials and echoes them
    (the secret, the form and the ``Authorization: Basic`` value) in ``error_description`` and
    in headers. ``odata-401`` and ``odata-500``: the token endpoint issues tokens (echoing the
    secret in headers), and every OData request is refused with that status, its body and a
    header echoing every bearer token seen. Tokens are short, so masking of long token-like
    runs cannot be what removes them."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.issued: list[str] = []
        self.bearers: list[str] = []

    async def endpoint(self, request: Request) -> Response:
        if request.url.path == "/oauth2/server/token":
            return await self.token(request)
        return await self.data(request)

    async def token(self, request: Request) -> Response:
        form, auth, secret = await presented_credentials(request)
        headers = {"X-Echo-Authorization": auth, "X-Echo-Secret": secret}
        if self.mode == "token":
            description = f"client secret {secret!r} is wrong; form {form}; Authorization {auth}"
            return JSONResponse({"error": "invalid_client", "error_description": description,
                                 "http_status_code": 401}, 401, headers=headers)  # fmt: skip
        token = f"tok-{len(self.issued):04d}-q7Zw"
        self.issued.append(token)
        body = {"access_token": token, "token_type": "bearer", "expires_in": 3600,
                "http_status_code": 200}  # fmt: skip
        return JSONResponse(body, headers=headers)

    async def data(self, request: Request) -> Response:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.bearers.append(bearer)
        seen = ", ".join(self.bearers)
        status = 500 if self.mode == "odata-500" else 401
        body = {"error": {"code": str(status), "message": f"tokens {seen} are revoked",
                          "details": [{"message": f"last was Bearer {bearer}"}]}}  # fmt: skip
        challenge = f'Bearer error="invalid_token" token="{bearer}"'
        headers = {"X-Echo-Bearer": seen, "WWW-Authenticate": challenge}
        return JSONResponse(body, status, headers=headers)

    @contextmanager
    def running(self) -> Iterator[AsgiServer]:
        app = Starlette(routes=[Route("/{path:path}", self.endpoint, methods=["GET", "POST"])])
        with AsgiServer(app) as server:
            yield server


def forms_of(secret: str, echo: Echo) -> dict[str, bytes]:
    """What must never be stored: the secret (plain and base64), the Basic credentials, every
    token issued. Computed here, not with the library's redactor."""
    basic = base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
    forms = {"secret": secret, "base64(secret)": base64.b64encode(secret.encode()).decode(),
             "Basic credentials": basic}  # fmt: skip
    forms |= {f"token {t}": t for t in echo.issued}
    return {name: value.encode() for name, value in forms.items()}


SQLITE = b"SQLite format 3\x00"


def unpacked(blob: bytes) -> bytes | None:
    """A zlib or gzip blob decompressed (Dagster stores its run and plan snapshots so)."""
    if len(blob) < 8:
        return None
    try:
        return zlib.decompressobj(wbits=47).decompress(blob)  # 47: zlib or gzip header
    except zlib.error:
        return None


def stored(home: Path) -> Iterator[tuple[str, bytes]]:
    """Every file under ``home`` as bytes; every cell of every SQLite table in it too, and
    each compressed cell decompressed (a raw grep cannot see inside those)."""
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        where = str(path.relative_to(home))
        data = path.read_bytes()
        yield where, data
        if not data.startswith(SQLITE):
            continue
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            listed = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for (table,) in listed.fetchall():
                cursor = con.execute(f'SELECT * FROM "{table}"')
                columns = [c[0] for c in cursor.description]
                for row in cursor:
                    for column, value in zip(columns, row, strict=True):
                        if value is None:
                            continue
                        cell = value if isinstance(value, bytes) else str(value).encode()
                        yield f"{where}: {table}.{column}", cell
                        inside = unpacked(cell)
                        if inside is not None:
                            yield f"{where}: {table}.{column} (decompressed)", inside
        finally:
            con.close()


def leaks(texts: Iterator[tuple[str, bytes]], forms: dict[str, bytes]) -> list[str]:
    found = []
    for where, data in texts:
        for name, form in forms.items():
            at = data.find(form)
            if at >= 0:
                around = data[max(0, at - 160) : at + len(form) + 40].replace(form, b"<HERE>")
                found.append(f"{name} in {where}: ...{around!r}...")
    return found


def error_chain(error: Any) -> Iterator[Any]:
    while error is not None:
        yield error
        error = error.cause or error.context


def dagster_texts(result: dg.ExecuteInProcessResult) -> list[str]:
    texts = []
    for event in result.all_events:
        texts.append(str(event))
        failure = event.step_failure_data if event.is_step_failure else None
        if failure is not None and failure.error is not None:
            texts.append(failure.error.to_string())
    return texts


MANAGED_LOGS = {"python_logs": {"managed_python_loggers": ["bizagi_etl", "httpx", "httpcore"],
                                "python_log_level": "DEBUG"}}  # fmt: skip


def materialize_processes(
    bizagi: BizagiResource, home: Path, data: Path
) -> tuple[dg.ExecuteInProcessResult, list[str]]:
    """The code location's ``bizagi/lake/processes`` asset, run with a persistent instance in
    ``home`` that also stores the library's Python logs (bizagi_etl, httpx, httpcore at DEBUG),
    as an operator who wants them in the UI configures it."""
    processes = catalog().get("processes")
    (extract_asset,) = [a for a in stream_assets(processes)
                        if a.key == dg.AssetKey(["bizagi", "lake", "processes"])]  # fmt: skip
    lakehouse = LakehouseResource(lake_root=str(data / "lake"),
                                  warehouse_path=str(data / "w.duckdb"))  # fmt: skip
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=MANAGED_LOGS) as instance:
        result = dg.materialize([extract_asset], resources={"bizagi": bizagi,
                                "lakehouse": lakehouse}, instance=instance,
                                raise_on_error=False)  # fmt: skip
        logs = [str(e) for e in instance.all_logs(result.run_id)]
    return result, logs


SECRETS = [pytest.param("Zq7-secret-Xv", id="distinctive"), pytest.param("Qz7w", id="4-chars")]
FAILURES = {  # mode -> (the library's error class, words of the server's explanation kept)
    "token": ("AuthError", "is wrong"),
    "odata-401": ("AuthError", "are revoked"),
    "odata-500": ("ServerError", "are revoked"),
}


@pytest.fixture
def quiet_env(monkeypatch):
    for name in [n for n in os.environ if n.startswith("BIZAGI_")]:
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.timeout(60)
@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("mode", list(FAILURES))
def test_an_echoed_secret_never_lands_in_dagster_storage_or_logs(
    mode, secret, quiet_env, tmp_path, caplog, capfd
):
    """The resource as the code location builds it (``bizagi_from_env``: the credentials are
    ``EnvVar``s, read when the run starts)."""
    caplog.set_level(logging.DEBUG)
    echo = Echo(mode)
    home = tmp_path / "dagster_home"
    with echo.running() as server:
        env = {"BIZAGI_BASE_URL": server.base_url, "BIZAGI_CLIENT_ID": CLIENT_ID,
               "BIZAGI_CLIENT_SECRET": secret, "BIZAGI_MAX_RETRIES": "1",
               "BIZAGI_MAX_BACKOFF": "0.1"}  # fmt: skip
        for name, value in env.items():
            quiet_env.setenv(name, value)
        result, logs = materialize_processes(bizagi_from_env(env), home, tmp_path)
    out, err = capfd.readouterr()

    # The run failed for the reason the server gave, and said so (scrubbed).
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    classes = [e.cls_name for e in error_chain(error)]
    expected_class, explanation = FAILURES[mode]
    assert expected_class in classes, classes
    shown = error.to_string()
    assert explanation in shown, shown
    assert "***" in shown, shown
    assert len(echo.issued) == {"token": 0, "odata-401": 2, "odata-500": 1}[mode], echo.issued
    forms = forms_of(secret, echo)

    # Every byte Dagster stored: run and event databases, snapshots, compute logs.
    texts = list(stored(home))
    found = leaks(iter(texts), forms)
    assert not found, "\n".join(found)
    # The search reads what it must: the failure and the library's logs are in the event log,
    # the resource's config inside a compressed snapshot, the step's output in compute logs.
    assert any(explanation.encode() in t and b"***" in t for w, t in texts if "runs/" in w)
    assert any(b"HTTP Request: " in t for w, t in texts if "runs/" in w), "library logs stored"
    assert any(b"OAuth2 application secret (use EnvVar)" in t
               for w, t in texts if w.endswith("(decompressed)")), "snapshots read"  # fmt: skip
    assert any("compute_logs" in w for w, _ in texts), [w for w, _ in texts][:20]

    # What this process logged and printed, the events in memory and the exception text.
    memory = [caplog.text, *(r.getMessage() for r in caplog.records), out, err, *logs,
              *dagster_texts(result)]  # fmt: skip
    assert "HTTP Request: " in caplog.text, "httpx's log lines were captured"
    found = leaks(((f"memory[{i}]", t.encode()) for i, t in enumerate(memory)), forms)
    assert not found, "\n".join(found)
