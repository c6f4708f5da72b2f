"""`bizagi-etl streams`, `extract` and `demo` as a user runs them, against real emulators.

What lands in DuckDB is compared with the emulator's ground truth; the views' numbers are
recomputed from the truth by their definitions.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from bizagi_etl.cli import main
from bizagi_etl.emulator import EmulatorConfig
from bizagi_etl.emulator.app import Emulated
from bizagi_etl.emulator.truth import export_truth
from bizagi_etl.pipeline.lake import Lake

BUILTIN = {  # stream -> (tables, key, cursor or None)
    "processes": (["processes"], "id", None),
    "stakeholders": (["stakeholders"], "id", None),
    "entities": (["entities"], "id", None),
    "cases": (["cases", "case_parameters"], "id", "creationDate"),
    "inbox": (["inbox", "inbox_workitems"], "id", None),
}
ENTITY_TABLES = ["entity_country", "entity_currency", "entity_department", "entity_product"]


def _clean_env() -> dict[str, str | None]:
    """Every BIZAGI_* variable of the outer environment removed: tests see only their own."""
    return {k: None for k in os.environ if k.startswith("BIZAGI_")}


def _env(server) -> dict[str, str | None]:
    return _clean_env() | {
        "BIZAGI_BASE_URL": server.base_url,
        "BIZAGI_CLIENT_ID": server.client_id,
        "BIZAGI_CLIENT_SECRET": server.client_secret,
        "BIZAGI_PAGE_SIZE": "1000",
    }


def _invoke(args: list[str], env: dict[str, str | None]) -> Result:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def _rows(output: str) -> list[list[str]]:
    """The cells of every row of the rich tables in the output."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines()
            if line.startswith("│")]  # fmt: skip


