"""A moving world lands without re-extracting everything: the emulator's clock moves a day,
then sync runs; after every day the warehouse equals that day's truth (ids, closed,
solutionDate, parameters; deleted cases absent, and recorded), and the requests follow what
changed, not the length of the history."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import pytest
from click.testing import CliRunner
from conftest import landed_cases, settings_for, truth_at
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bizagi_etl.cli import main
from bizagi_etl.connector import BizagiClient, BizagiSettings
from bizagi_etl.emulator import EmulatorConfig, EmulatorServer
from bizagi_etl.emulator.server import AsgiServer
from bizagi_etl.pipeline import (
    MOVED,
    NEW,
    OPEN,
    Catalog,
    Lake,
    Stream,
    Warehouse,
    key_typer,
    plan_sync,
    sync_stream,
)
from bizagi_etl.pipeline.sync import Landed

START, END = dt.date(2026, 7, 20), dt.date(2026, 8, 15)
CONFIG = EmulatorConfig(cases=500, start=START, end=END, now=END, seed=11)
DAYS = 45


def landed(warehouse: Warehouse) -> tuple[dict[int, tuple], set[tuple]]:
    cases = warehouse.query("SELECT id, closed, solution_date FROM bizagi.cases")
    params = warehouse.query("SELECT case_id, xpath, value, value_type FROM bizagi.case_parameters")
    return landed_cases(cases, params)


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    """45 consecutive days: the clock moves a day, sync runs, the warehouse is compared."""
    folder = tmp_path_factory.mktemp("sync")
    lake = Lake(folder / "lake")
    cases = Catalog.load().get("cases")
    days = []
    with EmulatorServer(CONFIG) as server, Warehouse(folder / "w.duckdb") as warehouse:
        with BizagiClient(settings_for(server)) as client:
            first = sync_stream(client, cases, lake, warehouse, start=START, now=server.now)
            for day in range(DAYS):
                now = server.advance(dt.timedelta(days=1))
                report = sync_stream(client, cases, lake, warehouse, start=START, now=now)
                truth = truth_at(server, folder / f"truth-{day}")
                deleted = {r[0] for r in warehouse.query("SELECT case_id FROM bizagi.cases_deleted")
                           } if "cases_deleted" in warehouse.tables() else set()  # fmt: skip
                days.append((now, report, truth, landed(warehouse), deleted))
    return first, days


def test_after_every_day_the_warehouse_is_that_days_truth(simulation):
    _, days = simulation
    for now, _, (cases, params), (got_cases, got_params), _ in days:
        assert got_cases.keys() == cases.keys(), now
        assert got_cases == cases, now
        assert got_params == params, now


def test_deleted_cases_leave_and_are_recorded(simulation):
    _, days = simulation
    total_deleted = sum(report.deleted for _, report, *_ in days)
    assert total_deleted > 0, "the world deleted cases in 45 days"
    _, _, _, (got, _), recorded = days[-1]
    assert recorded, "what vanished is recorded"
    assert not recorded & got.keys(), "a recorded case is not in bizagi.cases"
    assert len(recorded) == total_deleted


def test_each_day_reads_only_what_can_have_changed(simulation):
    first, days = simulation
    assert first.plan.days(NEW), "the first sync lands the history"
    for now, report, *_ in days:
        plan = report.plan
        assert plan.days(NEW) == [now.date() - dt.timedelta(days=1), now.date()], now
        assert set(plan.days(OPEN)) <= set(_history(now)), now
        read = len(plan.days())
        assert read < len(_history(now)), f"{now}: read {read} days, every day"


def test_the_cost_follows_what_changed_not_the_history(simulation):
    """Count requests grow with the days that moved (a log of the history each), not with the
    history: the last syncs, with the longest history, spend about what the first ones do.
    (Requests against a full re-extraction at scale: benchmarks/sync_bench.py.)"""
    _, days = simulation
    counts = [report.plan.count_requests for _, report, *_ in days]
    early, late = counts[:5], counts[-5:]
    assert max(late) <= 3 * max(early) + 24


def test_a_moved_count_is_found_by_splitting_only_the_windows_that_differ():
    """One closed day of a 512-day history lost a case at the source: the plan finds that day
    with about two count requests per halving, not one per day."""
    first = dt.date(2025, 1, 1)
    history = [first + dt.timedelta(days=i) for i in range(512)]
    at_source = dict.fromkeys(history, 3)
    gone = history[300]
    at_source[gone] = 2

    async def counts(request: Request) -> JSONResponse:
        text = request.query_params["$filter"]
        lo, hi = (dt.date.fromisoformat(t[:10]) for t in re.findall(r"\d{4}-\d{2}-\d{2}T", text))
        total = sum(n for day, n in at_source.items() if lo <= day < hi)
        return JSONResponse({"value": [], "@odata.count": total})

    stream = Stream(name="rows", description="", path="odata/Rows", key=("id",),
                    partitioning="daily", columns=(), cursor="created", kind="custom")  # fmt: skip
    landed = {day: Landed(by_path=Counter({None: 3}), rows=3) for day in history}
    app = Starlette(routes=[Route("/odata/Rows", counts)])
    with AsgiServer(app) as http:
        settings = BizagiSettings(base_url=http.base_url, client_id="c", client_secret="token",
                                  auth_method="bearer_token")  # fmt: skip
        with BizagiClient(settings) as client:
            plan = plan_sync(client, stream, landed, start=first, today=history[-1])
    assert plan.days(MOVED) == [gone]
    assert plan.count_requests <= 2 * 10  # log2(512) = 9 halvings
    assert plan.days(NEW) == [history[-1]]


def _history(now: dt.datetime) -> list[dt.date]:
    return [START + dt.timedelta(days=i) for i in range((now.date() - START).days + 1)]


def test_the_cli_prints_what_it_did(tmp_path):
    config = EmulatorConfig(cases=200, start=START, end=END, now=END, seed=3)
    with EmulatorServer(config) as server:
        env = {"BIZAGI_BASE_URL": server.base_url, "BIZAGI_CLIENT_ID": server.client_id,
               "BIZAGI_CLIENT_SECRET": server.client_secret, "BIZAGI_LAKE": str(tmp_path / "l"),
               "BIZAGI_WAREHOUSE": str(tmp_path / "w.duckdb"),
               "BIZAGI_START_DATE": START.isoformat()}  # fmt: skip
        first = CliRunner().invoke(main, ["sync", "cases", "--now", server.now.isoformat()],
                                   env=env)  # fmt: skip
        later = server.advance(dt.timedelta(days=3))
        again = CliRunner().invoke(main, ["sync", "cases", "--now", later.isoformat()], env=env)
    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    for line in ("read: new days", "read: days that held open cases",
                 "read: days whose count at the source moved", "rows added / changed / deleted",
                 "requests: counts + reads", "a full re-extraction would cost"):  # fmt: skip
        assert line in again.output


def test_an_integer_key_sent_as_text_compares_with_the_lakes_integers():
    """Under IEEE754Compatible a server sends Int64 keys as text; the open cases the lake
    holds are integers, and a listing's case must be the same case, not a vanished one."""
    typed = key_typer(Catalog.load().get("cases"))
    assert typed("1042") == 1042
    assert typed(1042) == 1042
    assert key_typer(Stream(name="s", description="", path="p", key=("code",),
                             partitioning="daily", columns=(), cursor="c",
                             kind="custom"))("0042") == "0042"  # fmt: skip
