"""Every BIZAGI_* setting means the same to the CLI and to the Dagster code location: one
settings object, one parser, one message naming the variable when a value is bad."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bizagi_etl.cli import main
from bizagi_etl.connector import ENV_VARS, BizagiSettings, SettingsError
from bizagi_etl.pipeline import PIPELINE_ENV_VARS, PipelineSettings
from dagster_project.defs.resources import bizagi_from_env, lakehouse_from_env

ROOT = Path(__file__).resolve().parent.parent
PAGE_SIZE_MESSAGE = "setting 'page_size' (BIZAGI_PAGE_SIZE): expected a whole number, got 'abc'"


def every_setting(tmp_path: Path) -> dict[str, str]:
    """A value for every variable the README lists, none of them a default."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    env = {
        "BIZAGI_BASE_URL": "http://bizagi.internal.example",
        "BIZAGI_CLIENT_ID": "etl-app",
        "BIZAGI_CLIENT_SECRET": "s3cret-value",
        "BIZAGI_TOKEN_URL": "http://login.internal.example/token",
        "BIZAGI_SCOPE": "api offline",
        "BIZAGI_AUTH_METHOD": "client_secret_post",
        "BIZAGI_PAGE_SIZE": "250",
        "BIZAGI_MAX_PAGES": "77",
        "BIZAGI_CONNECT_TIMEOUT": "3.5",
        "BIZAGI_READ_TIMEOUT": "42",
        "BIZAGI_MAX_RETRIES": "2",
        "BIZAGI_RETRY_BUDGET": "17",
        "BIZAGI_MAX_BACKOFF": "4",
        "BIZAGI_VERIFY_TLS": "false",
        "BIZAGI_CA_BUNDLE": str(bundle),
        "BIZAGI_ALLOW_HTTP": "yes",
        "BIZAGI_MAX_CONCURRENCY": "7",
        "BIZAGI_FILTER_ENCODING": "standard",
        "BIZAGI_REQUEST_DEADLINE": "75",
        "BIZAGI_MAX_RESPONSE_BYTES": "2097152",
        "BIZAGI_LAKE": str(tmp_path / "my-lake"),
        "BIZAGI_WAREHOUSE": str(tmp_path / "my.duckdb"),
        "BIZAGI_DUCKDB_MEMORY_LIMIT": "64MB",
        "BIZAGI_STREAMS_FILE": str(tmp_path / "streams.toml"),
        "BIZAGI_START_DATE": "2025-02-03",
        "BIZAGI_LOCK_TIMEOUT": "45",
        "BIZAGI_WAREHOUSE_DATA": "s3://my-bucket/data/",
        "BIZAGI_BACKFILL_RUN_DAYS": "7",
    }
    assert set(env) == set(ENV_VARS.values()) | set(PIPELINE_ENV_VARS.values())
    return env


def test_the_dagster_resources_read_every_setting_as_the_cli_does(tmp_path, monkeypatch):
    env = every_setting(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    expected = BizagiSettings.from_env(env)
    defaults = BizagiSettings(base_url="https://x.example", client_id="a", client_secret="b")
    with bizagi_from_env(env).process_config_and_initialize_cm() as resource:  # EnvVars resolved
        got = resource.settings()
    for field in dataclasses.fields(BizagiSettings):
        assert getattr(got, field.name) == getattr(expected, field.name), field.name
        if field.name not in ("base_url", "token_url"):  # derived from each other
            assert getattr(got, field.name) != getattr(defaults, field.name), field.name

    where = PipelineSettings.from_env(env)
    lakehouse = lakehouse_from_env(env)
    assert Path(lakehouse.lake_root) == Path(where.lake) == tmp_path / "my-lake"
    assert Path(lakehouse.warehouse_path) == Path(where.warehouse) == tmp_path / "my.duckdb"
    assert lakehouse.duckdb_memory_limit == where.duckdb_memory_limit == "64MB"
    assert where.start_date == dt.date(2025, 2, 3)
    assert lakehouse.lock_timeout == where.lock_timeout == 45
    assert lakehouse.warehouse_data == where.warehouse_data == "s3://my-bucket/data/"
    assert where.run_days == 7


def test_unset_settings_take_the_librarys_defaults_in_both():
    built = bizagi_from_env({})
    defaults = {f.name: f.default for f in dataclasses.fields(BizagiSettings)}
    for name, default in defaults.items():
        if name in ("base_url", "client_id", "client_secret", "ca_bundle"):
            continue
        assert getattr(built, name) == default, name
    lakehouse = lakehouse_from_env({})
    assert Path(lakehouse.lake_root) == Path(PipelineSettings().lake)
    assert lakehouse.duckdb_memory_limit == PipelineSettings().duckdb_memory_limit


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BIZAGI_PAGE_SIZE", "abc", PAGE_SIZE_MESSAGE),
        ("BIZAGI_READ_TIMEOUT", "soon", "(BIZAGI_READ_TIMEOUT): expected a number, got 'soon'"),
        ("BIZAGI_VERIFY_TLS", "maybe", "(BIZAGI_VERIFY_TLS): expected true or false"),
        ("BIZAGI_START_DATE", "2024-02-30", "(BIZAGI_START_DATE): expected a date YYYY-MM-DD"),
        ("BIZAGI_START_DATE", "1.1.2024", "got '1.1.2024'"),
    ],
)
def test_a_bad_value_is_named_the_same_way_everywhere(variable, value, message):
    pipeline = variable in PIPELINE_ENV_VARS.values()
    load = PipelineSettings.from_env if pipeline else bizagi_from_env
    with pytest.raises(SettingsError) as raised:
        load({variable: value})
    assert message in str(raised.value)


def test_with_credentials_set_loading_validates_the_whole_settings_object():
    env = {"BIZAGI_BASE_URL": "http://bizagi.example.com", "BIZAGI_CLIENT_ID": "a",
           "BIZAGI_CLIENT_SECRET": "b"}  # fmt: skip
    with pytest.raises(SettingsError, match=r"plain http:// to bizagi\.example\.com"):
        bizagi_from_env(env)


def test_a_bad_value_fails_dagster_loading_with_the_clis_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIZAGI_")}
    env["BIZAGI_PAGE_SIZE"] = "abc"
    dg = str(Path(sys.executable).parent / "dg")
    dg_run = subprocess.run([dg, "check", "defs"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert dg_run.returncode != 0
    assert PAGE_SIZE_MESSAGE in dg_run.stdout + dg_run.stderr

    cli = CliRunner().invoke(main, ["extract", "cases", "--start", "2025-01-01"], env={
        **{k: "" for k in os.environ if k.startswith("BIZAGI_")},
        "BIZAGI_BASE_URL": "http://127.0.0.1:9", "BIZAGI_CLIENT_ID": "a",
        "BIZAGI_CLIENT_SECRET": "b", "BIZAGI_PAGE_SIZE": "abc",
        "BIZAGI_LAKE": str(tmp_path / "lake"),
    })  # fmt: skip
    assert cli.exit_code == 1
    assert PAGE_SIZE_MESSAGE in cli.output


def test_the_start_date_sets_the_daily_partitions():
    code = (
        "from dagster_project.translator import DAILY_PARTITIONS\n"
        "print(DAILY_PARTITIONS.start.date().isoformat())\n"
    )
    env = {**os.environ, "BIZAGI_START_DATE": "2025-02-03"}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert result.stdout.strip() == "2025-02-03"
