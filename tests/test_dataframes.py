"""pandas DataFrames where users touch the data: from the API's pages and from the lake.

Against the in-process emulator and its ground truth: every column Arrow-backed, decimals exact
(``Decimal`` built from the JSON text the emulator serves), timestamps UTC, ``""`` not null,
the rows of a window of days and of a snapshot equal to the truth, frames sharing the Arrow
buffers they wrap. The README's two examples run here verbatim: a notebook without Dagster (in
a fresh interpreter, which must not load Dagster) and a downstream Dagster asset.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import runpy
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SMALL, settings_for

import bizagi_etl.pipeline.dataframes as dataframes
from bizagi_etl.connector import BizagiClient, SchemaError
from bizagi_etl.emulator import EmulatorServer
from bizagi_etl.pipeline import (
    Catalog,
    Lake,
    Stream,
    extract_stream,
    page_frames,
    partition_frames,
    read_frame,
    resolve_streams,
    to_frame,
)
from dagster_project.defs.resources import LakehouseResource

ROOT = Path(__file__).resolve().parent.parent
START, END = dt.date(2025, 3, 1), dt.date(2025, 4, 1)  # the window of days the tests read
DAY = "2025-03-04"
UTC_US = pd.ArrowDtype(pa.timestamp("us", tz="UTC"))
ENTITIES = ("entity_department", "entity_currency")  # Money and Decimal columns, small

# The README's examples, verbatim (test_the_readme_shows_these_examples keeps them in step).
NOTEBOOK = """\
import datetime as dt
from pathlib import Path

import pandas as pd

from bizagi_etl.connector import BizagiClient, BizagiSettings
from bizagi_etl.pipeline import Lake, page_frames, partition_frames, read_frame

# Straight from the API, nothing written: one DataFrame per page, typed like the lake.
with BizagiClient(BizagiSettings.from_env()) as client:
    week = page_frames(client, "cases", start=dt.date(2025, 3, 1), end=dt.date(2025, 3, 8))
    cases = pd.concat(week, ignore_index=True)
print(cases.dtypes)  # id int64[pyarrow], creation_date timestamp[us, tz=UTC][pyarrow], ...

# From the lake an extraction filled.
lake = Lake(Path("bizagi-data/lake"))
day = read_frame(lake, "cases", "2025-03-04")  # one day partition
departments = read_frame(lake, "entity_department", "latest")  # the newest snapshot
print(departments[["code", "budget"]].head())  # budget decimal128(19, 4)[pyarrow]: exact
march = partition_frames(lake, "cases", start=dt.date(2025, 3, 1), end=dt.date(2025, 4, 1))
for when, frame in march:  # one partition in memory at a time
    print(when, len(frame), frame["closed"].sum())
"""

DAGSTER = """\
import dagster as dg

from bizagi_etl.pipeline import read_frame
from dagster_project.defs.resources import LakehouseResource
from dagster_project.translator import DAILY_PARTITIONS


@dg.asset(
    partitions_def=DAILY_PARTITIONS,  # the daily streams' days (BIZAGI_START_DATE, UTC)
    deps=[dg.AssetKey(["bizagi", "lake", "cases"])],  # the day the pipeline landed
)
def cases_per_process(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    cases = read_frame(lakehouse.lake(), "cases", context.partition_key)  # one UTC day
    per_process = cases.groupby("process_name").size()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(cases),
            "closed": int(cases["closed"].sum()),
            "per_process": {name: int(n) for name, n in per_process.items()},
        }
    )
"""


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(small_server: EmulatorServer) -> Iterator[BizagiClient]:
    """Small pages, so a window of days spans many of them."""
    with BizagiClient(settings_for(small_server, page_size=25)) as c:
        yield c


@pytest.fixture(scope="module")
def streams(client: BizagiClient) -> dict[str, Stream]:
    found = resolve_streams(client, Catalog.load(), ["cases", *ENTITIES])
    return {s.name: s for s in found}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, small_server: EmulatorServer) -> Lake:
    """A lake the pipeline filled: every day of cases, and the two entities' snapshots."""
    lake = Lake(tmp_path_factory.mktemp("frames") / "lake")
    with BizagiClient(settings_for(small_server)) as c:
        for stream in resolve_streams(c, Catalog.load(), ["cases", *ENTITIES]):
            extract_stream(c, stream, lake, start=SMALL.start, end=SMALL.end)
    return lake


def _api_cases(client: BizagiClient, table: str = "cases") -> pd.DataFrame:
    frames = list(page_frames(client, "cases", start=START, end=END, table=table))
    assert len(frames) > 3, "the window spans several pages"
    return pd.concat(frames, ignore_index=True)