def _query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _in_window(cases: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    lo, hi = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    return cases[(cases["creation_utc"] >= lo) & (cases["creation_utc"] < hi)]


# -- streams --------------------------------------------------------------------------------------


def test_streams_lists_every_builtin_with_key_and_partitioning(small_server):
    result = _invoke(["streams"], _env(small_server))
    assert result.exit_code == 0, result.output
    rows = {r[0]: r for r in _rows(result.output) if r and r[0]}
    for name, (tables, key, cursor) in BUILTIN.items():
        row = rows[name]
        text = " ".join(row)
        for table in tables:
            assert table in text, (name, table)
        assert key in row, name
        if cursor:
            assert "daily" in text, name
            assert cursor in text, name
        else:
            assert "snapshot" in text, name
    assert "entity_values" in rows


def test_streams_shows_custom_streams_from_a_file(small_server, tmp_path):
    file = tmp_path / "mine.toml"
    file.write_text(
        '[[streams]]\nname = "personas"\npath = "odata/data/stakeholders"\nkey = "id"\n\n'
        '[[streams]]\nname = "my_cases"\npath = "odata/data/cases"\nkey = "idCase"\n'
        'cursor = "CreationDate"\n',
        encoding="utf-8",
    )
    result = _invoke(["streams", "--streams-file", str(file)], _env(small_server))
    assert result.exit_code == 0, result.output
    rows = {r[0]: r for r in _rows(result.output) if r and r[0]}
    assert set(BUILTIN) <= set(rows)
    assert "snapshot" in " ".join(rows["personas"])
    assert "odata/data/stakeholders" in rows["personas"]
    mine = " ".join(rows["my_cases"])
    assert "daily" in mine
    assert "CreationDate" in mine
    assert "id_case" in rows["my_cases"]


def test_streams_refuses_a_bad_file_with_its_reason(small_server, tmp_path):
    file = tmp_path / "bad.toml"
    file.write_text('[[streams]]\nname = "../x"\npath = "odata/data/x"\nkey = "id"\n')
    result = _invoke(["streams", "--streams-file", str(file)], _env(small_server))
    assert result.exit_code == 2
    assert "../x" in result.output


# -- extract --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def september(small_server, tmp_path_factory) -> tuple[Result, Path, Path]:
    folder = tmp_path_factory.mktemp("september")
    lake, db = folder / "L", folder / "W.duckdb"
    args = ["extract", "cases", "--start", "2026-09-01", "--end", "2026-10-01",
            "--lake", str(lake), "--warehouse", str(db)]  # fmt: skip
    return _invoke(args, _env(small_server)), lake, db


def test_extract_cases_prints_a_summary_of_what_landed(september, small_truth):
    result, lake, _ = september
    assert result.exit_code == 0, result.output
    cases = _in_window(small_truth["cases"], "2026-09-01", "2026-10-01")
    params = small_truth["case_parameters"]
    n_params = int(params["case_id"].isin(cases["id"]).sum())
    rows = _rows(result.output)
    (cases_row,) = [r for r in rows if "cases" in r]
    (params_row,) = [r for r in rows if "case_parameters" in r]
    assert f"{len(cases):,}" in cases_row
    assert f"{n_params:,}" in params_row
    assert "30" in cases_row  # one partition per day of September
    assert str(lake) in result.output.replace("\n", "")


def test_extract_cases_loads_exactly_the_truths_cases(september, small_truth):
    result, _, db = september
    assert result.exit_code == 0, result.output
    truth = _in_window(small_truth["cases"], "2026-09-01", "2026-10-01")
    assert len(truth) > 50
    landed = _query(
        db,
        "SELECT id, case_number, process_id, epoch(creation_date), closed, _partition "
        "FROM bizagi.cases ORDER BY id",
    )
    want = sorted(
        (int(r.id), r.caseNumber, r.process_id, r.creation_utc.timestamp(), bool(r.closed),
         r.creation_utc.date().isoformat())
        for r in truth.itertuples()
    )  # fmt: skip
    assert [(*r[:3], float(r[3]), *r[4:]) for r in landed] == want
    params = small_truth["case_parameters"]
    params = params[params["case_id"].isin(truth["id"])]
    got = _query(db, "SELECT case_id, position, xpath FROM bizagi.case_parameters ORDER BY ALL")
    assert got == sorted(zip(params["case_id"], params["position"], params["xpath"], strict=True))


def test_extract_cases_builds_the_views(september, small_truth):
    _, _, db = september
    truth = _in_window(small_truth["cases"], "2026-09-01", "2026-10-01")
    per_day = _query(
        db,
        "SELECT process_name, CAST(day AS VARCHAR), cases, closed_cases "
        "FROM analytics.cases_per_process_day ORDER BY ALL",
    )
    grouped = truth.assign(day=truth["creation_utc"].dt.date.astype(str)).groupby(
        ["processName", "day"]
    )
    want = sorted((p, d, len(g), int(g["closed"].sum())) for (p, d), g in grouped)
    assert per_day == want


def test_no_load_writes_the_lake_only(small_server, small_truth, tmp_path):
    lake, db = tmp_path / "L", tmp_path / "W.duckdb"
    args = ["extract", "cases", "--start", "2026-09-01", "--end", "2026-09-08",
            "--lake", str(lake), "--warehouse", str(db), "--no-load"]  # fmt: skip
    result = _invoke(args, _env(small_server))
    assert result.exit_code == 0, result.output
    assert not db.exists()
    assert lake.is_dir()
    truth = _in_window(small_truth["cases"], "2026-09-01", "2026-09-08")
    assert sorted(Lake(lake).read("cases").column("id").to_pylist()) == sorted(truth["id"])
    assert len(Lake(lake).partitions("cases")) == 7


@pytest.mark.parametrize(
    ("start", "end"), [("2026-09-01", "2026-09-01"), ("2026-09-02", "2026-09-01")]
)
def test_start_not_before_end_is_a_usage_error(small_server, tmp_path, start, end):
    lake, db = tmp_path / "L", tmp_path / "W.duckdb"
    args = ["extract", "cases", "--start", start, "--end", end,
            "--lake", str(lake), "--warehouse", str(db)]  # fmt: skip
    result = _invoke(args, _env(small_server))
    assert result.exit_code == 2
    assert "--start" in result.output
    assert "--end" in result.output
    assert not db.exists()


def test_an_unknown_stream_is_a_clear_error(small_server, tmp_path):
    lake, db = tmp_path / "L", tmp_path / "W.duckdb"
    args = ["extract", "no_such_stream", "--lake", str(lake), "--warehouse", str(db)]
    result = _invoke(args, _env(small_server))
    assert result.exit_code != 0
    assert "no_such_stream" in result.output
    assert "cases" in result.output  # the known names are listed
    assert "Traceback" not in result.output


def test_missing_settings_name_the_variable(tmp_path):
    lake, db = tmp_path / "L", tmp_path / "W.duckdb"
    args = ["extract", "cases", "--start", "2026-09-01", "--end", "2026-09-02",
            "--lake", str(lake), "--warehouse", str(db)]  # fmt: skip
    env = _clean_env() | {"BIZAGI_CLIENT_ID": "x", "BIZAGI_CLIENT_SECRET": "y"}
    result = _invoke(args, env)
    assert result.exit_code != 0
    assert "BIZAGI_BASE_URL" in result.output
    assert "Traceback" not in result.output


def test_extract_entity_values_lands_one_table_per_entity(small_server, small_truth, tmp_path):
    lake, db = tmp_path / "L", tmp_path / "W.duckdb"
    args = ["extract", "entity_values", "--lake", str(lake), "--warehouse", str(db)]
    result = _invoke(args, _env(small_server))
    assert result.exit_code == 0, result.output
    truth = small_truth["entity_values"].groupby("entity_name")["value_id"].nunique()
    sql = (
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'bizagi' AND table_name LIKE 'entity_%'"
    )
    tables = [r[0] for r in _query(db, sql)]
    assert sorted(tables) == ENTITY_TABLES
    for name, count in truth.items():
        table = f"entity_{name.lower()}"
        assert _query(db, f"SELECT count(*) FROM bizagi.{table}") == [(count,)], table
    types = dict(
        _query(
            db,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'bizagi' AND table_name = 'entity_product'",
        )
    )
    assert types["price"] == "DECIMAL(19,4)"
    assert types["weight_kg"] == "DOUBLE"
    assert types["stock"] == "INTEGER"
    assert types["launch_date"] == "TIMESTAMP WITH TIME ZONE"
    assert types["discontinued"] == "BOOLEAN"
    assert types["disabled"] == "BOOLEAN"
    # money is exact: the sum of prices equals the sum of the truth's JSON texts as decimals
    prices = small_truth["entity_values"]
    prices = prices[(prices["entity_name"] == "Product") & (prices["xpath"] == "Price")]
    want = sum(Decimal(v) for v in prices["value"] if json.loads(v) is not None)
    assert _query(db, "SELECT sum(price) FROM bizagi.entity_product") == [(want,)]
    assert "latest_entity_product" in {
        r[0]
        for r in _query(
            db, "SELECT table_name FROM information_schema.tables WHERE table_schema='analytics'"
        )
    }


# -- demo -----------------------------------------------------------------------------------------

DEMO_CASES, DEMO_SEED = 1500, 42
DEMO_TABLES = ["case_parameters", "cases", "entities", *ENTITY_TABLES, "inbox", "inbox_workitems",
               "processes", "stakeholders"]  # fmt: skip
DEMO_VIEWS = ["case_sla", "cases_per_process_day", "latest_processes", "open_workitems"]


def _counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'bizagi'"
        ).fetchall()]  # fmt: skip
        return {n: con.execute(f'SELECT count(*) FROM bizagi."{n}"').fetchone()[0] for n in names}
    finally:
        con.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, list[Result], list[dict[str, int]]]:
    folder = tmp_path_factory.mktemp("demo") / "F"
    args = ["demo", "--folder", str(folder), "--cases", str(DEMO_CASES), "--seed", str(DEMO_SEED)]
    results, counts = [], []
    for _ in range(2):
        results.append(_invoke(args, _clean_env()))
        counts.append(_counts(folder / "warehouse.duckdb"))
    return folder, results, counts


