"""The Dagster code location: definitions, resource, runs against the emulator, checks.

Runs execute in-process against the emulator on loopback with an ephemeral instance; expected
rows come from the emulator's ground truth (``small_truth``), never from the code under test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import execute, query
from dagster_support import definitions, resources

from bizagi_etl.connector.settings import BizagiSettings
from dagster_project.definitions import defs
from dagster_project.defs.resources import BizagiResource, LakehouseResource

# The catalog's built-in streams; entity_values is the family of every parameter entity.
DAILY = ["cases"]
SNAPSHOTS = ["processes", "stakeholders", "entities", "entity_values", "inbox"]
STREAMS = DAILY + SNAPSHOTS
VIEWS = ["cases_per_process_day", "case_sla", "open_workitems", "latest_snapshots"]
CHECKS = {"rows_match_api", "key_unique_not_null", "schema_unchanged"}
DAY = "2026-06-01"


def lake_key(stream: str) -> dg.AssetKey:
    return dg.AssetKey(["bizagi", "lake", stream])


def warehouse_key(stream: str) -> dg.AssetKey:
    return dg.AssetKey(["bizagi", "warehouse", stream])


def view_key(view: str) -> dg.AssetKey:
    return dg.AssetKey(["bizagi", "analytics", view])


CASES = warehouse_key("cases")


@pytest.fixture(scope="module")
def d() -> dg.Definitions:
    return definitions()


def run_daily(
    d: dg.Definitions,
    res: dict[str, Any],
    instance: dg.DagsterInstance,
    *,
    partition_key: str | None = None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    return d.resolve_job_def("bizagi_daily").execute_in_process(
        partition_key=partition_key, tags=tags, resources=res, instance=instance
    )


def checks_of(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    """(asset path, check name) -> passed, for every check evaluated in the run."""
    return {
        (e.asset_check_key.asset_key.to_user_string(), e.asset_check_key.name): e.passed
        for e in result.get_asset_check_evaluations()
    }


def materializations(
    result: dg.ExecuteInProcessResult, key: dg.AssetKey
) -> list[dg.AssetMaterialization]:
    return [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == key
    ]


def value(metadata: dict[str, Any], name: str) -> Any:
    assert name in metadata, f"{name} missing from {sorted(metadata)}"
    return metadata[name].value


# -- ground truth -------------------------------------------------------------------------------


def truth_cases(truth: dict[str, pd.DataFrame], first: str, end: str) -> pd.DataFrame:
    """Cases created in [first, end) UTC."""
    cases = truth["cases"]
    lo, hi = pd.Timestamp(first, tz="UTC"), pd.Timestamp(end, tz="UTC")
    return cases[(cases.creation_utc >= lo) & (cases.creation_utc < hi)]


def truth_parameters(truth: dict[str, pd.DataFrame], case_ids: pd.Series) -> list[tuple]:
    params = truth["case_parameters"]
    chosen = params[params.case_id.isin(set(case_ids))]
    return sorted(zip(chosen.case_id.astype(int), chosen.position.astype(int), strict=True))


def n_processes(truth: dict[str, pd.DataFrame]) -> int:
    return len(truth["processes"])


def next_day(day: str) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


# -- definitions --------------------------------------------------------------------------------


def test_definitions_load_validate_and_resolve(d):
    dg.Definitions.validate_loadable(d)
    for job in ("bizagi_daily", "bizagi_snapshots"):
        assert d.resolve_job_def(job).name == job
    for schedule in ("bizagi_daily_schedule", "bizagi_snapshots_schedule"):
        assert d.resolve_schedule_def(schedule).name == schedule
    keys = d.resolve_all_asset_keys()
    expected = {k for s in STREAMS for k in (lake_key(s), warehouse_key(s))}
    expected |= {view_key(v) for v in VIEWS}
    assert expected <= set(keys)
    # Without a streams file, only the built-in streams become assets.
    assert {k for k in keys if k.path[1] in ("lake", "warehouse")} == expected - {
        view_key(v) for v in VIEWS
    }


def test_daily_assets_share_one_partitions_definition_and_backfill_in_one_run(d):
    graph = d.resolve_asset_graph()
    daily = [graph.get(k) for s in DAILY for k in (lake_key(s), warehouse_key(s))]
    partitions = {node.partitions_def for node in daily}
    assert len(partitions) == 1
    (shared,) = partitions
    assert isinstance(shared, dg.DailyPartitionsDefinition)
    assert shared.timezone == "UTC"
    assert d.resolve_job_def("bizagi_daily").partitions_def == shared
    for node in daily:
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), node.key
    for s in SNAPSHOTS:
        for key in (lake_key(s), warehouse_key(s)):
            assert graph.get(key).partitions_def is None, key
    daily_job = d.resolve_job_def("bizagi_daily").asset_layer.selected_asset_keys
    assert set(daily_job) == {k for s in DAILY for k in (lake_key(s), warehouse_key(s))}
    snapshot_job = d.resolve_job_def("bizagi_snapshots").asset_layer.selected_asset_keys
    assert set(snapshot_job) == {k for s in SNAPSHOTS for k in (lake_key(s), warehouse_key(s))} | {
        view_key(v) for v in VIEWS
    }


def test_assets_are_kinded_grouped_owned_and_described(d):
    graph = d.resolve_asset_graph()
    for key in d.resolve_all_asset_keys():
        node = graph.get(key)
        assert node.kinds, key
        assert node.group_name, key
        assert node.group_name != "default", key
        assert node.owners, key
        assert (node.description or "").strip(), key
    for s in STREAMS:
        assert "parquet" in graph.get(lake_key(s)).kinds
        assert "duckdb" in graph.get(warehouse_key(s)).kinds
        assert graph.get(lake_key(s)).group_name != graph.get(warehouse_key(s)).group_name
        assert lake_key(s) in graph.get(warehouse_key(s)).parent_keys
    parents = {v: graph.get(view_key(v)).parent_keys for v in VIEWS}
    assert warehouse_key("cases") in parents["cases_per_process_day"]
    assert warehouse_key("cases") in parents["case_sla"]
    assert warehouse_key("inbox") in parents["open_workitems"]
    assert {warehouse_key(s) for s in SNAPSHOTS} <= parents["latest_snapshots"]


def test_every_step_writing_duckdb_is_in_the_duckdb_pool(d):
    graph = d.resolve_asset_graph()
    for s in STREAMS:
        assert graph.get(warehouse_key(s)).pools == {"duckdb"}, s
        assert "duckdb" not in (graph.get(lake_key(s)).pools or set()), s  # extracts in parallel
    for v in VIEWS:
        assert graph.get(view_key(v)).pools == {"duckdb"}, v
    ops = {n.name: n.pool for n in d.resolve_job_def("bizagi_daily").all_node_defs}
    for name in ("rows_match_api", "key_unique_not_null", "days_not_empty"):
        (pool,) = [p for op, p in ops.items() if op.endswith(name)]
        assert pool == "duckdb", name


def test_warehouse_assets_have_freshness_policies(d):
    graph = d.resolve_asset_graph()
    for s in STREAMS:
        policy = graph.get(warehouse_key(s)).freshness_policy
        assert policy is not None, s
        fail, warn = policy.fail_window.to_timedelta(), policy.warn_window.to_timedelta()
        # A table refreshed once a day cannot be required fresher than a day.
        assert dt.timedelta(hours=24) < warn < fail <= dt.timedelta(hours=48), s


def test_every_warehouse_table_has_its_checks(d):
    graph = d.resolve_asset_graph()
    by_asset: dict[dg.AssetKey, set[str]] = {}
    for check in graph.asset_check_keys:
        by_asset.setdefault(check.asset_key, set()).add(check.name)
    for s in STREAMS:
        expected = CHECKS | ({"days_not_empty"} if s in DAILY else set())
        assert by_asset.get(warehouse_key(s)) == expected, s
        rows = graph.get_check_spec(dg.AssetCheckKey(warehouse_key(s), "rows_match_api"))
        assert rows.blocking, s
        assert rows.description


# -- the resource -------------------------------------------------------------------------------


def test_resource_never_shows_the_secret(small_server):
    secret = "s3cr3t-do-not-print-" + "x" * 12
    resource = BizagiResource(
        base_url=small_server.base_url, client_id=small_server.client_id, client_secret=secret
    )
    assert secret not in repr(resource)
    assert secret not in str(resource)
    assert secret not in repr(resource.settings())
    assert secret not in str(resource.settings())
    assert resource.settings().client_secret.reveal() == secret


def test_resource_hands_out_one_client_to_every_thread(small_server):
    resource = BizagiResource(
        base_url=small_server.base_url,
        client_id=small_server.client_id,
        client_secret=small_server.client_secret,
    )
    barrier = threading.Barrier(8)

    def grab(_: int) -> int:
        barrier.wait()
        return id(resource.client())

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(grab, range(8)))
    client = resource.client()
    try:
        assert ids == {id(client)}
        assert resource.client() is client
        # The shared client works: it lists the processes of the project.
        body = client.get_json(client.url("odata/data/processes"))
        assert len(body["value"]) > 0
    finally:
        client.close()


def test_resource_settings_map_through(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    given = {
        "base_url": "https://dev-acme-corp.bizagi.com/",
        "client_id": "app-id",
        "client_secret": "app-secret",
        "token_url": "https://login.acme.example/oauth2/token",
        "scope": "api offline",
        "auth_method": "client_secret_post",
        "page_size": 250,
        "max_concurrency": 7,
        "connect_timeout": 3.5,
        "read_timeout": 42.0,
        "max_retries": 2,
        "retry_budget": 17.0,
        "verify_tls": False,
        "ca_bundle": str(bundle),
        "allow_http": True,
    }
    settings = BizagiResource(**given).settings()
    assert isinstance(settings, BizagiSettings)
    assert settings.base_url == "https://dev-acme-corp.bizagi.com"
    assert settings.client_secret.reveal() == "app-secret"
    assert settings.ca_bundle == bundle
    for name in set(given) - {"base_url", "client_secret", "ca_bundle"}:
        assert getattr(settings, name) == given[name], name
    default = BizagiResource(base_url="https://x.bizagi.com", client_id="a", client_secret="b")
    assert default.settings().token_url == "https://x.bizagi.com/oauth2/server/token"


def test_resource_exposes_every_bizagi_setting():
    """Each BizagiSettings field is configurable on the resource."""
    settings = {f.name for f in dataclasses.fields(BizagiSettings)}
    fields = set(BizagiResource.model_fields)
    assert settings - fields == set()


# -- one partition ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def june_first(d, small_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("june_first")
    instance = dg.DagsterInstance.ephemeral()
    result = run_daily(d, resources(small_server, folder), instance, partition_key=DAY)
    return result, folder, instance


def test_one_partition_lands_exactly_that_days_truth(june_first, small_truth):
    result, folder, _ = june_first
    assert result.success
    expected = truth_cases(small_truth, DAY, next_day(DAY))
    assert len(expected) > 0
    got = query(folder, "SELECT id, process_id, case_number, closed, _partition FROM bizagi.cases")
    assert sorted(r[0] for r in got) == sorted(expected.id.tolist())
    by_id = expected.set_index("id")
    for case_id, process_id, case_number, closed, partition in got:
        assert process_id == by_id.loc[case_id, "process_id"]
        assert case_number == by_id.loc[case_id, "caseNumber"]
        assert closed == bool(by_id.loc[case_id, "closed"])
        assert partition == DAY
    params = query(folder, "SELECT case_id, position FROM bizagi.case_parameters")
    assert sorted(params) == truth_parameters(small_truth, expected.id)
    created = query(folder, "SELECT id, epoch_ms(creation_date) FROM bizagi.cases")
    for case_id, millis in created:
        assert pd.Timestamp(millis, unit="ms", tz="UTC") == by_id.loc[case_id, "creation_utc"]


def test_one_partition_passes_every_check(june_first):
    result, _, _ = june_first
    checks = checks_of(result)
    assert set(checks) == {("bizagi/warehouse/cases", c) for c in CHECKS | {"days_not_empty"}}
    assert all(checks.values()), checks


def test_one_partition_reports_its_numbers(june_first, small_truth):
    result, folder, _ = june_first
    rows = len(truth_cases(small_truth, DAY, next_day(DAY)))
    lake_path = str((folder / "lake").resolve())

    (extract,) = materializations(result, lake_key("cases"))
    assert extract.partition == DAY
    md = extract.metadata
    assert value(md, "dagster/row_count") == rows
    assert value(md, "dagster/partition_row_count") == rows
    assert value(md, "bizagi/run_rows") == rows
    assert value(md, "bizagi/run_api_total") == rows
    assert value(md, "bizagi/run_window") == f"[{DAY}, {next_day(DAY)})"
    # One page per process and query: the day has far fewer cases than a page holds.
    assert value(md, "bizagi/run_requests") == n_processes(small_truth)
    assert value(md, "bizagi/run_pages") == n_processes(small_truth)
    assert value(md, "bizagi/run_retries") == 0
    assert value(md, "bizagi/run_token_refreshes") == 0
    assert value(md, "bizagi/lake_path") == lake_path

    (load,) = materializations(result, CASES)
    assert load.partition == DAY
    md = load.metadata
    assert value(md, "dagster/table_name") == "bizagi.cases"
    assert value(md, "dagster/row_count") == rows
    assert value(md, "dagster/partition_row_count") == rows
    columns = {c.name: c.type for c in value(md, "dagster/column_schema").columns}
    assert columns["id"] == "BIGINT"
    assert columns["creation_date"] == "TIMESTAMP WITH TIME ZONE"
    assert columns["closed"] == "BOOLEAN"
    assert {"process_id", "case_number", "solution_date", "process_name"} <= set(columns)
    assert value(md, "bizagi/lake_path") == lake_path


def test_the_secret_stays_out_of_the_run(june_first, small_server):
    result, _, instance = june_first
    logs = instance.all_logs(result.run_id)
    assert logs
    assert small_server.client_secret not in repr(logs)
    assert small_server.client_secret not in repr(result.dagster_run)


# -- a range in one run, reruns -----------------------------------------------------------------


def test_a_three_day_range_is_one_run_with_one_query_per_process(
    d, small_server, small_truth, tmp_path
):
    first, last = "2026-06-01", "2026-06-03"
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    res = resources(small_server, tmp_path)
    result = run_daily(d, res, dg.DagsterInstance.ephemeral(), tags=tags)
    assert result.success
    days = [first, next_day(first), last]
    expected = truth_cases(small_truth, first, next_day(last))

    got = query(tmp_path, "SELECT id, _partition FROM bizagi.cases")
    assert sorted(r[0] for r in got) == sorted(expected.id.tolist())
    created = zip(expected.id, expected.creation_utc, strict=True)
    day_of = {int(i): t.date().isoformat() for i, t in created}
    assert all(day_of[case_id] == partition for case_id, partition in got)
    params = query(tmp_path, "SELECT case_id, position FROM bizagi.case_parameters")
    assert sorted(params) == truth_parameters(small_truth, expected.id)

    for table in ("cases", "case_parameters"):
        folders = sorted(p.name for p in (tmp_path / "lake" / table).glob("day=*"))
        assert folders == [f"day={day}" for day in days], table
    for day in days:
        files = sorted((tmp_path / "lake" / "cases" / f"day={day}").glob("*.parquet"))
        ids = [i for f in files for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
        assert sorted(ids) == sorted(i for i, dd in day_of.items() if dd == day), day

    for key in (lake_key("cases"), CASES):
        assert sorted(m.partition for m in materializations(result, key)) == days, key
        for m in materializations(result, key):  # each day its own count, not the range's
            day_rows = len(truth_cases(small_truth, m.partition, next_day(m.partition)))
            assert value(m.metadata, "dagster/partition_row_count") == day_rows, (key, m.partition)
    extract = materializations(result, lake_key("cases"))[0].metadata
    assert value(extract, "bizagi/run_requests") == n_processes(small_truth)  # not one per day
    assert value(extract, "dagster/row_count") == len(expected)
    assert value(extract, "bizagi/run_rows") == len(expected)
    assert value(extract, "bizagi/run_api_total") == len(expected)
    checks = checks_of(result)
    assert len(checks) == len(CHECKS) + 1
    assert all(checks.values()), checks


def _lake_contents(lake: Path) -> dict[str, Any]:
    """The tables' files as readers see them (not the lake's ``_staging``)."""
    return {
        str(p.relative_to(lake)): pq.read_table(p).replace_schema_metadata(None)
        for p in sorted(lake.rglob("*.parquet"))
        if not p.relative_to(lake).parts[0].startswith("_")
    }


def _warehouse_rows(folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "cases": query(folder, "SELECT * EXCLUDE (_extracted_at) FROM bizagi.cases ORDER BY id"),
        "case_parameters": query(
            folder,
            "SELECT * EXCLUDE (_extracted_at) FROM bizagi.case_parameters "
            "ORDER BY case_id, position",
        ),
    }


def test_rerunning_a_partition_changes_nothing(d, small_server, small_truth, tmp_path):
    res, instance = resources(small_server, tmp_path), dg.DagsterInstance.ephemeral()
    first = run_daily(d, res, instance, partition_key=DAY)
    rows, lake = _warehouse_rows(tmp_path), _lake_contents(tmp_path / "lake")
    assert len(rows["cases"]) == len(truth_cases(small_truth, DAY, next_day(DAY)))

    second = run_daily(d, res, instance, partition_key=DAY)
    assert first.success
    assert second.success
    assert _warehouse_rows(tmp_path) == rows
    again = _lake_contents(tmp_path / "lake")
    assert sorted(again) == sorted(lake)
    for path, table in lake.items():
        assert again[path].equals(table), path
    (load,) = materializations(second, CASES)
    assert value(load.metadata, "dagster/row_count") == len(rows["cases"])
    checks = checks_of(second)
    assert checks[("bizagi/warehouse/cases", "schema_unchanged")]  # compared with the first
    assert all(checks.values()), checks


# -- snapshots and views ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_snapshots(d, small_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("snapshots")
    res, instance = resources(small_server, folder), dg.DagsterInstance.ephemeral()
    daily = run_daily(d, res, instance, partition_key=DAY)
    snapshots = d.resolve_job_def("bizagi_snapshots").execute_in_process(
        resources=res, instance=instance
    )
    return daily, snapshots, folder


def test_snapshot_job_lands_every_snapshot_stream(with_snapshots, small_truth):
    daily, snapshots, folder = with_snapshots
    assert daily.success
    assert snapshots.success
    materialized = {
        e.materialization.asset_key for e in snapshots.get_asset_materialization_events()
    }
    assert materialized == {k for s in SNAPSHOTS for k in (lake_key(s), warehouse_key(s))} | {
        view_key(v) for v in VIEWS
    }
    checks = checks_of(snapshots)
    assert {a for a, _ in checks} == {f"bizagi/warehouse/{s}" for s in SNAPSHOTS}
    assert all(checks.values()), checks

    def ids(table: str) -> list[Any]:
        return sorted(r[0] for r in query(folder, f"SELECT id FROM bizagi.{table}"))

    assert ids("processes") == sorted(small_truth["processes"].id)
    assert ids("stakeholders") == sorted(small_truth["stakeholders"].id)
    assert ids("entities") == sorted(small_truth["entities"].id)
    assert ids("inbox") == sorted(small_truth["inbox"].idCase)
    workitems = small_truth["workitems"]
    inbox_items = workitems[workitems.case_id.isin(set(small_truth["inbox"].idCase))]
    assert ids("inbox_workitems") == sorted(inbox_items.id)
    long = small_truth["entity_values"]
    for name, values in long.groupby("entity_name"):
        table = f"entity_{name.lower()}"
        assert ids(table) == sorted(values.value_id.unique()), table


def test_views_answer_after_a_daily_run_and_the_snapshots(with_snapshots, small_truth):
    _, _, folder = with_snapshots
    day = truth_cases(small_truth, DAY, next_day(DAY))
    got = query(
        folder,
        "SELECT process_name, CAST(day AS VARCHAR), cases, closed_cases, open_cases "
        "FROM analytics.cases_per_process_day",
    )
    expected = [
        (name, DAY, len(g), int(g.closed.sum()), int((~g.closed).sum()))
        for name, g in day.groupby("processName")
    ]
    assert sorted(got) == sorted(expected)

    sla = query(folder, "SELECT id, sla_status FROM analytics.case_sla")
    assert sorted(r[0] for r in sla) == sorted(day.id)
    assert {r[1] for r in sla} <= {"on time", "overdue", "at risk", "no estimate"}

    items = small_truth["workitems"]
    items = items[items.case_id.isin(set(small_truth["inbox"].idCase))]
    counts = items.groupby(["taskDisplayName", "state"]).size()
    got_items = query(folder, "SELECT task, state, workitems FROM analytics.open_workitems")
    assert sorted(got_items) == sorted((t, s, int(n)) for (t, s), n in counts.items())

    latest = query(folder, "SELECT count(*) FROM analytics.latest_processes")
    assert latest == [(len(small_truth["processes"]),)]
    listed = query(folder, "SELECT view_name FROM duckdb_views() WHERE schema_name = 'analytics'")
    views = {r[0] for r in listed}
    names = small_truth["entities"].name.str.lower()
    assert {f"latest_entity_{n}" for n in names} <= views
    assert {"latest_stakeholders", "latest_entities", "latest_inbox"} <= views


# -- custom streams -----------------------------------------------------------------------------


STREAMS_FILE = """
[[streams]]
name = "personas"
path = "odata/data/stakeholders"
key = "id"

