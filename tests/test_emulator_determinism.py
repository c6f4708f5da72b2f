"""Same seed, same data: byte for byte, whatever the page size or the order of requests."""

from __future__ import annotations

import dataclasses

import numpy as np
from conftest import SMALL, client_for

from bizagi_etl.emulator import records as rec
from bizagi_etl.emulator.dataset import Dataset


def _sample(ds: Dataset) -> list[dict]:
    positions = np.array([0, 1, 7, 500, ds.case_count - 1])
    product = ds.entity_by_name["Product"]
    return [
        *rec.case_records(ds, "b", positions),
        *rec.entity_value_records(ds, "b", product, np.array([0, 99_999])),
        *(w for p in ds.open_positions()[:5].tolist() for w in ds.workitems(p)),
        *(rec.process_record(ds, "b", p, "metadata") for p in ds.processes),
    ]


def test_same_seed_same_records():
    assert _sample(Dataset(SMALL)) == _sample(Dataset(SMALL))


def test_another_seed_other_records():
    other = dataclasses.replace(SMALL, seed=SMALL.seed + 1)
    a, b = _sample(Dataset(SMALL)), _sample(Dataset(other))
    assert [r["id"] for r in a] != [r["id"] for r in b]


def test_a_case_does_not_depend_on_its_neighbours():
    ds = Dataset(SMALL)
    alone = rec.case_records(ds, "b", np.array([1234]))
    in_a_page = rec.case_records(ds, "b", np.arange(1200, 1300))
    assert alone[0] == in_a_page[34]


def test_history_respects_its_window_and_order():
    ds = Dataset(SMALL)
    assert ds.case_count == SMALL.cases
    assert np.all(np.diff(ds.created) >= 0), "ids grow with creation time"
    start = np.datetime64(SMALL.start).astype("datetime64[s]").astype(np.int64)
    assert ds.created.min() >= start
    assert ds.created.max() < ds.now
    assert 0 < (~ds.closed).sum() < ds.case_count * 0.3
    shares = np.bincount(ds.process, minlength=len(ds.processes)) / ds.case_count
    assert shares.min() > 0.005, "every process has cases"


def test_two_servers_with_one_seed_serve_the_same_bytes(make_server):
    bodies = []
    for _ in range(2):
        with make_server() as server, client_for(server) as client:
            pid = client.get("/odata/data/processes").json()["value"][5]["id"]
            paths = ["/odata/data/processes", f"/odata/data/processes({pid})/cases?$top=300",
                     "/odata/data/casesWithWorkitems?$top=50", "/odata/data/entities"]  # fmt: skip
            bodies.append([client.get(p).text.replace(server.base_url, "") for p in paths])
    assert bodies[0] == bodies[1]