@pytest.fixture(scope="module")
def demo_truth(tmp_path_factory) -> dict[str, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("demo_truth")
    export_truth(Emulated(EmulatorConfig(cases=DEMO_CASES, seed=DEMO_SEED)).ds, folder)
    return {p.stem: pd.read_parquet(p) for p in folder.glob("*.parquet")}


def test_demo_runs_and_names_its_folder(demo):
    folder, results, _ = demo
    for result in results:
        assert result.exit_code == 0, result.output
        assert str(folder) in result.output.replace("\n", "")
    assert (folder / "lake").is_dir()
    assert (folder / "warehouse.duckdb").is_file()
    lake = Lake(folder / "lake")
    for table in DEMO_TABLES:
        assert lake.files(table), table


def test_demo_leaves_the_tables_and_views(demo):
    folder, _, counts = demo
    assert sorted(counts[-1]) == sorted(DEMO_TABLES)
    views = {r[0] for r in _query(folder / "warehouse.duckdb",
             "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics' "
             "AND table_type = 'VIEW'")}  # fmt: skip
    assert set(DEMO_VIEWS) <= views


def test_demo_twice_gives_the_same_counts(demo):
    _, _, counts = demo
    assert counts[0] == counts[1]


def test_demo_counts_equal_the_truth(demo, demo_truth):
    _, _, counts = demo
    counts = counts[-1]
    assert counts["cases"] == len(demo_truth["cases"]) == DEMO_CASES
    assert counts["case_parameters"] == len(demo_truth["case_parameters"])
    assert counts["processes"] == len(demo_truth["processes"])
    assert counts["stakeholders"] == len(demo_truth["stakeholders"])
    assert counts["entities"] == len(demo_truth["entities"])
    assert counts["inbox"] == len(demo_truth["inbox"])
    assert counts["inbox_workitems"] == len(demo_truth["workitems"])
    per_entity = demo_truth["entity_values"].groupby("entity_name")["value_id"].nunique()
    for name, n in per_entity.items():
        assert counts[f"entity_{name.lower()}"] == n, name


def test_demo_cases_per_process_day_matches_the_truth(demo, demo_truth):
    folder, _, _ = demo
    db = folder / "warehouse.duckdb"
    got = _query(db, "SELECT process_name, CAST(day AS VARCHAR), cases, closed_cases, "
                     "open_cases FROM analytics.cases_per_process_day ORDER BY ALL")  # fmt: skip
    cases = demo_truth["cases"]
    assert sum(r[2] for r in got) == len(cases)
    grouped = cases.assign(day=cases["creation_utc"].dt.date.astype(str)).groupby(
        ["processName", "day"]
    )
    want = sorted(
        (p, d, len(g), int(g["closed"].sum()), int((~g["closed"]).sum())) for (p, d), g in grouped
    )
    assert got == want


def test_demo_open_workitems_matches_the_truth(demo, demo_truth):
    folder, _, _ = demo
    got = _query(
        folder / "warehouse.duckdb",
        "SELECT task, state, workitems, cases FROM analytics.open_workitems ORDER BY ALL",
    )
    items = demo_truth["workitems"]
    want = sorted(
        (task, state, len(g), g["case_id"].nunique())
        for (task, state), g in items.groupby(["taskDisplayName", "state"])
    )
    assert got == want


def _instant(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def test_demo_case_sla_of_closed_cases_matches_the_definition(demo, demo_truth):
    folder, _, _ = demo
    got = dict(
        _query(folder / "warehouse.duckdb",
               "SELECT sla_status, count(*) FROM analytics.case_sla WHERE closed GROUP BY ALL")
    )  # fmt: skip
    want: Counter[str] = Counter()
    for r in demo_truth["cases"][demo_truth["cases"]["closed"]].itertuples():
        estimate, solved = _instant(r.estimatedSolutionDate), _instant(r.solutionDate)
        if estimate is None:
            want["no estimate"] += 1
        elif solved is not None and solved <= estimate:
            want["on time"] += 1
        else:
            want["overdue"] += 1
    assert got == dict(want)
    total = _query(folder / "warehouse.duckdb", "SELECT count(*) FROM analytics.case_sla")
    assert total == [(DEMO_CASES,)]


def test_demo_latest_processes_has_each_process_once(demo, demo_truth):
    folder, _, _ = demo
    got = _query(folder / "warehouse.duckdb",
                 "SELECT id, name FROM analytics.latest_processes ORDER BY id")  # fmt: skip
    truth = demo_truth["processes"]
    assert got == sorted(zip(truth["id"], truth["name"], strict=True))


def test_demo_summary_names_every_table(demo):
    _, results, counts = demo
    output = results[-1].output
    for table in DEMO_TABLES:
        lines = [line for line in output.splitlines() if re.search(rf"\bbizagi\.{table}\b", line)]
        assert lines, table
        assert any(f"{counts[-1][table]:,}" in line for line in lines), (table, lines)