[[streams]]
name = "my_cases"
path = "odata/data/cases"
key = "idCase"
cursor = "CreationDate"
"""


def test_custom_streams_from_a_file_become_assets(monkeypatch, small_server, small_truth, tmp_path):
    file = tmp_path / "streams.toml"
    file.write_text(STREAMS_FILE, encoding="utf-8")
    monkeypatch.setenv("BIZAGI_STREAMS_FILE", str(file))
    custom = defs()
    dg.Definitions.validate_loadable(custom)
    keys = set(custom.resolve_all_asset_keys())
    for name in ("personas", "my_cases"):
        assert {lake_key(name), warehouse_key(name)} <= keys, name
    graph = custom.resolve_asset_graph()
    daily = graph.get(warehouse_key("my_cases"))
    assert daily.partitions_def == graph.get(CASES).partitions_def
    assert daily.backfill_policy == dg.BackfillPolicy.single_run()
    assert graph.get(warehouse_key("personas")).partitions_def is None
    assert (
        warehouse_key("my_cases")
        in custom.resolve_job_def("bizagi_daily").asset_layer.selected_asset_keys
    )
    snapshot_job = custom.resolve_job_def("bizagi_snapshots")
    assert warehouse_key("personas") in snapshot_job.asset_layer.selected_asset_keys
    checks = {c.name for c in graph.asset_check_keys if c.asset_key == warehouse_key("my_cases")}
    assert checks == CHECKS | {"days_not_empty"}

    personas = snapshot_job.get_subset(
        asset_selection={lake_key("personas"), warehouse_key("personas")}
    )
    result = personas.execute_in_process(
        resources=resources(small_server, tmp_path), instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    got = sorted(r[0] for r in query(tmp_path, "SELECT id FROM bizagi.personas"))
    assert got == sorted(small_truth["stakeholders"].id)
    checks_run = checks_of(result)
    assert checks_run[("bizagi/warehouse/personas", "rows_match_api")]


# -- schedules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tick", "partition"),
    [
        (dt.datetime(2026, 6, 2, 1, 30, tzinfo=dt.UTC), "2026-06-01"),
        (dt.datetime(2026, 1, 1, 1, 30, tzinfo=dt.UTC), "2025-12-31"),
        (dt.datetime(2024, 3, 1, 1, 30, tzinfo=dt.UTC), "2024-02-29"),
    ],
)
def test_daily_schedule_requests_the_last_complete_day(d, tick, partition, tmp_path):
    """With nothing landed yet, the sync run is the last complete day (a backfill lands the
    history; tests/test_dagster_sync.py follows the schedule over simulated days)."""
    schedule = d.resolve_schedule_def("bizagi_daily_schedule")
    assert schedule.job_name == "bizagi_daily"
    assert schedule.execution_timezone == "UTC"
    assert schedule.cron_schedule == "30 1 * * *"
    lakehouse = LakehouseResource(lake_root=str(tmp_path / "lake"),
                                  warehouse_path=str(tmp_path / "w.duckdb"))  # fmt: skip
    context = dg.build_schedule_context(scheduled_execution_time=tick,
                                        resources={"lakehouse": lakehouse})  # fmt: skip
    (request,) = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key_range == dg.PartitionKeyRange(partition, partition)
    assert request.tags["bizagi/sync_at"] == tick.isoformat()


def test_snapshot_schedule_runs_at_half_past_two_utc(d):
    schedule = d.resolve_schedule_def("bizagi_snapshots_schedule")
    assert schedule.job_name == "bizagi_snapshots"
    assert schedule.cron_schedule == "30 2 * * *"
    assert schedule.execution_timezone == "UTC"
    tick = dt.datetime(2026, 6, 2, 2, 30, tzinfo=dt.UTC)
    data = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))
    (request,) = data.run_requests or []
    assert request.partition_key is None


# -- checks against a tampered warehouse --------------------------------------------------------


TAMPER = {
    "deleted": "DELETE FROM bizagi.cases WHERE id = (SELECT min(id) FROM bizagi.cases)",
    "duplicated": "INSERT INTO bizagi.cases SELECT * FROM bizagi.cases "
    "WHERE id = (SELECT min(id) FROM bizagi.cases)",
    "null_child_key": "UPDATE bizagi.case_parameters SET position = NULL "
    "WHERE case_id = (SELECT min(case_id) FROM bizagi.case_parameters) AND position = 0",
    "day_emptied": f"DELETE FROM bizagi.cases WHERE _partition = '{DAY}'",
}
# tampering -> (rows_match_api passes, key_unique_not_null passes)
OUTCOME = {
    "deleted": (False, True),
    "duplicated": (False, False),
    "null_child_key": (True, False),
    "day_emptied": (False, True),
}


def _checks_only(d: dg.Definitions, scoped: bool) -> Callable[..., dg.ExecuteInProcessResult]:
    """Run only the checks of warehouse/cases: for the partition, or over every loaded day."""
    selection = {dg.AssetCheckKey(CASES, n) for n in CHECKS | {"days_not_empty"}}
    if scoped:
        job = d.resolve_job_def("bizagi_daily").get_subset(
            asset_selection=set(), asset_check_selection=selection
        )
        return lambda **kw: job.execute_in_process(partition_key=DAY, raise_on_error=False, **kw)
    job = d.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection=selection
    )
    return lambda **kw: job.execute_in_process(raise_on_error=False, **kw)


@pytest.fixture
def loaded(d, small_server, tmp_path) -> tuple[dict[str, Any], dg.DagsterInstance]:
    res, instance = resources(small_server, tmp_path), dg.DagsterInstance.ephemeral()
    result = run_daily(d, res, instance, partition_key=DAY)
    assert all(checks_of(result).values())
    return res, instance


@pytest.mark.parametrize(
    ("tampering", "scoped"),
    [
        *[
            pytest.param(t, s, id=f"{t}-{'partition' if s else 'all_days'}")
            for t in ("deleted", "duplicated", "null_child_key")
            for s in (True, False)
        ],
        # The run's day lost every row: the API still has them for that day.
        pytest.param("day_emptied", True, id="day_emptied-partition"),
    ],
)
def test_checks_fail_when_the_warehouse_is_tampered_with(d, loaded, tmp_path, tampering, scoped):
    res, instance = loaded
    untouched = _checks_only(d, scoped)(resources=res, instance=instance)
    assert untouched.success
    assert all(checks_of(untouched).values()), checks_of(untouched)

    execute(tmp_path, TAMPER[tampering])
    result = _checks_only(d, scoped)(resources=res, instance=instance)
    checks = checks_of(result)
    assert result.get_asset_materialization_events() == []  # only the checks ran
    rows_ok, keys_ok = OUTCOME[tampering]
    assert checks[("bizagi/warehouse/cases", "rows_match_api")] is rows_ok
    assert checks[("bizagi/warehouse/cases", "key_unique_not_null")] is keys_ok
    if not rows_ok:
        assert not result.success  # rows_match_api is blocking: its failure fails the step


def test_an_empty_day_after_a_busy_history_warns(d, small_server, small_truth, tmp_path):
    """2026-05-30 has no cases in the ground truth; the 28 days before it average more than one."""
    first, empty = "2026-05-02", "2026-05-30"
    history = truth_cases(small_truth, first, empty)
    assert len(truth_cases(small_truth, empty, next_day(empty))) == 0
    assert len(history) / 28 >= 1
    tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": empty,
    }
    res = resources(small_server, tmp_path)
    result = run_daily(d, res, dg.DagsterInstance.ephemeral(), tags=tags)
    assert result.success  # a warning does not fail the run
    assert (tmp_path / "lake" / "cases" / f"day={empty}").is_dir()  # an empty partition
    got = query(tmp_path, "SELECT id FROM bizagi.cases")
    assert sorted(r[0] for r in got) == sorted(history.id)

    evaluations = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["rows_match_api"].passed
    assert evaluations["key_unique_not_null"].passed
    days = evaluations["days_not_empty"]
    assert not days.passed
    assert days.severity == dg.AssetCheckSeverity.WARN
    assert days.metadata["empty_days"].value == [empty]


# -- a bad day at the server --------------------------------------------------------------------


def test_retries_and_token_refreshes_are_reported_and_data_stays_exact(
    d, make_server, small_truth, tmp_path
):
    # Faults fall where a hash of the request puts them: one request in five (not ten) makes it
    # near certain that some of the day's few requests are among them, whatever their URLs.
    with make_server(fault_rate=0.2, retry_after=0, token_ttl=1, latency_ms=150) as server:
        res = resources(server, tmp_path, max_concurrency=1)
        result = run_daily(d, res, dg.DagsterInstance.ephemeral(), partition_key=DAY)
    assert result.success
    expected = truth_cases(small_truth, DAY, next_day(DAY))
    got = query(tmp_path, "SELECT id FROM bizagi.cases")
    assert sorted(r[0] for r in got) == sorted(expected.id)
    (extract,) = materializations(result, lake_key("cases"))
    md = extract.metadata
    assert value(md, "bizagi/run_retries") >= 1
    assert value(md, "bizagi/run_token_refreshes") >= 1
    assert value(md, "bizagi/run_requests") > value(md, "bizagi/run_pages")
    assert value(md, "bizagi/run_pages") == n_processes(small_truth)
    assert all(checks_of(result).values())


def test_the_code_location_lets_arrow_allocate_with_malloc():
    code = (
        "import pyarrow as pa, dagster_project.definitions\n"
        "print(pa.default_memory_pool().backend_name)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.strip() == "system"