def _lake_cases(lake: Lake, table: str = "cases") -> pd.DataFrame:
    days = list(partition_frames(lake, table, start=START, end=END))
    assert [d for d, _ in days] == [START + dt.timedelta(days=i) for i in range(31)]
    return pd.concat([f for _, f in days], ignore_index=True)


def _values(series: pd.Series) -> list[Any]:
    """What a user reads from the frame, NA as None."""
    return [None if v is pd.NA else v for v in series]


def _utc(text: object) -> pd.Timestamp | None:
    if not isinstance(text, str):
        return None
    return pd.Timestamp(dt.datetime.fromisoformat(text)).tz_convert("UTC")


def _truth_cases(small_truth: dict[str, pd.DataFrame]) -> pd.DataFrame:
    cases = small_truth["cases"]
    day = cases.creation_utc.dt.date
    return cases[(day >= START) & (day < END)].sort_values("id").reset_index(drop=True)


def _entity_truth(small_truth: dict[str, pd.DataFrame], stream: Stream) -> dict[str, dict]:
    """value id -> {column: value} from the JSON text the emulator served; numbers with a
    fraction as exact ``Decimal``s of that text, dates as UTC instants."""
    name = stream.path.split("(")[1].split(")")[0]
    long = small_truth["entity_values"]
    long = long[long.entity_id == name]
    column = {c.source: c for c in stream.columns}
    out: dict[str, dict] = {}
    for value_id, xpath, text in zip(long.value_id, long.xpath, long.value, strict=True):
        col = column[xpath]
        value = None if text is None or pd.isna(text) else json.loads(text, parse_float=Decimal)
        if value is not None and col.type == pa.timestamp("us", tz="UTC"):
            value = pd.Timestamp(value, tz="UTC")
        out.setdefault(value_id, {})[col.name] = value
    return out


# -- dtypes, decimals, timestamps, "" and null -------------------------------------------------


def test_every_column_is_arrow_backed(client, lake, streams):
    frames = {
        "api cases": _api_cases(client),
        "api case_parameters": _api_cases(client, "case_parameters"),
        "api department": pd.concat(page_frames(client, streams["entity_department"])),
        "lake day": read_frame(lake, "cases", DAY),
        "lake table": read_frame(lake, "case_parameters"),
        "lake latest": read_frame(lake, "entity_currency", "latest"),
    }
    for what, frame in frames.items():
        assert len(frame), what
        wrong = {c: str(t) for c, t in frame.dtypes.items() if not isinstance(t, pd.ArrowDtype)}
        assert wrong == {}, what


@pytest.mark.parametrize("entity", ENTITIES)
def test_decimals_are_exact_and_snapshots_equal_the_truth(client, lake, streams, small_truth,
                                                          entity):  # fmt: skip
    stream = streams[entity]
    truth = _entity_truth(small_truth, stream)
    decimals = {c.name: c.type for c in stream.columns if pa.types.is_decimal(c.type)}
    assert decimals, "Money (decimal(19,4)) or Decimal (decimal(38,12))"
    api = pd.concat(page_frames(client, stream), ignore_index=True)
    landed = read_frame(lake, entity, "latest")
    pd.testing.assert_frame_equal(  # the API's frame is the lake's, type for type
        api.sort_values("id", ignore_index=True), landed.sort_values("id", ignore_index=True)
    )
    for frame in (api, landed):
        assert sorted(frame.id) == sorted(truth)
        for column, type_ in decimals.items():
            assert frame[column].dtype == pd.ArrowDtype(type_), column
        for row in frame.to_dict("records"):
            expected = truth[row["id"]]
            for name, value in expected.items():
                got = None if row[name] is pd.NA else row[name]
                if name in decimals and got is not None:
                    assert isinstance(got, Decimal), (name, got)
                    assert got == Decimal(str(value)), (row["id"], name, got, value)
                else:
                    assert got == value, (row["id"], name, got, value)


def test_timestamps_are_utc_instants(client, lake, small_truth):
    truth = _truth_cases(small_truth)
    for frame in (_api_cases(client), _lake_cases(lake)):
        frame = frame.sort_values("id").reset_index(drop=True)
        for column in ("creation_date", "estimated_solution_date", "solution_date"):
            assert frame[column].dtype == UTC_US, column
        assert _values(frame.creation_date) == list(truth.creation_utc)
        assert _values(frame.solution_date) == [_utc(v) for v in truth.solutionDate]
        offsets = {dt.datetime.fromisoformat(t).utcoffset() for t in truth.creationDate}
        assert len(offsets) > 1, "the source writes several offsets; the frame holds UTC"
        assert all(str(v.tz) == "UTC" for v in frame.creation_date)


