"""The pipeline against the emulator's ground truth: every row once, typed, re-runnable."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import SMALL, settings_for, unfinished

from bizagi_etl.connector.client import BizagiClient
from bizagi_etl.connector.settings import BizagiSettings
from bizagi_etl.pipeline.extract import extract_stream, load_result, resolve_streams
from bizagi_etl.pipeline.lake import Lake
from bizagi_etl.pipeline.runner import run
from bizagi_etl.pipeline.streams import Catalog
from bizagi_etl.pipeline.warehouse import Warehouse

ALL = ["processes", "stakeholders", "entities", "entity_values", "cases", "inbox"]


def _settings(server) -> BizagiSettings:
    return settings_for(server)


def _utc(text: object) -> pd.Timestamp | None:
    if not isinstance(text, str):
        return None
    return pd.Timestamp(dt.datetime.fromisoformat(text)).tz_convert("UTC")


@pytest.fixture(scope="module")
def landed(tmp_path_factory, small_server):
    folder: Path = tmp_path_factory.mktemp("landed")
    lake, warehouse = Lake(folder / "lake"), Warehouse(folder / "w.duckdb")
    with BizagiClient(_settings(small_server)) as client:
        report = run(client, Catalog.load(), ALL, lake, warehouse, start=SMALL.start, end=SMALL.end)
    yield lake, warehouse, report
    warehouse.close()


def _table(warehouse: Warehouse, name: str) -> pd.DataFrame:
    return warehouse.con.execute(f"SELECT * FROM bizagi.{name}").df()


def test_every_case_lands_once_with_its_values(landed, small_truth):
    _, warehouse, report = landed
    cases = _table(warehouse, "cases").set_index("id").sort_index()
    truth = small_truth["cases"].set_index("id").sort_index()
    assert list(cases.index) == list(truth.index), "every case exactly once"
    assert (cases.case_number == truth.caseNumber).all()
    assert (cases.process_id == truth.process_id).all()
    assert (cases.process_entity_key == truth.processEntityKey).all()
    assert (cases.closed == truth.closed).all()
    for column, source in (("creation_date", "creationDate"),
                           ("estimated_solution_date", "estimatedSolutionDate"),
                           ("solution_date", "solutionDate")):  # fmt: skip
        expected = truth[source].map(_utc)
        got = cases[column]
        assert (got.isna() == expected.isna()).all(), column
        assert (got[got.notna()] == expected[expected.notna()]).all(), column
    assert str(cases.creation_date.dtype) in ("datetime64[us, UTC]", "datetime64[us, Etc/UTC]")
    partitions = warehouse.query("SELECT DISTINCT _partition, id FROM bizagi.cases")
    for day, case_id in partitions[:200]:
        assert truth.loc[case_id, "creation_utc"].date().isoformat() == day
    cases_result = next(r for r in report.results if r.stream == "cases")
    assert cases_result.outside_window == 0


def _value_text(json_text: str | None) -> str | None:
    if json_text is None or pd.isna(json_text):
        return None
    value = json.loads(json_text)
    return value if value is None or isinstance(value, str) else json.dumps(value)


def test_case_parameters_land_in_long_format(landed, small_truth):
    _, warehouse, _ = landed
    got = _table(warehouse, "case_parameters").sort_values(["case_id", "position"])
    truth = small_truth["case_parameters"].sort_values(["case_id", "position"])
    assert len(got) == len(truth)
    assert got.case_id.tolist() == truth.case_id.tolist()
    assert got.xpath.tolist() == truth.xpath.tolist()
    expected = [_value_text(v) for v in truth.value]
    actual = [None if pd.isna(v) else v for v in got.value]
    # Floats were written by orjson and json: compare numbers as numbers.
    for a, e in zip(actual, expected, strict=True):
        if a != e:
            assert float(a) == float(e)
    assert (got.value == "").sum() == (truth.value == '""').sum() > 0, "empty strings stay"
    assert got.value.isna().sum() == truth.value.map(lambda v: pd.isna(v) or v == "null").sum()
    assert set(got.value_type) >= {"string", "number", "boolean", "null", "files"}


def _entity_truth(small_truth, name: str) -> pd.DataFrame:
    long = small_truth["entity_values"]
    long = long[long.entity_name == name]
    wide = long.pivot(index="value_id", columns="xpath", values="value")
    return wide.map(lambda v: json.loads(v) if isinstance(v, str) else None)


def test_entity_values_are_typed_and_exact(landed, small_truth):
    _, warehouse, _ = landed
    product = _table(warehouse, "entity_product").set_index("id").sort_index()
    truth = _entity_truth(small_truth, "Product").sort_index()
    assert list(product.index) == list(truth.index)
    prices = dict(warehouse.query("SELECT id, price::VARCHAR FROM bizagi.entity_product"))
    for value_id, price in truth.Price.items():
        expected = None if price is None or pd.isna(price) else Decimal(repr(price))
        got = prices[value_id]
        assert (got is None and expected is None) or Decimal(got) == expected, value_id
    assert (product.stock.dropna() == truth.Stock.dropna()).all()
    assert (product.disabled == truth.dsbl).all()
    launch = truth.LaunchDate.map(lambda v: None if v is None else pd.Timestamp(v, tz="UTC"))
    assert (product.launch_date.dropna() == launch.dropna()).all()
    types = warehouse.columns("entity_product")
    assert types["price"] == "DECIMAL(19,4)"
    assert types["stock"] == "INTEGER"
    assert types["weight_kg"] == "DOUBLE"
    assert types["launch_date"] == "TIMESTAMP WITH TIME ZONE"
    country = _table(warehouse, "entity_country")
    assert country.area_km2.dtype.kind == "f"
    assert len(country) == len(_entity_truth(small_truth, "Country"))


def test_snapshots_and_inbox_land(landed, small_truth):
    _, warehouse, _ = landed
    for table, truth in (("processes", "processes"), ("stakeholders", "stakeholders"),
                         ("entities", "entities")):  # fmt: skip
        got = sorted(_table(warehouse, table).id)
        assert got == sorted(small_truth[truth].id), table
    inbox = _table(warehouse, "inbox")
    assert sorted(inbox.id) == sorted(small_truth["inbox"].idCase)
    items = _table(warehouse, "inbox_workitems")
    assert sorted(items.id) == sorted(small_truth["workitems"].id)
    assert set(items.state) <= {"red", "yellow", "green"}


def test_views_answer(landed, small_truth):
    _, warehouse, report = landed
    assert {"010_cases_per_process_day.sql", "020_case_sla.sql"} <= set(report.views)
    total = warehouse.query("SELECT sum(cases) FROM analytics.cases_per_process_day")[0][0]
    assert total == len(small_truth["cases"])
    statuses = dict(
        warehouse.query("SELECT sla_status, count(*) FROM analytics.case_sla GROUP BY 1")
    )
    assert sum(statuses.values()) == len(small_truth["cases"])
    assert set(statuses) <= {"on time", "at risk", "overdue", "no estimate"}
    truth = small_truth["cases"]
    closed = truth[truth.closed]
    late = (closed.solutionDate.map(_utc) > closed.estimatedSolutionDate.map(_utc)).sum()
    got = warehouse.query(
        "SELECT count(*) FROM analytics.case_sla WHERE closed AND sla_status = 'overdue'"
    )[0][0]
    assert got == late
    workitems = warehouse.query("SELECT sum(workitems) FROM analytics.open_workitems")[0][0]
    assert workitems == len(small_truth["workitems"])
    latest = {v for v in report.views if v.startswith("latest_entity_")}
    assert latest == {"latest_entity_country", "latest_entity_currency",
                      "latest_entity_department", "latest_entity_product"}  # fmt: skip


def _extract_cases(server, folder: Path, start: dt.date, end: dt.date, **kwargs):
    lake = Lake(folder / "lake")
    with BizagiClient(_settings(server)) as client, Warehouse(folder / "w.duckdb") as warehouse:
        stream = Catalog.load().get("cases")
        at = dt.datetime.now(dt.UTC)
        result = extract_stream(
            client, stream, lake, start=start, end=end, extracted_at=at, **kwargs
        )
        load_result(warehouse, result, at)
        rows = warehouse.query("SELECT id, _partition FROM bizagi.cases ORDER BY id")
    return lake, rows, result


def _lake_rows(lake: Lake, table: str) -> pd.DataFrame:
    return lake.read(table).to_pandas()


def test_same_window_twice_changes_nothing(small_server, tmp_path):
    start, end = dt.date(2026, 6, 1), dt.date(2026, 6, 15)
    lake, first, _ = _extract_cases(small_server, tmp_path, start, end)
    files_before = {p: pq.read_table(p) for p in lake.files("cases")}
    _, second, _ = _extract_cases(small_server, tmp_path, start, end)
    files_after = {p: pq.read_table(p) for p in lake.files("cases")}
    assert first == second
    assert files_before.keys() == files_after.keys()
    for path, table in files_before.items():
        assert table.equals(files_after[path]), path
    assert len(lake.partitions("cases")) == 14


def test_overlapping_window_replaces(small_server, tmp_path, small_truth):
    _extract_cases(small_server, tmp_path, dt.date(2026, 6, 1), dt.date(2026, 6, 15))
    lake, rows, _ = _extract_cases(
        small_server, tmp_path, dt.date(2026, 6, 10), dt.date(2026, 6, 20)
    )
    ids = [r[0] for r in rows]
    truth = small_truth["cases"]
    window = truth[(truth.creation_utc >= "2026-06-01") & (truth.creation_utc < "2026-06-20")]
    assert len(ids) == len(set(ids)), "no duplicates after an overlapping run"
    assert sorted(ids) == sorted(window.id)
    assert len(_lake_rows(lake, "cases")) == len(window)


def test_crash_before_swap_keeps_the_old_partition(small_server, tmp_path):
    start, end = dt.date(2026, 6, 1), dt.date(2026, 6, 3)
    lake, before, _ = _extract_cases(small_server, tmp_path, start, end)
    old_files = {p: pq.read_table(p) for p in lake.files("cases")}

    def crash(staging: Path) -> None:
        assert list(staging.glob("part-*.parquet")), "written, not yet swapped"
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        _extract_cases(small_server, tmp_path, start, end, before_swap=crash)
    readable = {p: pq.read_table(p) for p in lake.files("cases")}
    assert readable.keys() == old_files.keys()
    assert all(readable[p].equals(t) for p, t in old_files.items())
    _, after, _ = _extract_cases(small_server, tmp_path, start, end)
    assert after == before
    assert unfinished(lake, "cases") == [], "the next run cleans up"


def test_drift_adds_columns_without_losing_rows(make_server, tmp_path):
    drift = dt.date(2026, 6, 10)
    start, end = dt.date(2026, 6, 1), dt.date(2026, 6, 20)
    with make_server() as plain:
        _, before, _ = _extract_cases(plain, tmp_path, start, drift)
    with make_server(drift_date=drift) as drifting:
        lake, _, _ = _extract_cases(drifting, tmp_path, drift, end)
        with Warehouse(tmp_path / "w.duckdb") as warehouse:
            columns = warehouse.columns("cases")
            old = warehouse.query("SELECT count(*) FROM bizagi.cases WHERE _partition < ?",
                                  [drift.isoformat()])[0][0]  # fmt: skip
            new = warehouse.query("SELECT count(*), count(priority) FROM bizagi.cases "
                                  "WHERE _partition >= ?", [drift.isoformat()])[0]  # fmt: skip
            risk = warehouse.query("SELECT count(*) FROM bizagi.case_parameters "
                                   "WHERE xpath = 'RiskScore'")[0][0]  # fmt: skip
    assert "priority" in columns
    assert old == len(before) > 0, "earlier rows survive the new column"
    assert new[0] == new[1] > 0, "every drifted case has its priority"
    assert risk > 0
    lake_columns = pq.read_schema(lake.files("cases", "day", "2026-06-15")[0]).names
    assert "priority" in lake_columns


def test_entity_streams_are_found_by_name(small_server):
    with BizagiClient(_settings(small_server)) as client:
        names = [s.name for s in resolve_streams(client, Catalog.load(), ["entity_values"])]
        single = resolve_streams(client, Catalog.load(), ["entity_currency"])
        with pytest.raises(Exception, match="unknown stream 'entity_nope'"):
            resolve_streams(client, Catalog.load(), ["entity_nope"])
    assert names == ["entity_country", "entity_currency", "entity_department", "entity_product"]
    assert [s.name for s in single] == ["entity_currency"]


def test_a_snapshot_whose_second_table_cannot_open_leaves_nothing_behind(
    small_server, tmp_path, monkeypatch
):
    """inbox and inbox_workitems open together: when the second fails (a full disk, say), the
    first one's staging folder and lock go too, so the next write finds nothing to sweep."""
    from bizagi_etl.connector.errors import StorageError

    lake = Lake(tmp_path / "lake")
    real = Lake.open_partition

    def second_fails(self, table, *args, **kwargs):
        if table == "inbox_workitems":
            raise StorageError("no room for inbox_workitems")
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(Lake, "open_partition", second_fails)
    with BizagiClient(settings_for(small_server)) as client, pytest.raises(StorageError):
        extract_stream(client, Catalog.load().get("inbox"), lake)
    assert unfinished(lake, "inbox") == []
    monkeypatch.setattr(Lake, "open_partition", real)
    with BizagiClient(settings_for(small_server)) as client:
        result = extract_stream(client, Catalog.load().get("inbox"), lake)
    assert {p.table for p in result.partitions} == {"inbox", "inbox_workitems"}
