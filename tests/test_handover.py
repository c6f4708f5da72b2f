"""``bizagi-etl extract`` as a program: once the streams are in the lake, the process replaces
its image with one that loads (bizagi_etl/handover.py). Same PID, exit status and output; the
loading image holds DuckDB but not pyarrow, httpx or pandas; what failed on its own account or
ended the run is reported as before; an image that cannot start loads in the same process."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from conftest import WRONG_KEY_STREAMS

from bizagi_etl.cli import PROGRAM, main
from bizagi_etl.pipeline.lake import Lake

CLI = [sys.executable, "-m", "bizagi_etl.cli"]
WINDOW = ["--start", "2025-06-01", "--end", "2025-06-15"]
# Loaded by every image of the process (Python imports sitecustomize at start): each image
# says it started, and the image that exits says what it had imported.
SITE = """
import atexit, os, sys
print("IMAGE STARTED", os.getpid(), sys.flags.utf8_mode, sys.warnoptions, flush=True)
atexit.register(lambda: print("IMAGE EXITED", os.getpid(), sorted(
    m for m in ("pyarrow", "httpx", "pandas", "duckdb") if m in sys.modules), flush=True))
"""


def _env(server, folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIZAGI_")}
    return env | {"BIZAGI_BASE_URL": server.base_url, "BIZAGI_CLIENT_ID": server.client_id,
                  "BIZAGI_CLIENT_SECRET": server.client_secret,
                  "BIZAGI_LAKE": str(folder / "lake"),
                  "BIZAGI_WAREHOUSE": str(folder / "w.duckdb"), **extra}  # fmt: skip


def _program(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=180)


def _query(folder: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(folder / "w.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_the_load_runs_in_a_fresh_image_of_the_same_process_without_pyarrow(small_server, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(SITE), encoding="utf-8")
    env = _env(small_server, tmp_path, PYTHONPATH=str(site))
    process = subprocess.Popen([*CLI, "extract", "cases", *WINDOW], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr
    started = [line.split() for line in stdout.splitlines() if line.startswith("IMAGE STARTED")]
    exited = [line for line in stdout.splitlines() if line.startswith("IMAGE EXITED")]
    assert [s[2] for s in started] == [str(process.pid)] * 2, "two images, one process"
    assert exited == [f"IMAGE EXITED {process.pid} ['duckdb']"], "the loader imports DuckDB only"
    assert "What landed" in stdout
    lake = Lake(tmp_path / "lake")
    (landed,) = _query(tmp_path, "SELECT count(*) FROM bizagi.cases")[0]
    (params,) = _query(tmp_path, "SELECT count(*) FROM bizagi.case_parameters")[0]
    (viewed,) = _query(tmp_path, "SELECT sum(cases) FROM analytics.cases_per_process_day")[0]
    assert landed == viewed == lake.rows("cases") > 0
    assert params == lake.rows("case_parameters") > 0
    assert f"{landed:,}" in stdout, "the summary counts what the warehouse holds"
    assert not list(tmp_path.glob(".bizagi-land-*")), "the plan's folder is gone"


def test_the_loading_image_keeps_the_interpreters_options(small_server, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(SITE), encoding="utf-8")
    env = _env(small_server, tmp_path, PYTHONPATH=str(site), LC_ALL="C.UTF-8")
    for name in ("PYTHONWARNINGS", "PYTHONUTF8", "PYTHONDEVMODE"):  # only the options count
        env.pop(name, None)
    options = ["-X", "utf8", "-W", "ignore::DeprecationWarning"]
    done = subprocess.run([sys.executable, *options, *CLI[1:], "extract", "processes", *WINDOW],
                          env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    started = [line for line in done.stdout.splitlines() if line.startswith("IMAGE STARTED")]
    assert len(started) == 2, "two images"
    assert all(line.endswith("1 ['ignore::DeprecationWarning']") for line in started), started


def test_a_stream_that_fails_is_reported_after_the_others_landed(small_server, tmp_path):
    streams = tmp_path / "streams.toml"
    streams.write_text(WRONG_KEY_STREAMS, encoding="utf-8")
    env = _env(small_server, tmp_path, BIZAGI_STREAMS_FILE=str(streams))
    done = _program(["extract", "people", "bad_claims", *WINDOW], env)
    assert done.returncode == 1
    failed = [line for line in done.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1
    assert "stream bad_claims" in failed[0]
    assert "'claim_id' names no attribute" in failed[0]
    assert "Traceback" not in done.stderr
    assert _query(tmp_path, "SELECT count(*) FROM bizagi.people")[0][0] > 0
    views = {r[0] for r in _query(tmp_path, "SELECT view_name FROM duckdb_views()")}
    assert "latest_people" in views, "a custom snapshot stream's view, from the plan"


def test_an_error_that_ends_the_run_still_loads_the_streams_before_it(small_server, tmp_path):
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "cases").write_text("a file where the table's folder goes")
    done = _program(["extract", "processes", "cases", *WINDOW], _env(small_server, tmp_path))
    assert done.returncode == 1
    assert "FAILED" in done.stderr
    assert "cases" in done.stderr
    assert "Traceback" not in done.stderr
    assert _query(tmp_path, "SELECT count(*) FROM bizagi.processes")[0][0] > 0


def test_a_rerun_leaves_no_replaced_version_behind(small_server, tmp_path):
    """The extracting image waits for the deletion of what it replaced before it is
    replaced (exec runs no atexit handler)."""
    env = _env(small_server, tmp_path)
    for _ in range(2):
        done = _program(["extract", "cases", *WINDOW], env)
        assert done.returncode == 0, done.stderr
    staging = tmp_path / "lake" / "_staging"
    assert [p for p in staging.rglob("*") if p.is_file()] == []


def test_an_image_that_cannot_start_loads_in_the_same_process(
    small_server, tmp_path, monkeypatch, caplog
):
    def refused(path, argv):
        raise OSError(errno.ENOEXEC, "Exec format error", path)

    monkeypatch.setattr(os, "execv", refused)
    env = {k: "" for k in os.environ if k.startswith("BIZAGI_")} | _env(small_server, tmp_path)
    result = CliRunner().invoke(main, ["extract", "cases", *WINDOW], env=env, obj=PROGRAM)
    assert result.exit_code == 0, result.output
    assert "could not start the load in a fresh process" in caplog.text
    assert _query(tmp_path, "SELECT count(*) FROM bizagi.cases")[0][0] > 0
    assert not list(tmp_path.glob(".bizagi-land-*"))


@pytest.mark.parametrize(
    ("folder", "plan", "said", "kept"),
    [
        ("mine", "{}", "is not a load plan", True),  # land removes only a plan's own folder
        (".bizagi-land-old", '{"version": "0.0.0-elsewhere"}',
         "a load plan of bizagi-etl '0.0.0-elsewhere', not of this", False),
    ],
)  # fmt: skip
def test_land_refuses_what_is_not_a_plan_of_this_version(tmp_path, folder, plan, said, kept):
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "plan.json").write_text(plan)
    done = subprocess.run([*CLI, "land", str(tmp_path / folder / "plan.json")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert said in done.stderr
    assert (tmp_path / folder).exists() is kept
