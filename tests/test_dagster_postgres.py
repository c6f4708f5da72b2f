"""Dagster beyond one process: the instance of ``deploy/dagster/`` on a real PostgreSQL, its
daemon, and a backfill that the daemon splits into runs executing side by side into a DuckLake.

One module fixture does the work once, and every process it starts is stopped before the tests
read what it recorded:

- PostgreSQL 15 (``services.postgres``) holds two databases: Dagster's, and the DuckLake's catalog;
- a temporary ``DAGSTER_HOME`` whose ``dagster.yaml`` is ``deploy/dagster/dagster.yaml`` itself
  (a symlink, not a copy), its connection given through the ``DAGSTER_PG_*`` variables;
- an emulator in this process, reached by the runs through the ``BIZAGI_*`` variables;
- ``dagster-daemon run -w deploy/dagster/workspace.yaml`` as a subprocess. It loads the code
  location in a code server of its own, as in a deployment.

A backfill of four months of the daily ``cases`` stream (extract and load) is created as the UI
creates one. The daemon cuts it into runs of at most 31 days (a DuckLake's default
``run_days``), the queued run coordinator launches them within the file's limits, and each runs
in a process of its own. The backfill's run config keeps a run's steps inside its process
(``in_process``), so the machine's two CPUs start one process per run, not one per step.

Two runs must be in progress at once for the test to see it: the emulator holds the first
token request (the start of a run's extraction) until a second one arrives, for up to
``GATE_WAIT`` seconds. Were the runs unable to overlap, the first would wait that long and
finish alone, and the test would fail on the start and end times Dagster recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import psutil
import psycopg2
import pytest
from conftest import SMALL, CaseState, landed_cases, truth_at
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.storage.tags import BACKFILL_ID_TAG
from dagster._core.utils import make_new_backfill_id
from dagster_support import definitions
from services import Postgres, moto_s3, postgres
from starlette.types import ASGIApp, Receive, Scope, Send

from bizagi_etl.emulator import EmulatorServer
from bizagi_etl.emulator import server as emulator_server
from bizagi_etl.emulator.app import Emulated
from bizagi_etl.pipeline import Warehouse
from dagster_project.translator import DAILY_PARTITIONS

# The module fixture (PostgreSQL, moto, the daemon's backfill, up to TIMEOUT) counts against
# its first test's timeout.
pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "dagster"
BIN = Path(sys.executable).parent
# Four months of the small emulator's history (it starts on 2025-01-01), half-open.
FIRST, END = dt.date(2025, 1, 1), dt.date(2025, 5, 1)
DAYS = (END - FIRST).days
RUN_DAYS = 31  # PipelineSettings.run_days of a DuckLake, unless BIZAGI_BACKFILL_RUN_DAYS says
KEYS = [dg.AssetKey(["bizagi", "lake", "cases"]), dg.AssetKey(["bizagi", "warehouse", "cases"])]
# What deploy/dagster/dagster.yaml says.
MAX_RUNS, BACKFILL_RUNS, POOL_LIMIT = 8, 4, 1
RUN_CONFIG = {"execution": {"config": {"in_process": {}}}}
GATE_WAIT = 30.0
TIMEOUT = 240  # seconds the backfill may take (the daemon passes over backfills every 30 s)
DONE = {
    BulkActionStatus.COMPLETED,
    BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
}
TOKEN_PATH = "/oauth2/server/token"
# Dagster's database password: PostgreSQL here trusts loopback and ignores it, so it can be a
# marker that must never be stored or logged.
PG_PASSWORD = "pg-password-never-stored-7Qx"


class Gate:
    """ASGI middleware: the first token request waits until a second one arrives (or
    ``GATE_WAIT`` seconds pass), so two runs are surely in progress at the same moment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.arrived = 0
        self.opened: asyncio.Event | None = None  # made in the server's event loop
        self.timed_out = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == TOKEN_PATH:
            if self.opened is None:
                self.opened = asyncio.Event()
            self.arrived += 1
            if self.arrived >= 2:
                self.opened.set()
            else:
                try:
                    await asyncio.wait_for(self.opened.wait(), GATE_WAIT)
                except TimeoutError:
                    self.timed_out = True
        await self.app(scope, receive, send)


@dataclass
class Landed:
    cases: CaseState
    counts: dict[str, tuple[int, int]]  # table -> (rows, distinct keys)
    days: list[str]  # the days bizagi.cases holds


