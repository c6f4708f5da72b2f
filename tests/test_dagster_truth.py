"""Dagster says the truth: each day of a range run, each table of an asset and each view reports
its own numbers, and ``schema_unchanged`` compares a run with the run before it.

Runs execute in-process against the emulator (``small_server``); expected numbers come from the
emulator's ground truth (``small_truth``) or, for columns and views, from DuckDB itself, never
from the code under test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from conftest import execute, query
from dagster_support import definitions, resources

FIRST, LAST = "2026-05-28", "2026-05-31"  # 2026-05-30 has no case at all
DAYS = ["2026-05-28", "2026-05-29", "2026-05-30", "2026-05-31"]
END = "2026-06-01"
WINDOW = f"[{FIRST}, {END})"
VIEWS = ["cases_per_process_day", "case_sla", "open_workitems"]
LATEST_BUILTIN = ["processes", "stakeholders", "entities", "inbox"]


def key(layer: str, name: str) -> dg.AssetKey:
    return dg.AssetKey(["bizagi", layer, name])


LAKE_CASES, CASES = key("lake", "cases"), key("warehouse", "cases")


@pytest.fixture(scope="module")
def d() -> dg.Definitions:
    return definitions()


def run_range(
    d: dg.Definitions, res: dict[str, Any], instance: dg.DagsterInstance, first: str, last: str
) -> dg.ExecuteInProcessResult:
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return d.resolve_job_def("bizagi_daily").execute_in_process(
        tags=tags, resources=res, instance=instance
    )


def duckdb_columns(folder: Path, schema: str, table: str) -> dict[str, str]:
    rows = query(
        folder,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, table],
    )
    assert rows, f"{schema}.{table} is not in DuckDB"
    return dict(rows)


def duckdb_count(folder: Path, relation: str) -> int:
    ((n,),) = query(folder, f"SELECT count(*) FROM {relation}")
    return int(n)


def events(result: dg.ExecuteInProcessResult, asset: dg.AssetKey) -> list[dg.AssetMaterialization]:
    return [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == asset
    ]


def md(materialization: dg.AssetMaterialization) -> dict[str, Any]:
    """Metadata as plain values."""
    return {k: v.value for k, v in materialization.metadata.items()}


def schema_of(value: dg.TableSchema) -> dict[str, str]:
    return {c.name: c.type for c in value.columns}


def evaluation(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    (found,) = [e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == name]
    return found


# -- ground truth -------------------------------------------------------------------------------


def cases_on(truth: dict[str, pd.DataFrame], day: str) -> pd.DataFrame:
    cases = truth["cases"]
    lo = pd.Timestamp(day, tz="UTC")
    return cases[(cases.creation_utc >= lo) & (cases.creation_utc < lo + pd.Timedelta(days=1))]


def truth_by_day(truth: dict[str, pd.DataFrame]) -> dict[str, dict[str, int]]:
    """Day -> table -> rows: cases created that day, and their parameters."""
    params = truth["case_parameters"]
    out = {}
    for day in DAYS:
        ids = set(cases_on(truth, day).id)
        out[day] = {"cases": len(ids), "case_parameters": int(params.case_id.isin(ids).sum())}
    return out


def entity_truth(truth: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Table -> rows of every parameter entity (a table even for an entity without values)."""
    values = truth["entity_values"].groupby("entity_name").value_id.nunique()
    return {f"entity_{n.lower()}": int(values.get(n, 0)) for n in truth["entities"].name}


# -- a four-day range in one run ----------------------------------------------------------------


