"""The emulator's clock: a world where cases arrive, close, change and vanish as time moves.

Against real in-process servers whose clock is pinned (``now``) and moved (``set_now``,
``advance``). Which case closes or is deleted when comes from the dataset's timeline columns;
what each instant serves is checked over HTTP and against the ground truth of that instant.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import END, client_for, page_all

from bizagi_etl.cli import main
from bizagi_etl.emulator import EmulatorConfig, EmulatorConfigError, EmulatorServer
from bizagi_etl.emulator.dataset import MUTATED_FIRST_ID, Dataset, format_local
from bizagi_etl.emulator.timeline import NEVER

UTC = dt.UTC
END_AT = dt.datetime(END.year, END.month, END.day, tzinfo=UTC)
INSIDE = dt.datetime(2026, 8, 3, 9, 0, tzinfo=UTC)  # a Monday inside the history
CLOCK = EmulatorConfig(cases=2_000, start=dt.date(2026, 1, 1), end=END, seed=11, now=INSIDE)
CASES = "/odata/data/processes({})/cases"


def _at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, UTC)


def _z(instant: dt.datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def _filter(text: str) -> str:
    return quote(text, safe="")


def _instant(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text).astimezone(UTC)


@contextmanager
def serving(config: EmulatorConfig = CLOCK, **changes: Any) -> Iterator[EmulatorServer]:
    with EmulatorServer(dataclasses.replace(config, **changes)) as server:
        yield server


def _param(case: dict, xpath: str) -> Any:
    (found,) = [p["value"] for p in case["parameters"] if p["xpath"] == xpath]
    return found


def _total(client: httpx.Client, path: str, text: str | None = None) -> int:
    query = "$top=0" + (f"&$filter={_filter(text)}" if text else "")
    response = client.get(f"{path}?{query}")
    assert response.status_code == 200, response.text
    return int(response.json()["@odata.totalCount"])


# -- settings and the default clock ----------------------------------------------------------


def test_now_is_validated_and_normalised():
    assert CLOCK.now == INSIDE
    as_date = dataclasses.replace(CLOCK, now=dt.date(2026, 9, 1))
    assert as_date.now == dt.datetime(2026, 9, 1, tzinfo=UTC)
    naive = dataclasses.replace(CLOCK, now=dt.datetime(2026, 9, 1, 12, 30))
    assert naive.now == dt.datetime(2026, 9, 1, 12, 30, tzinfo=UTC)
    offset = dt.timezone(dt.timedelta(hours=-5))
    zoned = dataclasses.replace(CLOCK, now=dt.datetime(2026, 9, 1, 7, 30, tzinfo=offset))
    assert zoned.now == dt.datetime(2026, 9, 1, 12, 30, tzinfo=UTC)
    with pytest.raises(EmulatorConfigError, match="'now'"):
        dataclasses.replace(CLOCK, now=dt.datetime(2025, 12, 31, 23, 59, tzinfo=UTC))
    with pytest.raises(EmulatorConfigError, match="'now'"):
        dataclasses.replace(CLOCK, now=dt.datetime(2040, 1, 1, tzinfo=UTC))
    with pytest.raises(EmulatorConfigError, match="'now'"):
        dataclasses.replace(CLOCK, now="2026-09-01")  # type: ignore[arg-type]


def test_an_unset_clock_is_read_once_and_stops_at_the_end_of_the_history():
    past = EmulatorConfig(cases=500, start=dt.date(2026, 1, 1), end=END)
    assert past.now is None
    assert past.clock() == END_AT, "a history that ended shows its end, whatever day it is"
    today = dt.datetime.now(UTC).date()
    default = EmulatorConfig(cases=500)
    assert default.clock() == dt.datetime(today.year, today.month, today.day, tzinfo=UTC)
    future = EmulatorConfig(cases=500, end=today + dt.timedelta(days=30))
    before = dt.datetime.now(UTC).replace(microsecond=0)
    ds = Dataset(future)
    after = dt.datetime.now(UTC)
    assert before <= ds.now_instant <= after, "a history still running shows the wall clock"
    recorded = ds.now
    ds.add_case()
    assert ds.now == recorded, "the clock does not drift with the wall clock"


def test_the_end_of_the_history_holds_exactly_the_configured_cases():
    ds = Dataset(dataclasses.replace(CLOCK, now=END_AT))
    assert ds.case_count == CLOCK.cases
    assert ds.size > ds.case_count, "some cases were deleted before the end"
    assert np.all(ds.created[ds.exists] < ds.now)
    later = Dataset(dataclasses.replace(CLOCK, now=END_AT + dt.timedelta(days=30)))
    assert later.case_count > CLOCK.cases, "new cases keep arriving after the history's end"
    earlier = Dataset(CLOCK)
    assert earlier.case_count < CLOCK.cases, "cases created after the clock do not exist yet"


def test_the_clock_only_moves_forward():
    with serving() as server:
        assert server.now == INSIDE
        assert server.advance(dt.timedelta(hours=5)) == INSIDE + dt.timedelta(hours=5)
        assert server.set_now(dt.date(2026, 8, 10)) == dt.datetime(2026, 8, 10, tzinfo=UTC)
        with pytest.raises(ValueError, match="only moves forward"):
            server.set_now(INSIDE)
        with pytest.raises(EmulatorConfigError, match="'now'"):
            server.set_now(dt.datetime(2040, 1, 1, tzinfo=UTC))
        assert server.now == dt.datetime(2026, 8, 10, tzinfo=UTC)
    with pytest.raises(RuntimeError, match="start"):
        EmulatorServer(CLOCK).set_now(INSIDE)


# -- cases over time ------------------------------------------------------------------------


def _vacation_case_that_closes(ds: Dataset, t1: int, t2: int) -> int:
    """A vacation request open and undecided at t1, closed at t2 with a decided Approved."""
    vacation = next(p.index for p in ds.processes if p.spec.name == "VacationRequest")
    positions = np.flatnonzero(
        (ds.process == vacation) & ds.exists & (ds.closes_at > t1) & (ds.closes_at < t2)
        & (ds.deleted_at > t2)
    )  # fmt: skip
    plan = ds.plans(positions)
    positions = positions[plan.decided_at > t1]
    later = Dataset(dataclasses.replace(ds.config, now=_at(t2)))
    for position, params in zip(positions, later.case_parameters(positions), strict=True):
        if any(p["xpath"] == "Approved" and p["value"] is not None for p in params):
            return int(position)
    raise AssertionError("no vacation request closes in the window")


def test_an_open_case_closes_gets_its_solution_date_and_its_decision():
    with serving() as server, client_for(server) as client:
        ds = server.emulated.ds
        t1 = ds.now
        t2 = t1 + 30 * 86_400
        position = _vacation_case_that_closes(ds, t1, t2)
        case_id = int(ds.case_ids(np.array([position]))[0])
        before = client.get(f"/odata/data/cases({case_id})").json()
        assert before["closed"] is False
        assert before["solutionDate"] is None
        assert _param(before, "Approved") is None, "not decided yet"
        assert client.get(f"/odata/data/cases({case_id})/workitems").json()["value"]
        assert _total(client, "/odata/data/cases", f"idCase eq {case_id}") == 1, "in the inbox"
        closes = int(ds.closes_at[position])
        server.set_now(_at(closes - 1))
        assert client.get(f"/odata/data/cases({case_id})").json()["closed"] is False
        server.set_now(_at(closes))
        after = client.get(f"/odata/data/cases({case_id})").json()
        assert after["closed"] is True
        expected = format_local(np.array([closes]), ds.offset[position : position + 1])[0]
        assert after["solutionDate"] == expected
        assert _instant(after["solutionDate"]) == _at(closes)
        assert isinstance(_param(after, "Approved"), bool), "decided when its task completed"
        assert after["creationDate"] == before["creationDate"]
        assert client.get(f"/odata/data/cases({case_id})/workitems").json()["value"] == []
        assert _total(client, "/odata/data/cases", f"idCase eq {case_id}") == 0, "left the inbox"


def test_parameters_are_decided_then_revised_at_their_own_instants():
    with serving() as server, client_for(server) as client:
        ds = server.emulated.ds
        candidates = np.flatnonzero(ds.exists & ~ds.closed & (ds.deleted_at == NEVER))
        plan = ds.plans(candidates)
        pick = np.flatnonzero(
            (plan.decided_at > ds.now) & (plan.revised_at < NEVER) & (plan.closes_at < NEVER)
        )[0]
        position = int(candidates[pick])
        decided, revised = int(plan.decided_at[pick]), int(plan.revised_at[pick])
        assert ds.now < decided < revised <= int(ds.closes_at[position])
        info = ds.processes[int(ds.process[position])]
        case_id = int(ds.case_ids(np.array([position]))[0])

        def params() -> dict[str, Any]:
            body = client.get(f"/odata/data/cases({case_id})").json()
            return {p["xpath"]: p.get("value") for p in body["parameters"]}

        first = params()
        assert all(first[attr] is None for attr in info.spec.decided)
        server.set_now(_at(decided))
        second = params()
        changed = {k for k in first if first[k] != second[k]}
        assert changed <= set(info.spec.decided), "only the decided attributes are filled"
        server.set_now(_at(revised))
        third = params()
        changed = {k for k in second if second[k] != third[k]}
        assert changed == set(info.spec.revised), "the revised attributes change once more"
        assert all(third[attr] is not None for attr in info.spec.revised)
        server.set_now(_at(revised) + dt.timedelta(days=400))
        assert params() == third, "and never again"


def test_a_deleted_case_vanishes_from_every_listing():
    with serving() as server, client_for(server) as client:
        ds = server.emulated.ds
        # Aborted while open (so it is in the inbox too), some time after the clock.
        doomed = (ds.created > ds.now) & (ds.deleted_at < ds.closes_at) & (ds.deleted_at < NEVER)
        position = int(np.flatnonzero(doomed)[0])
        gone = int(ds.deleted_at[position])
        case_id = int(ds.case_ids(np.array([position]))[0])
        info = ds.processes[int(ds.process[position])]
        path = CASES.format(info.id)
        created = _at(int(ds.created[position])).replace(hour=0, minute=0, second=0)
        day = (
            f"creationDate ge {_z(created)} and "
            f"creationDate lt {_z(created + dt.timedelta(days=1))}"
        )
        number = f"{info.spec.prefix}-{case_id}"
        search = f"/odata/data/searchByCaseNumber(caseNumber='{number}')"
        inbox = "/odata/data/cases"

        server.set_now(_at(gone - 1))
        assert client.get(f"/odata/data/cases({case_id})").status_code == 200
        assert case_id in [c["id"] for c in page_all(client, path, {"$filter": day})]
        assert case_id in [c["idCase"] for c in page_all(client, "/odata/data/cases")]
        assert [c["id"] for c in client.get(search).json()["value"]] == [case_id]
        counts = [_total(client, p, f) for p, f in ((path, day), (path, None), (inbox, None))]

        server.set_now(_at(gone))
        for url in (f"/odata/data/cases({case_id})", f"/odata/data/cases({case_id})/workitems",
                    f"{path[: -len('/cases')]}/cases({case_id})"):  # fmt: skip
            response = client.get(url)
            assert response.status_code == 404, url
            assert response.json()["code"] == "404"
        assert case_id not in [c["id"] for c in page_all(client, path, {"$filter": day})]
        assert case_id not in [c["idCase"] for c in page_all(client, "/odata/data/cases")]
        workitems = page_all(client, "/odata/data/casesWithWorkitems")
        assert case_id not in [c["idCase"] for c in workitems]
        assert client.get(search).json()["value"] == []
        after = [_total(client, p, f) for p, f in ((path, day), (path, None), (inbox, None))]
        assert after == [c - 1 for c in counts]


def test_workitems_appear_and_complete_along_the_case():
    with serving() as server, client_for(server) as client:
        ds = server.emulated.ds
        future = np.flatnonzero(
            (ds.created > ds.now) & (ds.deleted_at == NEVER) & (ds.closes_at < NEVER)
        )
        plan = ds.plans(future)
        pick = int(np.flatnonzero(plan.workitems >= 3)[0])
        position, n = int(future[pick]), int(plan.workitems[pick])
        created, closes = int(ds.created[position]), int(ds.closes_at[position])
        case_id = int(ds.case_ids(np.array([position]))[0])
        url = f"/odata/data/cases({case_id})/workitems"
        j = np.arange(n)
        one = ds.plans(np.array([position]))
        appears, completes = one.appears(j), one.completes(j)

        assert client.get(url).status_code == 404, "not created yet"
        seen: dict[int, dict] = {}
        timeline = []
        instants = sorted({created, *appears.tolist(), *completes.tolist()})
        for instant in instants:
            server.set_now(_at(instant))
            items = client.get(url).json()["value"]
            timeline.append(len(items))
            for item in items:
                assert seen.setdefault(item["id"], item)["taskName"] == item["taskName"]
            expected = int(((appears <= instant) & (instant < completes)).sum())
            assert len(items) == expected, _at(instant)
        assert timeline[0] == 1, "one workitem when the case is created"
        assert max(timeline) == n, "all of them pending at once, halfway"
        assert instants[-1] == closes
        assert timeline[-1] == 0, "none once closed"
        assert all(t >= 1 for t in timeline[:-1]), "an open case always has work pending"
        assert sorted(seen) == [case_id * 10 + k for k in range(n)], "stable ids"


def test_new_cases_arrive_more_on_weekdays_than_weekends():
    config = EmulatorConfig(cases=5_000, start=dt.date(2025, 1, 1), end=END, seed=5, now=END_AT)
    with serving(config) as server, client_for(server) as client:
        since = f"creationDate ge {_z(END_AT)}"
        processes = client.get("/odata/data/processes").json()["value"]
        assert sum(_total(client, CASES.format(p["id"]), since) for p in processes) == 0
        totals = []
        for _ in range(13):  # a quarter of a year, a week at a time
            now = server.advance(dt.timedelta(days=7))
            newest = [
                c
                for p in processes
                for c in client.get(CASES.format(p["id"]), params={"$top": 1}).json()["value"]
            ]
            assert all(_instant(c["creationDate"]) <= now for c in newest), "none from the future"
            totals.append(sum(_total(client, CASES.format(p["id"]), since) for p in processes))
        assert totals == sorted(totals)
        assert totals[-1] > totals[0] > 0
        arrived = [
            _instant(c["creationDate"])
            for p in processes
            for c in page_all(client, CASES.format(p["id"]), {"$filter": since})
        ]
    assert len(arrived) == totals[-1]
    per_day = Counter(a.date() for a in arrived)
    days = [END + dt.timedelta(days=k) for k in range(91)]
    weekday = [per_day[d] for d in days if d.weekday() < 5]
    weekend = [per_day[d] for d in days if d.weekday() >= 5]
    assert np.mean(weekday) > 2.5 * np.mean(weekend) > 0
    rate = config.cases / (config.end - config.start).days  # the history's average per day
    assert 0.8 * rate * 91 < len(arrived) < 1.2 * rate * 91


@pytest.mark.parametrize(
    "later",
    [INSIDE + dt.timedelta(days=45, hours=3), END_AT + dt.timedelta(days=20, hours=3)],
    ids=["inside-the-history", "after-its-end"],
)
def test_the_same_seed_and_instant_serve_the_same_bytes(later):
    bodies = []
    for how in ("pinned", "pinned", "moved"):
        now = later if how == "pinned" else INSIDE
        with serving(now=now) as server, client_for(server) as client:
            if how == "moved":  # in steps, so days after the end are generated in pieces
                server.advance(dt.timedelta(days=20))
                server.set_now(later - dt.timedelta(days=12, hours=5))
                server.set_now(later)
            entities = client.get("/odata/data/entities").json()["value"]
            product = next(e["id"] for e in entities if e["name"] == "Product")
            pid = client.get("/odata/data/processes").json()["value"][4]["id"]
            paths = [f"{CASES.format(pid)}?$top=400", "/odata/data/casesWithWorkitems?$top=80",
                     "/odata/data/cases?$top=200&$skip=100",
                     f"/odata/data/entities({product})/values?$top=500&$skip=2000",
                     f"{CASES.format(pid)}?$filter={_filter('closed eq false')}"]  # fmt: skip
            bodies.append([client.get(p).text.replace(server.base_url, "") for p in paths])
    assert bodies[0] == bodies[1], "two servers, one seed, one instant"
    assert bodies[0] == bodies[2], "a clock moved to an instant serves what one set there does"


def test_entity_values_change_and_are_removed():
    with serving() as server, client_for(server) as client:
        ds = server.emulated.ds
        product = ds.entity_by_name["Product"]
        story = ds.value_timeline(product)
        t1, t2 = ds.now, ds.now + 60 * 86_400
        live = story.removed_at > t2
        changing = int(np.flatnonzero(live & (story.changed_at > t1) & (story.changed_at <= t2))[0])
        leaving = np.flatnonzero((story.removed_at > t1) & (story.removed_at <= t2))
        assert len(leaving) > 5
        ids = ds.entity_value_ids(product, np.array([changing, *leaving.tolist()]))
        url = f"/odata/data/entities({product.id})/values"
        total = _total(client, url)
        assert total == int((story.removed_at > t1).sum())
        before = client.get(f"{url}({ids[0]})").json()["parameters"]
        assert client.get(f"{url}({ids[1]})").status_code == 200

        server.set_now(_at(t2))
        after = client.get(f"{url}({ids[0]})").json()["parameters"]
        column = product.spec.columns[int(story.changed_column[changing])].attr
        differ = [b["xpath"] for b, a in zip(before, after, strict=True) if b != a]
        assert differ == [column], "one attribute changed, the others did not"
        assert after[0] == before[0], "a value's code never changes"
        for value_id in ids[1:]:
            assert client.get(f"{url}({value_id})").status_code == 404
        assert _total(client, url) == total - len(leaving)
        listed = {v["id"] for v in page_all(client, url, {"$top": 1000})}
        assert not listed & set(ids[1:])
        assert ids[0] in listed


# -- counts, truth and the switches at an instant ---------------------------------------------

WORLD = dataclasses.replace(CLOCK, cases=1_500, now=END_AT + dt.timedelta(days=20, hours=7))


@pytest.fixture(scope="module")
def world_truth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """The CLI's --export-truth at WORLD's instant, one frame per file."""
    folder: Path = tmp_path_factory.mktemp("clock_truth")
    args = ["emulator", "--export-truth", str(folder), "--cases", str(WORLD.cases),
            "--seed", str(WORLD.seed), "--start", WORLD.start.isoformat(),
            "--end", WORLD.end.isoformat(), "--now", "2026-11-21T02:00:00-05:00"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "2026-11-21T07:00:00Z" in result.output
    return {p.stem: pd.read_parquet(p) for p in folder.glob("*.parquet")}


@pytest.fixture(scope="module")
def world() -> Iterator[EmulatorServer]:
    with EmulatorServer(WORLD) as server:
        yield server


def _j(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _rows(truth: pd.DataFrame, key: list[str]) -> list[tuple]:
    frame = truth.sort_values(key).reset_index(drop=True).astype(object)
    frame = frame.where(frame.notna(), None)  # pandas reads a missing string as NaN
    return [tuple(r) for r in frame.itertuples(index=False)]


def test_truth_at_an_instant_equals_paging_the_server(world, world_truth):
    truth_cases = world_truth["cases"]
    assert len(truth_cases) > WORLD.cases, "cases arrived after the end"
    assert (~truth_cases.closed).any()
    assert truth_cases.closed.any()
    with client_for(world) as client:
        processes = client.get("/odata/data/processes").json()["value"]
        served = [
            {**c, "process_id": p["id"]}
            for p in processes
            for c in page_all(client, CASES.format(p["id"]), {"$top": 1000})
        ]
        inbox = page_all(client, "/odata/data/casesWithWorkitems", {"$top": 1000})
        entities = client.get("/odata/data/entities").json()["value"]
        values = [
            (e["id"], v["id"], i, p["xpath"], _j(p["value"]))
            for e in entities
            for v in page_all(client, f"/odata/data/entities({e['id']})/values", {"$top": 1000})
            for i, p in enumerate(v["parameters"])
        ]
    columns = ["id", "process_id", "caseNumber", "creationDate", "estimatedSolutionDate",
               "solutionDate", "processName", "closed"]  # fmt: skip
    got = sorted(tuple(c[k] for k in columns) for c in served)
    assert got == _rows(truth_cases[columns], ["id"])
    params = sorted(
        (c["id"], i, p["xpath"], _j(p["value"]) if "value" in p else None)
        for c in served
        for i, p in enumerate(c["parameters"])
    )
    truth = world_truth["case_parameters"]
    truth = truth.assign(
        value=truth.value.map(lambda v: _j(json.loads(v)) if isinstance(v, str) else None)
    )
    key = ["case_id", "position"]
    assert params == _rows(truth[[*key, "xpath", "value"]], key)
    items = sorted((c["idCase"], w["id"], w["state"]) for c in inbox for w in c["workitems"])
    assert items == _rows(world_truth["workitems"][["case_id", "id", "state"]], ["id"])
    assert sorted(c["idCase"] for c in inbox) == sorted(world_truth["inbox"].idCase)
    truth = world_truth["entity_values"]
    truth = truth.assign(value=truth.value.map(lambda v: _j(json.loads(v))))
    key = ["entity_id", "value_id", "position"]
    assert sorted(values) == _rows(truth[[*key, "xpath", "value"]], key)


def test_counts_by_filter_window_equal_the_truth(world, world_truth):
    cases = world_truth["cases"]
    created = cases.creation_utc
    solved = cases.solutionDate.map(lambda s: _instant(s) if isinstance(s, str) else None)
    windows = [(dt.datetime(2026, 10, 26, tzinfo=UTC), dt.datetime(2026, 11, 2, tzinfo=UTC)),
               (END_AT, END_AT + dt.timedelta(days=7)),
               (END_AT + dt.timedelta(days=14), END_AT + dt.timedelta(days=30))]  # fmt: skip
    with client_for(world) as client:
        processes = client.get("/odata/data/processes").json()["value"]
        for lo, hi in windows:
            text = f"creationDate ge {_z(lo)} and creationDate lt {_z(hi)}"
            got = sum(_total(client, CASES.format(p["id"]), text) for p in processes)
            assert got == int(((created >= lo) & (created < hi)).sum()), text
            mine = cases[cases.process_id == processes[0]["id"]]
            one = _total(client, CASES.format(processes[0]["id"]), text)
            assert one == int(((mine.creation_utc >= lo) & (mine.creation_utc < hi)).sum())
        paths = [CASES.format(p["id"]) for p in processes]
        still_open = sum(_total(client, path, "closed eq false") for path in paths)
        assert still_open == int((~cases.closed).sum()) == len(world_truth["inbox"])
        assert _total(client, "/odata/data/cases") == still_open
        since = END_AT + dt.timedelta(days=10)
        text = f"solutionDate ge {_z(since)}"
        got = sum(_total(client, CASES.format(p["id"]), text) for p in processes)
        assert got == int(solved.map(lambda s: s is not None and s >= since).sum()) > 0
        body = client.get("/odata/data/cases", params={"$top": 5, "$count": "true"}).json()
        assert body["@odata.totalCount"] == still_open


def test_mutated_cases_are_created_at_the_clock_instant():
    now = dt.datetime(2026, 11, 15, 10, 30, tzinfo=UTC)
    with serving(now=now, mutate_rate=1.0) as server, client_for(server) as client:
        first = client.get("/odata/data/cases", params={"$top": 1}).json()["value"][0]
        later = server.advance(dt.timedelta(hours=3))
        second = client.get("/odata/data/cases", params={"$top": 1}).json()["value"][0]
        assert server.injected["mutate"] >= 2
        whole = client.get(f"/odata/data/cases({second['idCase']})").json()
    assert first["idCase"] >= MUTATED_FIRST_ID
    assert second["idCase"] > first["idCase"]
    assert _instant(first["CreationDate"]) == now
    assert _instant(second["CreationDate"]) == later
    assert whole["closed"] is False


def test_requests_while_the_clock_moves_never_fail():
    failures: list[str] = []
    with serving() as server, client_for(server) as client:
        stop = threading.Event()

        def move() -> None:
            for _ in range(400):  # at most 100 days: well inside the range the clock may show
                if stop.wait(0.002):
                    return
                server.advance(dt.timedelta(hours=6))

        mover = threading.Thread(target=move)
        mover.start()
        try:
            for skip in range(0, 60):
                response = client.get("/odata/data/casesWithWorkitems", params={"$skip": skip})
                if response.status_code != 200:
                    failures.append(response.text)
                body = response.json()
                assert body["@odata.totalCount"] >= len(body["value"])
        finally:
            stop.set()
            mover.join()
        assert server.now > INSIDE
    assert failures == []


# -- the command line -------------------------------------------------------------------------


def test_cli_now_option(tmp_path):
    args = ["emulator", "--export-truth", str(tmp_path), "--cases", "400", "--seed", "3",
            "--start", "2026-01-01", "--end", "2026-11-01"]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--now", "2026-12-01"])
    assert result.exit_code == 0, result.output
    assert "the world at 2026-12-01T00:00:00Z" in result.output
    cases = pd.read_parquet(tmp_path / "cases.parquet")
    assert len(cases) > 400, "cases arrived in November"
    assert cases.creation_utc.max() < pd.Timestamp("2026-12-01", tz="UTC")
    inside = CliRunner().invoke(main, [*args, "--now", "2026-06-01T12:00:00Z"])
    assert inside.exit_code == 0, inside.output
    assert len(pd.read_parquet(tmp_path / "cases.parquet")) < 400
    bad = CliRunner().invoke(main, [*args, "--now", "tomorrow"])
    assert bad.exit_code == 2
    assert "--now" in bad.output
    early = CliRunner().invoke(main, [*args, "--now", "2025-06-01"])
    assert early.exit_code == 2
    assert "'now'" in early.output
    helped = CliRunner().invoke(main, ["emulator", "--help"])
    assert "--now" in helped.output