def _landed(warehouse: str, data: str) -> Landed:
    """What the warehouse holds, read with the library as any reader would."""
    with Warehouse(warehouse, data=data) as w:
        cases = w.query("SELECT id, closed, solution_date FROM bizagi.cases")
        params = w.query("SELECT case_id, xpath, value, value_type FROM bizagi.case_parameters")
        counts = {
            "cases": w.query("SELECT count(*), count(DISTINCT id) FROM bizagi.cases")[0],
            "case_parameters": w.query("SELECT count(*), count(DISTINCT (case_id, position)) "
                                       "FROM bizagi.case_parameters")[0],
        }  # fmt: skip
        days = w.query("SELECT DISTINCT _partition FROM bizagi.cases ORDER BY 1")
    return Landed(landed_cases(cases, params), counts, [str(d) for (d,) in days])


@dataclass
class Backfilled:
    home: Path
    status: BulkActionStatus
    runs: list[dg.RunRecord]
    pids: dict[str, int | None]  # run id -> pid of the process that executed it
    checks: dict[str, dict[str, bool]]  # run id -> check name -> passed
    failures: list[str]  # what failed in the runs, if anything did
    daemon_pid: int
    gate: Gate
    instance: dict[str, Any]  # what the instance loaded from the file
    tables: dict[str, Any]  # what Dagster's database holds (see _in_postgres)
    truth: CaseState
    landed: Landed | None  # None when the backfill failed
    leaks: list[str]  # where a secret was found: a table of Dagster's, a snapshot, the log
    log: str  # the end of the daemon's output, for failure messages


@contextlib.contextmanager
def dagster(command: str, *args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A Dagster command on the deploy workspace, run from ``log``'s folder (outside the
    repository: no ``.env`` there) in a process group of its own. It and everything it started
    (code servers, run workers) are stopped on the way out, however the test ended."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(BIN / command), *args, "-w", str(DEPLOY / "workspace.yaml")],
            cwd=log.parent, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            yield process
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # a daemon then stops its threads, code server
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    # What it started shares its process group (Dagster starts its subprocesses in the group of
    # their parent); whatever is left of the group now is left behind.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _wait(instance: dg.DagsterInstance, backfill_id: str, process: subprocess.Popen[bytes],
          log: Path) -> BulkActionStatus:  # fmt: skip
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        backfill = instance.get_backfill(backfill_id)
        assert backfill is not None
        if backfill.status in DONE:
            return backfill.status
        if process.poll() is not None:
            pytest.fail(f"the daemon exited ({process.returncode}):\n{_tail(log)}")
        time.sleep(0.5)
    pytest.fail(f"the backfill did not finish in {TIMEOUT} s:\n{_tail(log)}")


def _tail(log: Path, size: int = 8000) -> str:
    return log.read_text(errors="replace")[-size:] if log.exists() else ""


def _in_postgres(pg: Postgres, db: str, backfill_id: str, run_ids: list[str]) -> dict[str, Any]:
    """Rows of Dagster's own tables in its database: the runs, the backfill and the daemon's
    heartbeats (run storage), the materializations (event log storage), the schedule started
    (schedule storage)."""
    queries: dict[str, tuple[str, list[Any]]] = {
        "runs": ("SELECT count(*) FROM runs WHERE run_id = ANY(%s)", [run_ids]),
        "materializations": (
            "SELECT count(*) FROM event_logs WHERE run_id = ANY(%s) "
            "AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            [run_ids],
        ),
        "backfills": ("SELECT count(*) FROM bulk_actions WHERE key = %s", [backfill_id]),
        "running_schedules": (
            "SELECT count(*) FROM instigators WHERE instigator_type = 'SCHEDULE' "
            "AND status = 'RUNNING' AND instigator_body LIKE %s",
            ['%"bizagi_daily_schedule"%'],
        ),
    }
    con = psycopg2.connect(pg.dsn(db))
    try:
        with con.cursor() as cursor:
            found = {}
            for name, (sql, args) in queries.items():
                cursor.execute(sql, args)
                (found[name],) = cursor.fetchone() or (None,)
            cursor.execute("SELECT daemon_type FROM daemon_heartbeats")
            found["daemons"] = {row[0] for row in cursor.fetchall()}
            return found
    finally:
        con.close()


