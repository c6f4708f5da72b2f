"""The DuckLake warehouse on real servers the tests start: a catalog in PostgreSQL 15, data files
and the lake on moto's S3.

- Four processes land four months at once, then a process that knows only the catalog, the
  bucket and the credentials reads exactly the emulator's truth with the README's SQL (plus
  the options moto's endpoint needs).
- A commit that conflicts with another writer's is retried and lands; the pauses between
  attempts double from 50 ms to 2 s with jitter; a conflict past the timeout is raised.
- kill -9 of a writer mid-commit leaves the catalog consistent, and a rerun lands exactly: at
  random moments of many loads, and inside the catalog's commit itself.
- A whole CLI run (every stream, the sql/ views) lands the same as into a DuckDB file.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import duckdb
import pyarrow as pa
import pytest
from conftest import landed_cases, settings_for, truth_at

from bizagi_etl.connector import BizagiClient, SettingsError
from bizagi_etl.connector.errors import LockError
from bizagi_etl.emulator import EmulatorConfig, EmulatorServer
from bizagi_etl.pipeline import Catalog, PipelineSettings, sync_stream
from bizagi_etl.pipeline import ducklake as ducklake_module
from bizagi_etl.pipeline.lake import open_lake
from bizagi_etl.pipeline.warehouse import Warehouse

AT = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
MONTHS = [("2025-03-01", "2025-04-01"), ("2025-04-01", "2025-05-01"),
          ("2025-05-01", "2025-06-01"), ("2025-06-01", "2025-07-01")]  # fmt: skip
CLI = [sys.executable, "-m", "bizagi_etl.cli"]


def _env(server, lake: str, warehouse: str, data: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIZAGI_")}
    return env | {
        "BIZAGI_BASE_URL": server.base_url,
        "BIZAGI_CLIENT_ID": server.client_id,
        "BIZAGI_CLIENT_SECRET": server.client_secret,
        "BIZAGI_PAGE_SIZE": "1000",
        "BIZAGI_LAKE": lake,
        "BIZAGI_WAREHOUSE": warehouse,
        "BIZAGI_WAREHOUSE_DATA": data,
    }


# What a reader on another machine runs: the README's SQL, with only the catalog, the bucket's
# credentials (from the environment) and the extension wheels.
_READER = """
import json, os, sys
import duckdb
from duckdb_extensions import import_extension
con = duckdb.connect()
for name in ("httpfs", "aws", "postgres", "ducklake"):
    import_extension(name, con=con)
endpoint = os.environ["AWS_ENDPOINT_URL"].removeprefix("http://")
con.execute(f'''CREATE SECRET (TYPE s3, PROVIDER credential_chain, ENDPOINT '{endpoint}',
                URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')''')
con.execute(f"ATTACH '{sys.argv[1]}' AS bizagi_warehouse (READ_ONLY)")
cases = con.execute("SELECT id, closed, solution_date::VARCHAR "
                    "FROM bizagi_warehouse.bizagi.cases").fetchall()
params = con.execute("SELECT case_id, xpath, value, value_type "
                     "FROM bizagi_warehouse.bizagi.case_parameters").fetchall()
days = con.execute("SELECT count(*) FROM bizagi_warehouse.analytics.cases_per_process_day"
                   ).fetchone()[0]
sla = con.execute("SELECT count(*) FROM bizagi_warehouse.analytics.case_sla").fetchone()[0]
print(json.dumps({"cases": cases, "params": params, "view_rows": days, "sla_rows": sla},
                 default=str))