def test_empty_strings_and_nulls_stay_distinct(client, lake, small_truth):
    def expected(text: object) -> object:
        if text is None or pd.isna(text):
            return None
        value = json.loads(str(text))
        return value if value is None or isinstance(value, str) else "number or flag"

    truth = small_truth["case_parameters"].sort_values(["case_id", "position"])
    everything = read_frame(lake, "case_parameters").sort_values(["case_id", "position"])
    window = _api_cases(client, "case_parameters").sort_values(["case_id", "position"])
    in_window = truth[truth.case_id.isin(set(window.case_id))]
    for frame, rows in ((everything, truth), (window, in_window)):
        assert len(frame) == len(rows)
        for got, text in zip(_values(frame.value), rows.value, strict=True):
            want = expected(text)
            if want != "number or flag":
                assert got == want  # "" == "" and None is None: never one for the other
    assert (everything.value == "").sum() == (truth.value == '""').sum() > 0
    assert everything.value.isna().sum() == truth.value.map(
        lambda v: pd.isna(v) or v == "null"
    ).sum() > 0  # fmt: skip


# -- rows: a window of days and a snapshot ----------------------------------------------------


def test_a_window_of_days_equals_the_truth_from_the_api_and_from_the_lake(client, lake,
                                                                          small_truth):  # fmt: skip
    truth = _truth_cases(small_truth)
    api = _api_cases(client).sort_values("id").reset_index(drop=True)
    landed = _lake_cases(lake).sort_values("id").reset_index(drop=True)
    assert len(truth) > 50
    # the same conversion as the pipeline: the API's frames are the lake's, column for column
    pd.testing.assert_frame_equal(api, landed)
    assert list(api.columns[:9]) == [c.name for c in Catalog.load().get("cases").columns]
    assert _values(api.id) == list(truth.id)
    assert _values(api.case_number) == list(truth.caseNumber)
    assert _values(api.process_id) == list(truth.process_id)
    assert _values(api.process_entity_key) == list(truth.processEntityKey)
    assert _values(api.process_name) == list(truth.processName)
    assert _values(api.closed) == list(truth.closed)


def test_one_day_and_every_partition(lake, small_truth):
    cases = small_truth["cases"]
    day = read_frame(lake, "cases", dt.date.fromisoformat(DAY))
    assert sorted(day.id) == sorted(cases.id[cases.creation_utc.dt.date == dt.date(2025, 3, 4)])
    assert read_frame(lake, "cases", DAY).equals(day)  # a Dagster key or a date: the same
    everything = read_frame(lake, "cases")
    assert sorted(everything.id) == sorted(cases.id)
    a_quiet_day = next(
        d for d, f in partition_frames(lake, "cases", start=SMALL.start, end=SMALL.end)
        if f.empty
    )  # fmt: skip
    empty = read_frame(lake, "cases", a_quiet_day)
    assert empty.empty
    assert list(empty.columns) == list(everything.columns[:9])
    assert all(isinstance(t, pd.ArrowDtype) for t in empty.dtypes)


def test_a_window_with_no_rows_yields_one_typed_empty_frame(client):
    before = SMALL.start - dt.timedelta(days=30)
    frames = list(page_frames(client, "cases", start=before, end=SMALL.start))
    assert len(frames) == 1
    assert frames[0].empty
    assert frames[0].creation_date.dtype == UTC_US
    assert pd.concat(frames).empty


# -- zero copy -------------------------------------------------------------------------------


def _buffers(column: pa.ChunkedArray) -> list[list[int | None]]:
    return [[b.address if b else None for b in chunk.buffers()] for chunk in column.chunks]


def _shares(frame: pd.DataFrame, table: pa.Table) -> None:
    """Every column of the frame is the table's Arrow array: the same buffers, not copies."""
    assert list(frame.columns) == table.column_names
    for name in table.column_names:
        wrapped = frame[name].array.__arrow_array__()  # the ChunkedArray the dtype wraps
        assert _buffers(wrapped) == _buffers(table.column(name)), name


