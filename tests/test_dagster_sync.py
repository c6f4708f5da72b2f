"""The daily schedule keeps the warehouse true as the world moves: each simulated morning the
emulator's clock moves to 01:30 of the next day, the schedule is evaluated at that tick, and
the run it asks for executes in-process. After every run the warehouse equals the truth of
that instant for every case created before midnight (ids, closed, solutionDate, parameters),
cases deleted at the source are gone and recorded, and every check passes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from conftest import CaseState, landed_cases, query, truth_at
from dagster_support import definitions, resources

from bizagi_etl.emulator import EmulatorConfig, EmulatorServer
from bizagi_etl.pipeline import Lake

START, END = dt.date(2026, 7, 20), dt.date(2026, 8, 15)
CONFIG = EmulatorConfig(cases=400, start=START, end=END, now=END, seed=11)
DAYS = 12
TICK = dt.time(1, 30, tzinfo=dt.UTC)
LAKE_CASES = dg.AssetKey(["bizagi", "lake", "cases"])
CASES = dg.AssetKey(["bizagi", "warehouse", "cases"])


@dataclass
class Morning:
    tick: dt.datetime
    request: dg.RunRequest
    result: dg.ExecuteInProcessResult
    truth: CaseState
    got: CaseState
    deleted: set[int]


@pytest.fixture(scope="module")
def d() -> dg.Definitions:
    return definitions()


def landed(folder: Path) -> CaseState:
    cases = query(folder, "SELECT id, closed, solution_date FROM bizagi.cases")
    params = query(folder, "SELECT case_id, xpath, value, value_type FROM bizagi.case_parameters")
    return landed_cases(cases, params)


@pytest.fixture(scope="module")
def mornings(d, tmp_path_factory) -> list[Morning]:
    folder = tmp_path_factory.mktemp("dagster-sync")
    instance = dg.DagsterInstance.ephemeral()
    job = d.resolve_job_def("bizagi_daily")
    schedule = d.resolve_schedule_def("bizagi_daily_schedule")
    out = []
    with EmulatorServer(CONFIG) as server:
        res = resources(server, folder)
        # The history, landed by a run that syncs as of the emulator's clock (wall-clock
        # stamps would be months after the simulated mornings).
        history = {"dagster/asset_partition_range_start": START.isoformat(),
                   "dagster/asset_partition_range_end": (END - dt.timedelta(days=1)).isoformat(),
                   "bizagi/sync_at": server.now.isoformat()}  # fmt: skip
        assert job.execute_in_process(tags=history, resources=res, instance=instance).success
        for i in range(1, DAYS + 1):
            tick = dt.datetime.combine(END + dt.timedelta(days=i), TICK)
            server.set_now(tick)
            context = dg.build_schedule_context(
                instance=instance, scheduled_execution_time=tick,
                resources={"lakehouse": res["lakehouse"]},
            )  # fmt: skip
            (request,) = schedule.evaluate_tick(context).run_requests or []
            result = job.execute_in_process(tags=request.tags, resources=res, instance=instance,
                                            raise_on_error=False)  # fmt: skip
            midnight = dt.datetime.combine(tick.date(), dt.time(), dt.UTC)
            truth = truth_at(server, folder / f"truth-{i}", before=midnight)
            deleted = {r[0] for r in query(folder, "SELECT case_id FROM bizagi.cases_deleted")
                       } if _has_table(folder, "cases_deleted") else set()  # fmt: skip
            out.append(Morning(tick, request, result, truth, landed(folder), deleted))
    return out


def _has_table(folder: Path, table: str) -> bool:
    sql = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
    return query(folder, sql, [table])[0][0] == 1


def test_every_run_succeeds_and_every_check_passes(mornings):
    for m in mornings:
        assert m.result.success, m.tick
        checks = {e.asset_check_key.name: e.passed for e in m.result.get_asset_check_evaluations()}
        assert {"rows_match_api", "key_unique_not_null"} <= checks.keys(), m.tick
        assert all(checks.values()), (m.tick, checks)


def test_after_every_morning_the_warehouse_is_that_instants_truth(mornings):
    for m in mornings:
        cases, params = m.truth
        got_cases, got_params = m.got
        assert got_cases.keys() == cases.keys(), m.tick
        assert got_cases == cases, m.tick
        assert got_params == params, m.tick


def test_the_world_moved_and_the_warehouse_followed(mornings):
    """Not a still world: cases closed, and some were deleted and are recorded."""
    first, last = mornings[0], mornings[-1]
    closed_later = {i for i, (closed, _) in last.truth[0].items()
                    if closed and i in first.truth[0] and not first.truth[0][i][0]}  # fmt: skip
    assert closed_later, "cases open on the first morning closed later"
    assert last.deleted, "cases deleted at the source are recorded"
    assert not last.deleted & last.got[0].keys(), "a recorded case is not in bizagi.cases"


def test_each_run_is_the_new_days_as_one_range(mornings):
    for m in mornings:
        yesterday = (m.tick.date() - dt.timedelta(days=1)).isoformat()
        before = (m.tick.date() - dt.timedelta(days=2)).isoformat()
        tags = m.request.tags
        assert tags["dagster/asset_partition_range_start"] == before, m.tick
        assert tags["dagster/asset_partition_range_end"] == yesterday, m.tick
        assert tags["bizagi/sync_at"] == m.tick.isoformat()


def test_days_that_changed_are_materialized_by_the_same_run(mornings):
    """Days before the run's range that the sync rewrote are materializations of that run,
    in the lake and the warehouse alike, each saying why."""
    outside = 0
    for m in mornings:
        first = m.request.tags["dagster/asset_partition_range_start"]
        by_key = {key: [e for e in m.result.get_asset_materialization_events()
                        if e.asset_key == key] for key in (LAKE_CASES, CASES)}  # fmt: skip
        days = {key: {e.partition for e in events} for key, events in by_key.items()}
        assert days[LAKE_CASES] == days[CASES], m.tick
        assert {first, m.request.tags["dagster/asset_partition_range_end"]} <= days[CASES]
        for events in by_key.values():
            for event in events:
                if event.partition and event.partition < first:
                    outside += 1
                    metadata = event.step_materialization_data.materialization.metadata
                    assert metadata["bizagi/sync_reason"].value in ("open", "moved", "changed")
    assert outside, "in twelve mornings some older day changed"


def test_each_run_rewrites_only_what_changed(mornings):
    """Two new days, and of the history only the days that held open cases or whose count
    moved; what it found is in the run's metadata. (Requests against a full re-extraction at
    scale: benchmarks/sync_bench.py.)"""
    for m in mornings:
        (lake,) = [e for e in m.result.get_asset_materialization_events()
                   if e.asset_key == LAKE_CASES and e.partition ==
                   m.request.tags["dagster/asset_partition_range_end"]]  # fmt: skip
        summary = lake.step_materialization_data.materialization.metadata["bizagi/sync"].value
        history = (m.tick.date() - START).days
        assert summary["days_new"] == 2, m.tick
        assert summary["days_rewritten"] < history / 2, (m.tick, summary)
        assert summary["rows_added"] > 0, (m.tick, summary)


def test_rows_match_api_compares_every_landed_day_with_the_current_count(mornings):
    for m in mornings:
        (check,) = [e for e in m.result.get_asset_check_evaluations()
                    if e.asset_check_key.name == "rows_match_api"]  # fmt: skip
        tables = check.metadata["tables"].value
        days = (m.tick.date() - START).days
        assert tables["cases"]["partitions"] == days, m.tick
        assert tables["cases"]["warehouse"] == len(m.truth[0]), m.tick


def test_a_sync_run_executed_again_loads_what_it_rewrote(d, tmp_path):
    """A run executed again keeps its tags, so its sync stamps what it rewrites with the same
    instant as the first attempt, whose rows the warehouse already holds: the load must still
    take the rewritten days (here the world moved two days between the attempts)."""
    job = d.resolve_job_def("bizagi_daily")
    instance = dg.DagsterInstance.ephemeral()
    with EmulatorServer(CONFIG) as server:
        res = resources(server, tmp_path)
        tick = dt.datetime.combine(END + dt.timedelta(days=1), TICK)
        history = {"dagster/asset_partition_range_start": START.isoformat(),
                   "dagster/asset_partition_range_end": (END - dt.timedelta(days=1)).isoformat(),
                   "bizagi/sync_at": server.now.isoformat()}  # fmt: skip
        assert job.execute_in_process(tags=history, resources=res, instance=instance).success
        server.set_now(tick)
        tags = {"dagster/asset_partition_range_start": (END - dt.timedelta(days=1)).isoformat(),
                "dagster/asset_partition_range_end": END.isoformat(),
                "bizagi/sync_at": tick.isoformat()}  # fmt: skip
        first = job.execute_in_process(tags=tags, resources=res, instance=instance)
        assert first.success
        server.advance(dt.timedelta(days=2))  # cases close meanwhile
        again = job.execute_in_process(tags=tags, resources=res, instance=instance,
                                       raise_on_error=False)  # fmt: skip
    lake = Lake(tmp_path / "lake").read("cases")
    in_lake = dict(zip(lake.column("id").to_pylist(), lake.column("closed").to_pylist(),
                       strict=True))  # fmt: skip
    in_warehouse = dict(query(tmp_path, "SELECT id, closed FROM bizagi.cases"))
    (summary,) = [e.step_materialization_data.materialization.metadata["bizagi/sync"].value
                  for e in again.get_asset_materialization_events()
                  if e.asset_key == LAKE_CASES and e.partition == END.isoformat()]  # fmt: skip
    assert summary["rows_changed"] > 0, "the world moved between the attempts"
    assert in_warehouse == in_lake


def test_the_sync_instant_of_a_run_is_utc_and_a_bad_one_is_named():
    from bizagi_etl.connector import SettingsError
    from dagster_project.translator import sync_instant

    assert sync_instant({}) is None
    naive = sync_instant({"bizagi/sync_at": "2026-08-16T01:30:00"})
    assert naive == dt.datetime(2026, 8, 16, 1, 30, tzinfo=dt.UTC), "naive is UTC, not local"
    assert sync_instant({"bizagi/sync_at": "2026-08-16T03:30:00+02:00"}) == naive
    with pytest.raises(SettingsError, match=r"run tag 'bizagi/sync_at'.*got 'soon'"):
        sync_instant({"bizagi/sync_at": "soon"})