"""


def test_four_processes_land_four_months_at_once_and_a_reader_sees_the_truth(
    small_server, s3_lake_uri, ducklake, tmp_path
):
    warehouse, data = ducklake
    env = _env(small_server, s3_lake_uri, warehouse, data)
    writers = [
        subprocess.Popen(
            [*CLI, "extract", "cases", "--start", start, "--end", end],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for start, end in MONTHS
    ]
    outputs = [w.communicate(timeout=240)[0] for w in writers]
    for writer, output in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, output[-3000:]

    reader = subprocess.run([sys.executable, "-c", textwrap.dedent(_READER), warehouse],
                            env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert reader.returncode == 0, reader.stderr[-3000:]
    landed = json.loads(reader.stdout)
    first = dt.datetime.fromisoformat(MONTHS[0][0]).replace(tzinfo=dt.UTC)
    last = dt.datetime.fromisoformat(MONTHS[-1][1]).replace(tzinfo=dt.UTC)
    truth_cases, truth_params = truth_at(small_server, tmp_path / "truth", before=last)
    early, _ = truth_at(small_server, tmp_path / "early", before=first)
    wanted = {i: v for i, v in truth_cases.items() if i not in early}
    cases = [(i, closed, _instant(when)) for i, closed, when in landed["cases"]]
    got_cases, got_params = landed_cases(cases, [tuple(p) for p in landed["params"]])
    assert len(landed["cases"]) == len(got_cases), "no case landed twice"
    assert got_cases == wanted
    assert got_params == {p for p in truth_params if p[0] in wanted}
    assert landed["view_rows"] > 0
    assert landed["sla_rows"] == len(wanted), "the README's query: a row per case"


def _instant(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def test_a_commit_that_conflicts_with_another_writers_is_retried(s3_lake_uri, ducklake, caplog):
    catalog, data = ducklake
    lake = open_lake(s3_lake_uri)
    files = {}
    for day, n in (("2025-01-01", 3), ("2025-01-02", 5)):
        rows = pa.table({"id": list(range(n))})
        written = lake.write_partition("t", "day", day, [rows], rows.schema, key=[],
                                       extracted_at=AT)  # fmt: skip
        files[day] = written.files
    with Warehouse(catalog, data=data) as first, Warehouse(catalog, data=data) as second:
        second.load_partition("t", "2025-01-02", files["2025-01-02"], AT)  # the table exists
        commits = []
        real = first.con

        class CommitsAfterTheOther:
            """The first writer's connection: before its first COMMIT, the second writer
            loads the same table and commits."""

            def execute(self, sql, *args):
                if sql == "COMMIT":
                    commits.append(sql)
                    if len(commits) == 1:
                        worker = threading.Thread(target=second.load_partition,
                                                  args=("t", "2025-01-02", files["2025-01-02"],
                                                        AT))  # fmt: skip
                        worker.start()
                        worker.join()
                return real.execute(sql, *args)

            def __getattr__(self, name):
                return getattr(real, name)

        first.con = CommitsAfterTheOther()
        with caplog.at_level(logging.INFO, logger="bizagi_etl"):
            assert first.load_partition("t", "2025-01-01", files["2025-01-01"], AT) == 3
        first.con = real
        assert len(commits) == 2, "the conflicting commit ran again"
        assert "commit conflict with another writer" in caplog.text
        assert first.partition_counts("t") == {"2025-01-01": 3, "2025-01-02": 5}


class _Clock:
    """time.monotonic and time.sleep for ``retrying``: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now, self.pauses = 1000.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def _conflicts(times: int):
    calls = []

    def run() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise duckdb.TransactionException("Failed to commit DuckLake transaction: conflict")
        return "landed"

    return run, calls


def test_conflicts_are_retried_with_a_jittered_pause_that_doubles_up_to_two_seconds(
    monkeypatch,
):
    clock = _Clock()
    monkeypatch.setattr(ducklake_module, "time", clock)
    said = []
    run, calls = _conflicts(14)  # enough for the lowest jitters to reach the cap
    assert ducklake_module.retrying("loading t", run, timeout=60,
                                    log=lambda *a: said.append(a)) == "landed"  # fmt: skip
    assert len(calls) == 15
    assert len(said) == 14
    assert [a[2] for a in said] == list(range(1, 15)), "each retry says its attempt"
    assert clock.pauses[0] == 0.05
    for before, after in itertools.pairwise(clock.pauses):
        assert 0.75 * min(before * 2, 2.0) <= after <= 1.25 * min(before * 2, 2.0)
    assert max(clock.pauses) <= 2.5, "capped near 2 s"
    assert clock.pauses[-1] >= 1.5, "and the cap reached"
    assert len(set(clock.pauses[1:])) == len(clock.pauses) - 1, "jittered, not in lockstep"


