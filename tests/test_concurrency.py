"""Concurrent extraction: the same files as sequential, and every row through a bad day."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pyarrow.parquet as pq
from conftest import settings_for

from bizagi_etl.connector.client import BizagiClient
from bizagi_etl.connector.settings import BizagiSettings
from bizagi_etl.pipeline.extract import extract_stream, ordered_map
from bizagi_etl.pipeline.lake import Lake
from bizagi_etl.pipeline.streams import Catalog

AT = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
START, END = dt.date(2025, 3, 1), dt.date(2025, 6, 1)


def _settings(server, **changes) -> BizagiSettings:
    return settings_for(server, **({"page_size": 50} | changes))


def _extract(server, root, workers, end=END, chunk_days=None, **changes):
    with BizagiClient(_settings(server, **changes)) as client:
        stream = Catalog.load().get("cases")
        return extract_stream(client, stream, Lake(root), start=START, end=end, extracted_at=AT,
                              workers=workers, chunk_days=chunk_days)  # fmt: skip


def _files(root) -> dict[str, object]:
    lake = Lake(root)
    return {
        str(p.relative_to(lake.root)): pq.read_table(p)
        for table in ("cases", "case_parameters")
        for p in lake.files(table)
    }


def test_concurrent_extraction_writes_the_same_files_in_the_same_order(small_server, tmp_path):
    sequential = _extract(small_server, tmp_path / "seq", workers=1)
    concurrent = _extract(small_server, tmp_path / "par", workers=8)
    seq_files, par_files = _files(tmp_path / "seq"), _files(tmp_path / "par")
    assert seq_files.keys() == par_files.keys()
    assert len(seq_files) == 2 * (END - START).days
    for name, table in seq_files.items():
        assert table.equals(par_files[name]), name  # same rows, same order, same schema
    assert sequential.rows() == concurrent.rows() > 0
    assert [q.path for q in sequential.queries] == [q.path for q in concurrent.queries]


def test_a_fault_heavy_concurrent_run_lands_the_truth(make_server, tmp_path, small_truth):
    faults = {"fault_rate": 0.2, "drop_rate": 0.1, "truncate_rate": 0.1, "retry_after": 0,
              "latency_ms": 5}  # fmt: skip
    with make_server(**faults) as server:
        result = _extract(server, tmp_path, workers=6, end=dt.date(2025, 4, 15))
        injected = dict(server.injected)
    cases = Lake(tmp_path).read("cases").to_pandas()
    truth = small_truth["cases"]
    window = truth[(truth.creation_utc >= "2025-03-01") & (truth.creation_utc < "2025-04-15")]
    assert sorted(cases.id) == sorted(window.id)
    assert result.retries > 0
    assert injected.get("drop", 0) > 0
    assert injected.get("truncate", 0) > 0


def test_ordered_map_keeps_order_and_bounds_what_is_in_flight():
    running, peak = 0, 0
    lock = threading.Lock()

    def work(item: int, delay: float) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(delay * (5 - item % 5))  # later items finish first
        with lock:
            running -= 1
        return item * item

    results = list(ordered_map(3, work, list(range(20)), 0.002))
    assert results == [(i, i * i) for i in range(20)]
    assert 1 < peak <= 3


def test_each_day_holds_exactly_its_rows_sorted_by_key(small_server, tmp_path, small_truth):
    """Chunks are split into days by one sort on (day, key): check every day against the truth."""
    _extract(small_server, tmp_path, workers=3, chunk_days=7)
    lake, truth = Lake(tmp_path), small_truth["cases"]
    day_of = dict(zip(truth.id, truth.creation_utc.dt.strftime("%Y-%m-%d"), strict=True))
    params = small_truth["case_parameters"]
    for column, day in lake.partitions("cases"):
        ids = pq.read_table(lake.files("cases", column, day)[0]).column("id").to_pylist()
        assert ids == sorted(i for i, d in day_of.items() if d == day), day
        kids = pq.read_table(lake.files("case_parameters", column, day)[0]).to_pandas()
        keys = list(zip(kids.case_id, kids.position, strict=True))
        expected = params[params.case_id.isin(ids)]
        assert keys == sorted(zip(expected.case_id, expected.position, strict=True)), day