def test_frames_wrap_the_arrow_tables_without_copying(client, lake, monkeypatch):
    """The real functions, watched: the tables Parquet and ``to_table`` hand over are kept, so
    the frames can be compared with them buffer by buffer."""
    read: list[pa.Table] = []
    built: list[pa.Table] = []
    read_table, to_table = pq.read_table, dataframes.to_table

    def reading(*args: Any, **kwargs: Any) -> pa.Table:
        read.append(read_table(*args, **kwargs))
        return read[-1]

    def building(*args: Any, **kwargs: Any) -> pa.Table:
        built.append(to_table(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(pq, "read_table", reading)
    monkeypatch.setattr(dataframes, "to_table", building)
    day = read_frame(lake, "cases", DAY)
    assert len(read) == 1
    assert day.shape == (read[0].num_rows, read[0].num_columns)
    assert len(day) > 0
    _shares(day, read[0])

    pages = list(page_frames(client, "cases", start=START, end=END))
    assert len(pages) == len(built) > 3
    for frame, table in zip(pages, built, strict=True):
        _shares(frame, table)
    # and to_frame itself, on what Parquet gives
    table = pq.read_table(lake.files("entity_department")[0])
    _shares(to_frame(table), table)


# -- errors ----------------------------------------------------------------------------------


def test_what_does_not_exist_is_named(client, lake):
    root = re.escape(str(lake.root))
    named = rf"table 'kases' is not in the lake at {root}; tables there: case_parameters, cases,"
    with pytest.raises(SchemaError, match=named):
        read_frame(lake, "kases")
    span = r"no partition 2020-01-01 in the lake .*; it has 669 partitions, day=2025-01-01 \.\. "
    with pytest.raises(SchemaError, match=span + "day=2026-10-31"):
        read_frame(lake, "cases", "2020-01-01")
    with pytest.raises(ValueError, match=r"expected a day .* got 'yesterday'"):
        read_frame(lake, "cases", "yesterday")
    missing = r"2 days of 2024-12-30\.\.2025-01-03 \(end exclusive\) were never extracted: "
    with pytest.raises(SchemaError, match=missing + "2024-12-30, 2024-12-31; it has 669"):
        partition_frames(lake, "cases", start=dt.date(2024, 12, 30), end=dt.date(2025, 1, 3))
    tables = "stream 'cases' has no table 'parameters'; its tables: cases, case_parameters"
    with pytest.raises(SchemaError, match=tables):
        page_frames(client, "cases", start=START, end=END, table="parameters")
    with pytest.raises(ValueError, match="stream 'cases' is daily: give start < end"):
        page_frames(client, "cases")
    with pytest.raises(ValueError, match="is a snapshot: it takes no window"):
        page_frames(client, "entity_currency", start=START, end=END)
    with pytest.raises(SchemaError, match="stands for 4 streams; name one of them: entity_"):
        page_frames(client, "entity_values")
    with pytest.raises(SchemaError, match="unknown stream 'kases'"):
        page_frames(client, "kases")


# -- the README's examples -------------------------------------------------------------------


def test_the_notebook_example_runs_without_dagster(small_server, lake, tmp_path):
    (tmp_path / "bizagi-data").mkdir()
    (tmp_path / "bizagi-data" / "lake").symlink_to(lake.root)
    env = {
        **os.environ,
        "BIZAGI_BASE_URL": small_server.base_url,
        "BIZAGI_CLIENT_ID": small_server.client_id,
        "BIZAGI_CLIENT_SECRET": small_server.client_secret,
        "PYTHONPATH": str(ROOT),
    }
    probe = NOTEBOOK + "\nimport sys\nprint('dagster loaded:', 'dagster' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "timestamp[us, tz=UTC][pyarrow]" in out
    assert "2025-03-04 " in out
    assert "2025-03-31 " in out
    assert out.rstrip().endswith("dagster loaded: False")


def test_a_downstream_dagster_asset_reads_a_day_of_cases(lake, small_truth, tmp_path):
    example = tmp_path / "readme_dagster_example.py"
    example.write_text(DAGSTER, encoding="utf-8")
    asset = runpy.run_path(str(example))["cases_per_process"]
    result = dg.materialize(
        [asset],
        partition_key=DAY,
        resources={"lakehouse": LakehouseResource(lake_root=str(lake.root))},
    )
    assert result.success
    (materialization,) = result.asset_materializations_for_node("cases_per_process")
    assert materialization.partition == DAY
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    cases = small_truth["cases"]
    day = cases[cases.creation_utc.dt.date == dt.date.fromisoformat(DAY)]
    assert metadata["dagster/row_count"] == len(day) > 0
    assert metadata["closed"] == int(day.closed.sum())
    assert metadata["per_process"] == {
        str(k): int(v) for k, v in day.groupby("processName").size().items()
    }


def test_the_readme_shows_these_examples():
    """Once the section is in README.md, its code blocks are the examples run above."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## pandas DataFrames\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section is not None, "README.md has no '## pandas DataFrames' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    assert [textwrap.dedent(b) for b in blocks] == [NOTEBOOK, DAGSTER]