def _leaks(pg: Postgres, db: str, instance: dg.DagsterInstance, runs: list[dg.RunRecord],
           log: Path, secrets: list[str]) -> list[str]:  # fmt: skip
    """Where any secret appears: a row of any table in Dagster's database (as text), a run's
    job or execution plan snapshot (stored compressed), the daemon's output."""
    found = []
    patterns = [f"%{secret}%" for secret in secrets]
    con = psycopg2.connect(pg.dsn(db))
    try:
        with con.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            for (table,) in cursor.fetchall():
                cursor.execute(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE ANY(%s)',
                               [patterns])  # fmt: skip
                if (cursor.fetchone() or (0,))[0]:
                    found.append(f"table {table}")
    finally:
        con.close()
    for record in runs:
        run = record.dagster_run
        snapshots = [
            instance.get_job_snapshot(run.job_snapshot_id or ""),
            instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id or ""),
        ]
        if any(secret in dg.serialize_value(snap) for snap in snapshots for secret in secrets):
            found.append(f"snapshots of run {run.run_id}")
    text = log.read_text(errors="replace")
    return found + [f"{log.name}" for secret in secrets if secret in text]


def _backfill(instance: dg.DagsterInstance) -> str:
    """A backfill of the days [FIRST, END) of both assets, as the UI makes one."""
    backfill_id = make_new_backfill_id()
    days = [(FIRST + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]
    instance.add_backfill(
        PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id, asset_graph=definitions().resolve_asset_graph(),
            partition_names=days, asset_selection=KEYS, backfill_timestamp=time.time(),
            tags={}, dynamic_partitions_store=instance, all_partitions=False, title=None,
            description=None, run_config=RUN_CONFIG,
        )
    )  # fmt: skip
    return backfill_id


def _pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The process that executed a run: the one that reported its start."""
    (start,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
    return start.dagster_event.pid if start.dagster_event else None


def _checks(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    found = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if isinstance(evaluation, dg.AssetCheckEvaluation):
            found[evaluation.check_name] = evaluation.passed
    return found


def _failures(instance: dg.DagsterInstance, run_ids: list[str]) -> list[str]:
    """Each failed step's error, for the failure message."""
    failed = []
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            event = entry.dagster_event
            error = event.step_failure_data.error if event and event.step_failure_data else None
            failed.append(f"{run_id[:8]} {entry.step_key}: {error.to_string() if error else ''}")
    return failed


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Backfilled:
    folder = tmp_path_factory.mktemp("dagster-postgres")
    home = folder / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(DEPLOY / "dagster.yaml")
    log = folder / "daemon.log"
    with contextlib.ExitStack() as stack:
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        gates: list[Gate] = []
        build = emulator_server.build_app

        def gated(emulated: Emulated) -> Gate:
            gates.append(Gate(build(emulated)))
            return gates[-1]

        mp.setattr(emulator_server, "build_app", gated)
        pg = stack.enter_context(postgres())
        dagster_db, catalog = pg.create_database("dagster"), pg.create_database("ducklake")
        warehouse = f"ducklake:postgres:{pg.dsn(catalog)}"
        s3 = stack.enter_context(moto_s3())  # the lake and the DuckLake's files on S3
        bucket = s3.create_bucket("dagster")
        data = f"s3://{bucket}/ducklake/"
        server = stack.enter_context(EmulatorServer(SMALL))
        env = {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(pg.port),
            "DAGSTER_PG_USER": "postgres",
            "DAGSTER_PG_PASSWORD": PG_PASSWORD,
            "DAGSTER_PG_DB": dagster_db,
            "BIZAGI_BASE_URL": server.base_url,
            "BIZAGI_CLIENT_ID": server.client_id,
            "BIZAGI_CLIENT_SECRET": server.client_secret,
            "BIZAGI_PAGE_SIZE": "1000",
            "BIZAGI_LAKE": f"s3://{bucket}/lake",
            **s3.env,
            "BIZAGI_WAREHOUSE": warehouse,
            "BIZAGI_WAREHOUSE_DATA": data,
            # the code location's days are the ones this process's definitions were built with
            "BIZAGI_START_DATE": DAILY_PARTITIONS.start.date().isoformat(),
        }
        for name, value in env.items():
            mp.setenv(name, value)
        for name in ("BIZAGI_STREAMS_FILE", "BIZAGI_BACKFILL_RUN_DAYS"):
            mp.delenv(name, raising=False)
        instance = stack.enter_context(dg.DagsterInstance.get())
        backfill_id = _backfill(instance)
        with dagster("dagster-daemon", "run", log=log) as process:
            status = _wait(instance, backfill_id, process, log)
            daemon_pid = process.pid
        # A schedule started with the CLI, as an operator would, lands in schedule storage.
        # (After the daemon stopped: it would launch the schedule's run at 01:30 UTC.)
        with dagster("dagster", "schedule", "start", "bizagi_daily_schedule", log=log) as cli:
            assert cli.wait(timeout=120) == 0, _tail(log)
        runs = list(instance.get_run_records(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id})))
        ids = [r.dagster_run.run_id for r in runs]
        concurrency = instance.get_concurrency_config()
        loaded = {
            "storage": [type(s).__name__ for s in (instance.run_storage,
                        instance.event_log_storage, instance.schedule_storage)],
            "run_coordinator": type(instance.run_coordinator).__name__,
            "run_launcher": type(instance.run_launcher).__name__,
            "run_queue": concurrency.run_queue_config,
            "pool_limit": concurrency.pool_config.default_pool_limit,
        }  # fmt: skip
        landed = _landed(warehouse, data) if status == BulkActionStatus.COMPLETED_SUCCESS else None
        midnight = dt.datetime.combine(END, dt.time(), dt.UTC)
        return Backfilled(
            home=home, status=status, runs=runs,
            pids={i: _pid(instance, i) for i in ids}, checks={i: _checks(instance, i) for i in ids},
            failures=_failures(instance, ids), daemon_pid=daemon_pid, gate=gates[-1],
            instance=loaded, tables=_in_postgres(pg, dagster_db, backfill_id, ids),
            truth=truth_at(server, folder / "truth", before=midnight),
            landed=landed, log=_tail(log),
            leaks=_leaks(pg, dagster_db, instance, runs, log, [PG_PASSWORD, server.client_secret]),
        )  # fmt: skip