def test_a_conflict_that_lasts_past_the_timeout_is_raised_and_other_errors_at_once(
    monkeypatch,
):
    clock = _Clock()
    monkeypatch.setattr(ducklake_module, "time", clock)
    run, _calls = _conflicts(10_000)
    with pytest.raises(duckdb.TransactionException, match="Failed to commit DuckLake"):
        ducklake_module.retrying("loading t", run, timeout=5, log=lambda *a: None)
    assert sum(clock.pauses) <= 5, "no pause that ends past the deadline"
    assert sum(clock.pauses) >= 2.5, "it kept trying until then"

    clock.pauses.clear()

    def broken() -> None:
        raise duckdb.CatalogException("Table with name t does not exist")

    with pytest.raises(duckdb.CatalogException):
        ducklake_module.retrying("loading t", broken, timeout=60, log=lambda *a: None)
    assert clock.pauses == [], "not a conflict: no retry"


# A writer that loads forty partitions, one transaction each, and says when each committed.
_LOADER = """
import datetime as dt, sys
import pyarrow as pa
from bizagi_etl.connector import WarehouseError
from bizagi_etl.pipeline.lake import open_lake
from bizagi_etl.pipeline.warehouse import Warehouse
lake = open_lake(sys.argv[1])
at = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
with Warehouse(sys.argv[2], data=sys.argv[3]) as warehouse:
    for _, day in lake.partitions("t"):
        warehouse.load_partition("t", day, lake.files("t", "day", day), at)
        print("committed", day, flush=True)
"""
DAYS = [f"2025-02-{d:02}" for d in range(1, 29)] + [f"2025-03-{d:02}" for d in range(1, 13)]
ROWS = 20_000


def test_a_writer_killed_mid_commit_leaves_the_catalog_consistent_and_a_rerun_lands_exactly(
    s3_lake_uri, ducklake
):
    """Three writers killed at random moments (loads replace partitions the one before
    landed, so a kill inside a DELETE + INSERT + COMMIT would show as a partition doubled or
    emptied); after each, every partition is whole and the catalog opens; a rerun lands all."""
    catalog, data = ducklake
    lake = open_lake(s3_lake_uri)
    for i, day in enumerate(DAYS):
        rows = pa.table({"id": range(i * ROWS, (i + 1) * ROWS), "day": [day] * ROWS})
        lake.write_partition("t", "day", day, [rows], rows.schema, key=[], extracted_at=AT)
    args = [sys.executable, "-c", textwrap.dedent(_LOADER), s3_lake_uri, catalog, data]
    for _kill in range(3):
        child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        assert child.stdout is not None
        try:
            assert child.stdout.readline().startswith("committed")  # attached and loading
            time.sleep(random.uniform(0, 1.5))  # somewhere inside a later load or its commit
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        with Warehouse(catalog, data=data) as warehouse:
            counts = warehouse.partition_counts("t")
            assert counts, "the first load landed"
            assert set(counts.values()) == {ROWS}, "every partition whole or absent"
            assert warehouse.key_problems("t", ["id"]) == (0, 0)
    rerun = subprocess.run(args, capture_output=True, text=True, env=os.environ.copy(),
                           timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    with Warehouse(catalog, data=data) as warehouse:
        assert warehouse.partition_counts("t") == dict.fromkeys(DAYS, ROWS)
        assert warehouse.key_problems("t", ["id"]) == (0, 0)


def test_a_whole_run_lands_in_a_ducklake_as_in_a_duckdb_file(small_server, s3_lake_uri,
                                                            ducklake, tmp_path):  # fmt: skip
    """Every stream, the checks' numbers and the sql/ views: the same in both warehouses."""
    catalog, data = ducklake
    window = ["--start", "2025-05-01", "--end", "2025-05-15"]
    for lake, warehouse in ((s3_lake_uri, catalog), (str(tmp_path / "lake"),
                                                     str(tmp_path / "w.duckdb"))):  # fmt: skip
        env = _env(small_server, lake, warehouse, data)
        done = subprocess.run([*CLI, "extract", "processes", "stakeholders", "entities",
                               "entity_values", "cases", "inbox", *window], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    with Warehouse(tmp_path / "w.duckdb") as file, Warehouse(catalog, data=data) as lake:
        assert lake.tables() == file.tables()
        for table in file.tables():
            assert lake.columns(table) == file.columns(table), table
            assert lake.partition_counts(table) == file.partition_counts(table), table
        views = [r[0] for r in file.query(
            "SELECT view_name FROM duckdb_views() WHERE schema_name = 'analytics' "
            "AND database_name = current_database()")]  # fmt: skip
        assert views
        for view in views:
            # Everything but when each run extracted (the two ran a moment apart).
            sql = (f"SELECT COLUMNS(c -> c != '_extracted_at') FROM analytics.{view} "
                   f"ORDER BY ALL")  # fmt: skip
            assert lake.query(sql) == file.query(sql), view


def test_a_password_in_the_catalog_string_is_refused_unshown(pg_server):
    """Logs, errors and Dagster's UI show the location: the password goes to libpq."""
    location = f"ducklake:postgres:{pg_server.dsn('nope')} password=hunter2-secret"
    for attempt in (lambda: Warehouse(location, data="/nonexistent/"),
                    lambda: PipelineSettings(warehouse=location)):  # fmt: skip
        with pytest.raises(SettingsError, match="PGPASSWORD") as caught:
            attempt()
        assert "hunter2-secret" not in str(caught.value)
        assert "password=***" in str(caught.value)


_HOLD = """
import sys, time
from bizagi_etl.pipeline.warehouse import Warehouse
with Warehouse(sys.argv[1]):
    print("open", flush=True)
    time.sleep(60)
"""


def test_a_ducklake_in_a_file_takes_one_process_and_the_next_waits_then_names_it(tmp_path):
    location = f"ducklake:{tmp_path / 'catalog.ducklake'}"
    assert not PipelineSettings(warehouse=location).shared_warehouse, "no parallel Dagster runs"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_HOLD), location],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        began = time.monotonic()
        with pytest.raises(
            LockError, match=rf"(?s)still held by PID {holder.pid}.*after waiting 1 s"
        ):
            Warehouse(location, lock_timeout=1)
        assert time.monotonic() - began >= 1, "it waited"
    finally:
        holder.kill()
        holder.wait()
    with Warehouse(location, lock_timeout=5) as warehouse:
        assert warehouse.tables() == []


