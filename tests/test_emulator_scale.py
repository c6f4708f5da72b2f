"""A million cases: generated, filtered by day and paged like the smaller histories."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from conftest import END, client_for

from bizagi_etl.emulator import EmulatorConfig, EmulatorServer


@pytest.fixture(scope="module")
def million():
    with EmulatorServer(EmulatorConfig(cases=1_000_000, end=END)) as server:
        yield server


def test_a_day_of_a_million_case_history(million):
    ds = million.emulated.ds
    assert ds.case_count == 1_000_000
    process = ds.processes[0]
    day = dt.datetime(2025, 3, 4, tzinfo=dt.UTC)
    lo, hi = int(day.timestamp()), int((day + dt.timedelta(days=1)).timestamp())
    in_day = (ds.process == 0) & (ds.created >= lo) & (ds.created < hi)
    mine = np.flatnonzero(in_day & ds.exists)  # not the cases deleted before the clock
    assert np.count_nonzero(in_day & ~ds.exists) > 0, "some were deleted: they are not served"
    expected = sorted((mine + 1001).tolist())
    newest = int(ds.case_ids(ds.all_positions()[:1])[0])
    window = "creationDate ge 2025-03-04T00:00:00Z and creationDate lt 2025-03-05T00:00:00Z"
    with client_for(million) as client:
        body = client.get(
            f"/odata/data/processes({process.id})/cases", params={"$filter": window, "$top": 1000}
        ).json()
        last = client.get(f"/odata/data/cases({newest})/workitems")
    assert len(expected) > 50
    assert body["@odata.totalCount"] == len(expected)
    assert sorted(c["id"] for c in body["value"]) == expected
    assert last.status_code == 200
    assert newest > 1_000_999, "a million cases exist, and those deleted before the end besides"