def test_the_backfill_completes_and_its_load_checks_pass(backfilled):
    failures = "\n".join(backfilled.failures) or backfilled.log
    assert backfilled.status == BulkActionStatus.COMPLETED_SUCCESS, failures
    for record in backfilled.runs:
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS, failures
    for run_id, checks in backfilled.checks.items():
        assert set(checks) == {"rows_match_api", "key_unique_not_null", "schema_unchanged",
                               "days_not_empty"}, run_id  # fmt: skip
        # The checks that fail a load; the others warn, and compare with other runs' days.
        assert checks["rows_match_api"], run_id
        assert checks["key_unique_not_null"], run_id


def test_it_is_split_into_runs_of_at_most_run_days_days(backfilled):
    assert len(backfilled.runs) == -(-DAYS // RUN_DAYS)  # 120 days: 4 runs
    covered = []
    for record in backfilled.runs:
        tags = record.dagster_run.tags
        first = dt.date.fromisoformat(tags["dagster/asset_partition_range_start"])
        last = dt.date.fromisoformat(tags["dagster/asset_partition_range_end"])
        assert (last - first).days + 1 <= RUN_DAYS, tags
        covered += [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        assert set(record.dagster_run.asset_selection or ()) == set(KEYS), "extract and load"
    assert sorted(covered) == [FIRST + dt.timedelta(days=i) for i in range(DAYS)], "each day once"


def test_runs_overlap_in_separate_processes_within_the_limit(backfilled):
    spans = sorted((r.start_time, r.end_time) for r in backfilled.runs)
    assert all(start is not None and end is not None for start, end in spans), spans
    running = peak = 0
    for _, change in sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans]):
        running += change
        peak = max(peak, running)
    assert 2 <= peak <= BACKFILL_RUNS, (spans, f"gate timed out: {backfilled.gate.timed_out}")
    pids = list(backfilled.pids.values())
    assert None not in pids
    assert len(set(pids)) == len(pids), "each run in a process of its own"
    assert not {os.getpid(), backfilled.daemon_pid} & set(pids), "nor the test's, the daemon's"


def test_nothing_it_started_is_left_running(backfilled):
    with pytest.raises(ProcessLookupError):
        os.killpg(backfilled.daemon_pid, 0)  # its process group: code servers, run workers
    assert not [pid for pid in backfilled.pids.values() if pid and psutil.pid_exists(pid)]