@pytest.fixture(scope="module")
def four_days(d, small_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("four_days")
    res, instance = resources(small_server, folder), dg.DagsterInstance.ephemeral()
    result = run_range(d, res, instance, FIRST, LAST)
    return result, folder, instance, res


def test_the_range_has_days_of_different_sizes(small_truth):
    """The test below means something only if the days differ (one is empty)."""
    per_day = truth_by_day(small_truth)
    assert len({n["cases"] for n in per_day.values()}) == len(DAYS)
    assert per_day["2026-05-30"]["cases"] == 0
    assert all(n["case_parameters"] > n["cases"] for n in per_day.values() if n["cases"])


def test_each_day_of_a_range_records_its_own_lake_numbers(four_days, small_truth):
    result, folder, _, _ = four_days
    assert result.success
    per_day = truth_by_day(small_truth)
    total = {t: sum(n[t] for n in per_day.values()) for t in ("cases", "case_parameters")}

    lake = events(result, LAKE_CASES)
    assert sorted(m.partition for m in lake) == DAYS  # one materialization per day, no more
    for m in lake:
        day, got = m.partition, md(m)
        assert got["dagster/partition_row_count"] == per_day[day]["cases"], day
        assert got["bizagi/tables"] == {
            t: {"rows": total[t], "partition_rows": per_day[day][t]} for t in total
        }, day
        assert got["dagster/row_count"] == total["cases"]  # the lake holds only these days
        where = (folder / "lake" / "cases" / f"day={day}").resolve()
        assert Path(got["bizagi/partition_path"]) == where
        # the run's totals, the same on every day
        assert got["bizagi/run_window"] == WINDOW
        assert got["bizagi/run_rows"] == total["cases"]
        assert got["bizagi/run_tables"] == total
        assert got["bizagi/run_api_total"] == total["cases"]
        assert got["bizagi/run_partitions"] == 2 * len(DAYS)  # cases and case_parameters
        assert got["bizagi/run_requests"] == len(small_truth["processes"])  # not per day


def test_each_day_of_a_range_records_its_own_warehouse_numbers(four_days, small_truth):
    result, folder, _, _ = four_days
    per_day = truth_by_day(small_truth)
    total = {t: sum(n[t] for n in per_day.values()) for t in ("cases", "case_parameters")}
    columns = {t: duckdb_columns(folder, "bizagi", t) for t in total}
    assert duckdb_count(folder, "bizagi.cases") == total["cases"]

    loads = events(result, CASES)
    assert sorted(m.partition for m in loads) == DAYS
    for m in loads:
        day, got = m.partition, md(m)
        assert got["dagster/partition_row_count"] == per_day[day]["cases"], day
        assert got["dagster/row_count"] == total["cases"], day
        assert got["dagster/table_name"] == "bizagi.cases"
        assert schema_of(got["dagster/column_schema"]) == columns["cases"]
        assert got["bizagi/tables"] == {
            f"bizagi.{t}": {
                "rows": total[t],
                "partition_rows": per_day[day][t],
                "columns": columns[t],
            }
            for t in total
        }, day
        assert got["bizagi/run_window"] == WINDOW
        assert got["bizagi/run_loaded_rows"] == {f"bizagi.{t}": n for t, n in total.items()}


def test_the_windows_in_the_log_are_half_open(four_days):
    result, _, instance, _ = four_days
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert f"extracting cases {WINDOW}" in messages
    assert f"loading cases {WINDOW}" in messages
    assert not [m for m in messages if f"{FIRST}..{END}" in m]


# -- schema_unchanged compares runs, not the days of one run ------------------------------------


def test_schema_unchanged_compares_with_the_previous_run(d, small_server, tmp_path):
    res, instance = resources(small_server, tmp_path), dg.DagsterInstance.ephemeral()
    first = run_range(d, res, instance, "2026-06-01", "2026-06-02")
    check = evaluation(first, "schema_unchanged")
    assert check.passed  # two days of one run: nothing earlier to compare with
    assert "no earlier run" in check.metadata["note"].value

    second = run_range(d, res, instance, "2026-06-01", "2026-06-02")
    check = evaluation(second, "schema_unchanged")
    assert check.passed
    assert check.metadata["run_id"].value == second.run_id
    assert check.metadata["previous_run_id"].value == first.run_id
    assert check.metadata["added"].value == []

    # a column appears in a child table between runs: the next run says so, as a warning
    execute(tmp_path, "ALTER TABLE bizagi.case_parameters ADD COLUMN drifted INTEGER")
    third = run_range(d, res, instance, "2026-06-02", "2026-06-03")
    assert third.success
    check = evaluation(third, "schema_unchanged")
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["previous_run_id"].value == second.run_id
    assert check.metadata["added"].value == ["bizagi.case_parameters.drifted"]
    assert check.metadata["removed"].value == []
    assert check.metadata["type_changed"].value == []

    fourth = run_range(d, res, instance, "2026-06-03", "2026-06-03")
    check = evaluation(fourth, "schema_unchanged")
    assert check.passed  # the same columns as the third run
    assert check.metadata["previous_run_id"].value == third.run_id


# -- assets of several tables, and the views ----------------------------------------------------


@pytest.fixture(scope="module")
def snapshots(d, four_days):
    _, folder, instance, res = four_days
    result = d.resolve_job_def("bizagi_snapshots").execute_in_process(
        resources=res, instance=instance
    )
    assert result.success
    return result, folder


def test_a_family_reports_every_member_table(snapshots, small_truth):
    result, folder = snapshots
    expected = entity_truth(small_truth)
    assert len(expected) > 1

    (lake,) = events(result, key("lake", "entity_values"))
    got = md(lake)
    assert got["bizagi/tables"] == {
        t: {"rows": n, "partition_rows": n} for t, n in expected.items()
    }
    assert got["dagster/row_count"] == sum(expected.values())

    (load,) = events(result, key("warehouse", "entity_values"))
    got = md(load)
    assert got["bizagi/tables"] == {
        f"bizagi.{t}": {
            "rows": n,
            "partition_rows": n,
            "columns": duckdb_columns(folder, "bizagi", t),
        }
        for t, n in expected.items()
    }
    # no one table stands for the family: the sum, and no table name or column schema
    assert got["dagster/row_count"] == sum(expected.values())
    assert "dagster/table_name" not in got
    assert "dagster/column_schema" not in got


def test_a_snapshot_with_a_child_table_reports_both(snapshots, small_truth):
    result, folder = snapshots
    inbox = set(small_truth["inbox"].idCase)
    items = small_truth["workitems"]
    expected = {"inbox": len(inbox), "inbox_workitems": int(items.case_id.isin(inbox).sum())}

    (lake,) = events(result, key("lake", "inbox"))
    assert md(lake)["bizagi/tables"] == {
        t: {"rows": n, "partition_rows": n} for t, n in expected.items()
    }
    (load,) = events(result, key("warehouse", "inbox"))
    got = md(load)
    assert got["dagster/table_name"] == "bizagi.inbox"
    assert got["dagster/row_count"] == expected["inbox"]
    assert schema_of(got["dagster/column_schema"]) == duckdb_columns(folder, "bizagi", "inbox")
    assert got["bizagi/tables"] == {
        f"bizagi.{t}": {
            "rows": n,
            "partition_rows": n,
            "columns": duckdb_columns(folder, "bizagi", t),
        }
        for t, n in expected.items()
    }


def test_views_report_their_rows_and_columns(snapshots, small_truth):
    result, folder = snapshots
    for view in VIEWS:
        (m,) = events(result, key("analytics", view))
        got = md(m)
        assert got["dagster/table_name"] == f"analytics.{view}"
        assert got["dagster/row_count"] == duckdb_count(folder, f"analytics.{view}"), view
        assert schema_of(got["dagster/column_schema"]) == duckdb_columns(folder, "analytics", view)
    # tied to the ground truth: one row per process and day with cases in the range
    cases = pd.concat([cases_on(small_truth, day) for day in DAYS])
    groups = cases.groupby(["processName", cases.creation_utc.dt.date]).size()
    (per_day,) = events(result, key("analytics", "cases_per_process_day"))
    assert md(per_day)["dagster/row_count"] == len(groups) > 0


def test_latest_snapshots_reports_each_of_its_views(snapshots, small_truth):
    result, folder = snapshots
    (m,) = events(result, key("analytics", "latest_snapshots"))
    got = md(m)
    names = [*LATEST_BUILTIN, *entity_truth(small_truth)]
    assert got["bizagi/views"] == {
        f"analytics.latest_{n}": {
            "rows": duckdb_count(folder, f"analytics.latest_{n}"),
            "columns": duckdb_columns(folder, "analytics", f"latest_{n}"),
        }
        for n in names
    }
    views = got["bizagi/views"]
    assert views["analytics.latest_processes"]["rows"] == len(small_truth["processes"])
    assert got["dagster/row_count"] == sum(v["rows"] for v in views.values())
    assert "dagster/table_name" not in got


# -- descriptions -------------------------------------------------------------------------------


def _outside_code(text: str) -> str:
    return re.sub(r"`[^`]*`", "", text)


def test_placeholders_in_descriptions_stay_inside_backticks(d):
    """The UI reads descriptions as Markdown: a bare ``entity_<name>`` loses ``<name>``."""
    graph = d.resolve_asset_graph()
    described = {str(k): graph.get(k).description or "" for k in graph.get_all_asset_keys()}
    described |= {str(c): graph.get_check_spec(c).description or "" for c in graph.asset_check_keys}
    for name in ("bizagi_daily", "bizagi_snapshots"):
        described[name] = d.resolve_job_def(name).description or ""
    for name in ("bizagi_daily_schedule", "bizagi_snapshots_schedule"):
        described[name] = d.resolve_schedule_def(name).description or ""
    with_placeholders = {k: v for k, v in described.items() if "<" in v}
    assert str(key("warehouse", "entity_values")) in with_placeholders  # the test bites
    assert str(key("analytics", "latest_snapshots")) in with_placeholders
    wrong = {k: v for k, v in with_placeholders.items() if "<" in _outside_code(v)}
    assert wrong == {}
    assert "`bizagi.entity_<name>`" in described[str(key("warehouse", "entity_values"))]
