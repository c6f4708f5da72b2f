"""Every failure a user of the CLI can meet is one line (exit 1 or 2), never a traceback;
--debug shows the traceback. Wrong keys and cursors fail their stream before anything lands
and poison nothing; days are four-digit and real; echoed input is cut to a readable length."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from conftest import WRONG_KEY_STREAMS

from bizagi_etl.cli import main
from bizagi_etl.connector import odata


def invoke(args: list[str], env: dict[str, str] | None = None):
    clean = {k: "" for k in os.environ if k.startswith("BIZAGI_")}
    return CliRunner().invoke(main, args, env={**clean, **(env or {})})


def server_env(server, folder: Path, **extra: str) -> dict[str, str]:
    return {"BIZAGI_BASE_URL": server.base_url, "BIZAGI_CLIENT_ID": server.client_id,
            "BIZAGI_CLIENT_SECRET": server.client_secret, "BIZAGI_LAKE": str(folder / "lake"),
            "BIZAGI_WAREHOUSE": str(folder / "w.duckdb"), **extra}  # fmt: skip


def failed_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("FAILED")]


def test_a_wrong_key_fails_its_stream_only_and_poisons_nothing(small_server, tmp_path):
    streams = tmp_path / "streams.toml"
    streams.write_text(WRONG_KEY_STREAMS, encoding="utf-8")
    env = server_env(small_server, tmp_path, BIZAGI_STREAMS_FILE=str(streams))
    args = ["extract", "people", "bad_claims", "--start", "2025-01-01"]
    first = invoke(args, env)
    assert first.exit_code == 1
    (line,) = failed_lines(first.output)
    assert "stream bad_claims" in line
    assert "'claim_id' names no attribute" in line
    assert "Traceback" not in first.output
    assert not (tmp_path / "lake" / "bad_claims").exists(), "nothing of it landed"
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM bizagi.people").fetchone()[0] > 0
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    finally:
        con.close()
    assert "latest_people" in views
    # Later extracts with the same file are not poisoned: any other stream still works.
    again = invoke(["extract", "processes"], env)
    assert again.exit_code == 0, again.output


def test_a_cursor_that_names_no_attribute_is_refused_before_paging(small_server, tmp_path):
    streams = tmp_path / "streams.toml"
    streams.write_text('[[streams]]\nname = "c"\npath = "odata/data/Claims"\nkey = "id"\n'
                       'cursor = "modifiedOn"\n', encoding="utf-8")  # fmt: skip
    env = server_env(small_server, tmp_path, BIZAGI_STREAMS_FILE=str(streams))
    result = invoke(["extract", "c", "--start", "2025-01-01", "--end", "2025-02-01"], env)
    assert result.exit_code == 1
    (line,) = failed_lines(result.output)
    assert "'modifiedOn' names no attribute of $metadata of odata/data/Claims" in line


@pytest.mark.parametrize(
    ("day", "message"),
    [
        ("2024-02-30", "2024-02-30 is not a real day"),
        ("2023-02-29", "2023-02-29 is not a real day"),
        ("1-01-01", "expected a day as YYYY-MM-DD (four-digit year), got '1-01-01'"),
        ("x" * 10_000, "(10,000 chars)"),
    ],
)
def test_days_are_four_digit_and_real(day, message):
    result = invoke(["extract", "cases", "--start", day])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output) < 600, "echoed input is cut"


def test_year_one_is_sent_zero_padded():
    """--start 0001-01-01 used to send 1-01-01T00:00:00Z (glibc's %Y), which no server reads."""
    window = odata.window("lastModified", dt.datetime(1, 1, 1, tzinfo=dt.UTC),
                          dt.datetime(999, 1, 2, tzinfo=dt.UTC))  # fmt: skip
    assert window == "lastModified ge 0001-01-01T00:00:00Z and lastModified lt 0999-01-02T00:00:00Z"


def test_a_long_unknown_stream_name_is_cut(small_server, tmp_path):
    result = invoke(["extract", "s" * 10_000, "--no-load"], server_env(small_server, tmp_path))
    assert result.exit_code == 1
    assert "unknown stream" in result.output
    assert len(result.output) < 1_000


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("warehouse-is-a-folder", "w.duckdb"),
        ("warehouse-not-duckdb", "w.duckdb"),
        ("lake-under-a-file", "file"),
        ("lake-in-proc", "/proc"),
    ],
)
def test_bad_paths_are_one_line(small_server, tmp_path, where, expected):
    env = server_env(small_server, tmp_path)
    if where == "warehouse-is-a-folder":
        (tmp_path / "w.duckdb").mkdir()
    elif where == "warehouse-not-duckdb":
        (tmp_path / "w.duckdb").write_text("not a database\n" * 100)
    elif where == "lake-under-a-file":
        (tmp_path / "file").write_text("x")
        env["BIZAGI_LAKE"] = str(tmp_path / "file" / "lake")
    else:
        env["BIZAGI_LAKE"] = "/proc/self/lake"
    result = invoke(["extract", "processes"], env)
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith(("FAILED", "Error"))]
    assert len(lines) == 1, result.output
    assert expected in lines[0]


def test_debug_shows_the_traceback(small_server, tmp_path):
    env = server_env(small_server, tmp_path)
    (tmp_path / "w.duckdb").mkdir()
    result = CliRunner().invoke(main, ["--debug", "extract", "processes"], env=env)
    assert result.exit_code == 1
    assert result.exception is not None  # raised, so click's runner (or Python) prints it
    assert not failed_lines(result.output)


def test_an_unknown_log_level_is_refused():
    result = invoke(["streams"], {"BIZAGI_LOG_LEVEL": "LOUD"})
    assert result.exit_code == 2
    assert "BIZAGI_LOG_LEVEL" in result.output