def test_a_moving_world_syncs_into_a_lake_on_s3_and_a_ducklake(s3_lake_uri, ducklake, tmp_path):
    """sync reads the lake's landed days (a pyarrow dataset on S3), rewrites what changed and
    loads the partitions whose stamp moved: after every day the DuckLake is that day's truth."""
    catalog, data = ducklake
    config = EmulatorConfig(cases=300, start=dt.date(2026, 7, 20), end=dt.date(2026, 8, 15),
                            now=dt.date(2026, 8, 15), seed=11)  # fmt: skip
    cases = Catalog.load().get("cases")
    lake = open_lake(s3_lake_uri)
    with EmulatorServer(config) as server, Warehouse(catalog, data=data) as warehouse:
        with BizagiClient(settings_for(server)) as client:
            sync_stream(client, cases, lake, warehouse, start=config.start, now=server.now)
            for day in range(3):
                now = server.advance(dt.timedelta(days=1))
                sync_stream(client, cases, lake, warehouse, start=config.start, now=now)
                truth = truth_at(server, tmp_path / f"truth-{day}")
                got = landed_cases(
                    warehouse.query("SELECT id, closed, solution_date FROM bizagi.cases"),
                    warehouse.query("SELECT case_id, xpath, value, value_type "
                                    "FROM bizagi.case_parameters"),
                )  # fmt: skip
                assert got == truth, now
        assert warehouse.key_problems("cases", ["id"]) == (0, 0)