def test_no_secret_is_stored_or_logged(backfilled):
    """Dagster keeps the instance file's text, ``{env: DAGSTER_PG_PASSWORD}``, and the Bizagi
    secret enters as an ``EnvVar``: neither value is in Dagster's database or the output."""
    assert backfilled.leaks == []


def test_the_instance_is_the_deploy_file(backfilled):
    assert (backfilled.home / "dagster.yaml").resolve() == (DEPLOY / "dagster.yaml").resolve()
    loaded = backfilled.instance
    assert loaded["storage"] == [
        "PostgresRunStorage",
        "PostgresEventLogStorage",
        "PostgresScheduleStorage",
    ]
    assert loaded["run_coordinator"] == "QueuedRunCoordinator"
    assert loaded["run_launcher"] == "DefaultRunLauncher"
    queue = loaded["run_queue"]
    assert queue.max_concurrent_runs == MAX_RUNS
    limits = [(t["key"], t.get("value"), t["limit"]) for t in queue.tag_concurrency_limits]
    assert limits == [(BACKFILL_ID_TAG, None, BACKFILL_RUNS)]
    assert loaded["pool_limit"] == POOL_LIMIT


def test_runs_events_and_schedules_are_rows_in_postgres(backfilled):
    tables = backfilled.tables
    assert tables["runs"] == len(backfilled.runs)
    assert tables["materializations"] == DAYS * len(KEYS)  # one per day and asset
    assert tables["backfills"] == 1
    assert tables["running_schedules"] == 1
    assert {"BACKFILL", "QUEUED_RUN_COORDINATOR", "SCHEDULER"} <= tables["daemons"]
    assert sorted(p.name for p in backfilled.home.rglob("*.db")) == [], "no SQLite anywhere"


def test_the_ducklake_holds_exactly_the_truth_of_those_days(backfilled):
    landed = backfilled.landed
    assert landed is not None, "the backfill failed: nothing to compare"
    cases, params = backfilled.truth
    got_cases, got_params = landed.cases
    assert len(cases) > 300
    assert got_cases.keys() == cases.keys()
    assert got_cases == cases
    assert got_params == params
    rows, distinct = landed.counts["cases"]
    assert rows == distinct == len(cases), "no case twice"
    rows, distinct = landed.counts["case_parameters"]
    assert rows == distinct, "no parameter twice"
    assert FIRST.isoformat() <= landed.days[0] <= landed.days[-1] < END.isoformat()


# -- the code location's choice, without servers -------------------------------------------


@pytest.mark.parametrize(
    ("env", "run_days", "pool"),
    [
        ({}, None, "duckdb"),
        ({"BIZAGI_BACKFILL_RUN_DAYS": "7"}, 7, "duckdb"),
        ({"BIZAGI_WAREHOUSE": "ducklake:postgres:dbname=lake host=127.0.0.1"}, 31, None),
        # a catalog in a file takes one process at a time, like a DuckDB file
        ({"BIZAGI_WAREHOUSE": "ducklake:catalog.ducklake", "BIZAGI_BACKFILL_RUN_DAYS": "92"}, 92,
         "duckdb"),
    ],
)  # fmt: skip
def test_backfill_policy_and_pool_follow_the_warehouse(monkeypatch, env, run_days, pool):
    for name in ("BIZAGI_WAREHOUSE", "BIZAGI_BACKFILL_RUN_DAYS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    d = definitions()
    graph = d.resolve_asset_graph()
    expected = (
        dg.BackfillPolicy.single_run()
        if run_days is None
        else dg.BackfillPolicy.multi_run(max_partitions_per_run=run_days)
    )
    for key in KEYS:
        assert graph.get(key).backfill_policy == expected, key
    assert graph.get(KEYS[0]).pools == set(), "extraction never waits for a pool"
    pools = {pool} if pool else set()
    assert graph.get(KEYS[1]).pools == pools
    assert graph.get(dg.AssetKey(["bizagi", "analytics", "case_sla"])).pools == pools
    ops = {n.name: n.pool for n in d.resolve_job_def("bizagi_daily").all_node_defs}
    for name in ("rows_match_api", "key_unique_not_null", "days_not_empty"):
        (found,) = [p for op, p in ops.items() if op.endswith(name)]
        assert found == pool, name