def test_a_writer_killed_while_its_catalog_commit_waits_leaves_the_catalog_as_it_was(
    s3_lake_uri, ducklake
):
    """kill -9 inside the commit itself, not near it: the test holds the catalog's snapshot
    table against writes, so the writer's next COMMIT waits inside its PostgreSQL transaction
    (its data files already on S3), on the statement that writes the new snapshot; the writer
    is killed there, the table let go. The catalog then holds exactly what the writer
    committed before, DuckLake's orphan cleanup deletes only the data file the killed commit
    left, and a rerun lands every day once."""
    import psycopg2

    catalog, data = ducklake
    lake = open_lake(s3_lake_uri)
    days = DAYS[:12]
    for i, day in enumerate(days):
        rows = pa.table({"id": range(i * 1000, (i + 1) * 1000), "day": [day] * 1000})
        lake.write_partition("t", "day", day, [rows], rows.schema, key=[], extracted_at=AT)
    args = [sys.executable, "-c", textwrap.dedent(_LOADER), s3_lake_uri, catalog, data]
    holder = psycopg2.connect(catalog.removeprefix("ducklake:postgres:"))
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["committed", days[0]]
        with holder.cursor() as cursor:  # reads go on; the commit's writes wait
            cursor.execute("LOCK TABLE ducklake_snapshot IN EXCLUSIVE MODE")
        waiting = _catalog_statement_waiting(holder, timeout=60)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        holder.rollback()
        holder.close()
    committed = [days[0]] + [line.split()[1] for line in child.stdout.read().splitlines()]
    mode, table, statement = waiting
    assert (mode, table) == ("RowExclusiveLock", "ducklake_snapshot"), waiting
    assert statement.startswith('INSERT INTO "public".ducklake_snapshot'), "its commit's writes"
    with Warehouse(catalog, data=data) as warehouse:
        # PostgreSQL rolled the killed commit back: what the writer committed before, only.
        assert warehouse.partition_counts("t") == dict.fromkeys(committed, 1000)
        assert warehouse.key_problems("t", ["id"]) == (0, 0)
        # The killed commit's data file is on S3 but in no snapshot: the README's cleanups.
        # The everyday one keeps orphans younger than a day, as a running writer's files are.
        before = _data_files(data)
        everyday = ("CALL ducklake_delete_orphaned_files('bizagi_warehouse', "
                    "older_than => now() - INTERVAL 1 DAY)")  # fmt: skip
        assert warehouse.query(everyday) == []
        assert _data_files(data) == before
        # ... and takes it once it is old enough: a cutoff two days ahead, as a dry run.
        ahead = "now() + INTERVAL 2 DAY, dry_run => true"
        later = everyday.replace("now() - INTERVAL 1 DAY", ahead)
        aged = {str(r[0]).removeprefix("s3://") for r in warehouse.query(later)}
        cleanup = "CALL ducklake_delete_orphaned_files('bizagi_warehouse', cleanup_all => true)"
        deleted = {str(r[0]).removeprefix("s3://") for r in warehouse.query(cleanup)}
        assert deleted, "the killed commit left a data file behind"
        assert aged == deleted
        assert _data_files(data) == before - deleted
        assert warehouse.partition_counts("t") == dict.fromkeys(committed, 1000)
    rerun = subprocess.run(args, capture_output=True, text=True, env=os.environ.copy(),
                           timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    with Warehouse(catalog, data=data) as warehouse:
        assert warehouse.partition_counts("t") == dict.fromkeys(days, 1000)
        assert warehouse.key_problems("t", ["id"]) == (0, 0)


def _data_files(data: str) -> set[str]:
    from pyarrow import fs

    store, root = fs.FileSystem.from_uri(data)
    found = store.get_file_info(fs.FileSelector(root, recursive=True, allow_not_found=True))
    return {f.path for f in found if f.type == fs.FileType.File}


def _catalog_statement_waiting(holder, timeout: float) -> tuple[str, str, str]:
    """(lock mode, table, statement) of another session of the catalog's database that waits
    for a table lock."""
    deadline = time.monotonic() + timeout
    with holder.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT l.mode, c.relname, a.query FROM pg_locks l "
                "JOIN pg_class c ON c.oid = l.relation JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE NOT l.granted AND l.pid <> pg_backend_pid()"
            )
            found = cursor.fetchall()
            if found:
                return tuple(str(v) for v in found[0])
            time.sleep(0.05)
    raise AssertionError("no writer came to wait for the catalog's snapshot table")
