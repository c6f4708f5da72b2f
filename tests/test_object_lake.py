"""The lake on object storage (moto's S3 server): no rename, so versions and commit markers.

Readers see a partition's whole old version or whole new one; a killed writer leaves nothing a
reader takes and a rerun lands exactly; old versions are retired once no reader can need them.
What both lakes promise alike runs on both in tests/test_lake.py and tests/test_warehouse.py.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pytest

from bizagi_etl.connector import SettingsError
from bizagi_etl.connector.errors import StorageError
from bizagi_etl.pipeline import lake as lake_module
from bizagi_etl.pipeline.lake import Lake, open_lake
from bizagi_etl.pipeline.object_lake import ObjectPartitionWriter
from bizagi_etl.pipeline.settings import PipelineSettings
from bizagi_etl.pipeline.warehouse import Warehouse

AT = dt.datetime(2026, 11, 2, 3, 4, 5, tzinfo=dt.UTC)
SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


def _rows(n: int, name: str, start: int = 0) -> pa.Table:
    return pa.table({"id": list(range(start, start + n)), "name": [name] * n}, schema=SCHEMA)


def _write(lake, value: str, data: pa.Table, **kwargs):
    return lake.write_partition("things", "day", value, [data], SCHEMA, key=["id"],
                                extracted_at=AT, **kwargs)  # fmt: skip


def _bucket_and_prefix(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


def test_a_reader_sees_the_old_version_whole_until_the_new_one_is_committed(
    s3, s3_lake_uri, monkeypatch
):
    monkeypatch.setattr(lake_module, "ROWS_PER_PART", 1_000)  # several part files per version
    monkeypatch.setattr(lake_module, "STREAM_ROW_GROUP", 500)
    lake = open_lake(s3_lake_uri)
    _write(lake, "2025-01-02", _rows(2_500, "old"))
    writer = lake.open_partition("things", "day", "2025-01-02", SCHEMA, AT)
    for start in (0, 1_000, 2_000):  # three parts of the new version land in the bucket
        writer.write(_rows(1_000, "new", start))
    bucket, prefix = _bucket_and_prefix(s3_lake_uri)
    assert len([k for k in s3.keys(bucket, prefix) if k.endswith(".parquet")]) >= 4
    during = lake.read("things")
    assert during.num_rows == 2_500
    assert set(during.column("name").to_pylist()) == {"old"}
    writer.commit()
    after = lake.read("things")
    assert after.num_rows == 3_000
    assert set(after.column("name").to_pylist()) == {"new"}
    assert lake.rows("things") == 3_000


def test_a_writer_that_fails_leaves_the_old_version_and_no_files(s3, s3_lake_uri):
    lake = open_lake(s3_lake_uri)
    _write(lake, "2025-01-02", _rows(3, "old"))
    bucket, prefix = _bucket_and_prefix(s3_lake_uri)
    before = s3.keys(bucket, prefix)

    def crash(_staging):
        raise OSError("the network went away")

    with pytest.raises(OSError, match="network"):
        _write(lake, "2025-01-02", _rows(5, "new"), before_swap=crash)
    assert lake.read("things").column("name").to_pylist() == ["old"] * 3
    after = [k for k in s3.keys(bucket, prefix) if not k.endswith("/")]  # pyarrow marks folders
    assert after == before, "the failed version's files were removed"


_KILLED_WRITER = """
import datetime as dt, pathlib, sys, time
import pyarrow as pa
from bizagi_etl.pipeline.lake import Lake, open_lake
from bizagi_etl.pipeline.object_lake import ObjectPartitionWriter
lake = open_lake(sys.argv[1])
data = pa.table({"id": list(range(10)), "name": ["killed"] * 10})
def hang(_staging):
    pathlib.Path(sys.argv[2]).write_text("files written")
    time.sleep(600)
lake.write_partition("things", "day", "2025-01-02", [data], data.schema, key=["id"],
                     extracted_at=dt.datetime.now(dt.UTC), before_swap=hang)
"""


def test_a_writer_killed_before_its_commit_is_invisible_and_a_rerun_lands_exactly(
    s3, s3_lake_uri, tmp_path
):
    lake = open_lake(s3_lake_uri)
    _write(lake, "2025-01-02", _rows(3, "old"))
    flag = tmp_path / "flag"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_KILLED_WRITER), s3_lake_uri, str(flag)],
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert child.poll() is None, "the writer died before writing its files"
            assert time.monotonic() < deadline, "the writer never wrote its files"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    bucket, prefix = _bucket_and_prefix(s3_lake_uri)
    assert len([k for k in s3.keys(bucket, prefix) if k.endswith(".parquet")]) == 2
    assert lake.read("things").column("name").to_pylist() == ["old"] * 3, "killed: invisible"

    lake.retire_after = lake.orphan_after = dt.timedelta(0)  # as if hours had passed
    _write(lake, "2025-01-02", _rows(4, "rerun"))
    assert lake.read("things").column("name").to_pylist() == ["rerun"] * 4
    left = [k for k in s3.keys(bucket, f"{prefix}/things/") if not k.endswith("/")]
    assert len(left) == 2, f"one file and its commit marker, the killed one's gone: {left}"


def test_old_versions_stay_for_readers_then_are_retired(s3, s3_lake_uri):
    lake = open_lake(s3_lake_uri)
    first = _write(lake, "2025-01-02", _rows(3, "first"))
    second = _write(lake, "2025-01-02", _rows(2, "second"))
    assert lake.files("things") == list(second.files)
    # A reader that listed the first version a moment ago can still read it whole.
    assert lake.read_file(first.files[0]).num_rows == 3
    lake.retire_after = dt.timedelta(0)
    third = _write(lake, "2025-01-02", _rows(1, "third"))
    bucket, prefix = _bucket_and_prefix(s3_lake_uri)
    parquet = [k for k in s3.keys(bucket, prefix) if k.endswith(".parquet")]
    assert [f"s3://{bucket}/{k}" for k in parquet] == list(third.files)


def test_two_writers_of_one_partition_each_land_whole_and_the_later_commit_wins(s3_lake_uri):
    """As in a folder, where the later swap wins: the one that began first but committed last
    is the partition, and what its commit returned is what readers see."""
    lake = open_lake(s3_lake_uri)
    early = lake.open_partition("things", "day", "2025-01-02", SCHEMA, AT)
    late = lake.open_partition("things", "day", "2025-01-02", SCHEMA, AT)
    early.write(_rows(3, "early"))
    late.write(_rows(2, "late"))
    late.commit()
    committed_last = early.commit()  # within the same second: moto keeps seconds only
    assert lake.read("things").column("name").to_pylist() == ["early"] * 3
    assert lake.files("things") == list(committed_last.files)


def test_the_first_write_of_a_table_in_a_run_retires_what_earlier_runs_left(s3, s3_lake_uri):
    """Replaced versions and a dead writer's files, in partitions this run does not write,
    are gone once old enough by the store's clock."""
    lake = open_lake(s3_lake_uri)
    _write(lake, "2025-01-01", _rows(3, "replaced"))
    _write(lake, "2025-01-01", _rows(2, "current"))
    dead = lake.open_partition("things", "day", "2025-01-02", SCHEMA, AT)
    dead.write(_rows(5, "never committed"))
    dead._close_part()  # its file is in the bucket; then its process dies (no abort)
    bucket, prefix = _bucket_and_prefix(s3_lake_uri)
    assert len([k for k in s3.keys(bucket, prefix) if k.endswith(".parquet")]) == 3

    later = open_lake(s3_lake_uri)  # the next run
    later.retire_after = later.orphan_after = dt.timedelta(0)  # both old enough by now
    _write(later, "2025-01-03", _rows(1, "new day"))
    parquet = [k for k in s3.keys(bucket, prefix) if k.endswith(".parquet")]
    assert len(parquet) == 2, parquet
    assert later.read("things").column("name").to_pylist() == ["current"] * 2 + ["new day"]

    fresh = open_lake(s3_lake_uri)  # default ages: a version replaced a moment ago stays
    _write(fresh, "2025-01-03", _rows(1, "again"))
    assert len([k for k in s3.keys(bucket, prefix) if k.endswith(".parquet")]) == 3


def test_a_folder_lake_copied_to_s3_as_is_reads_as_committed(s3, s3_lake_uri, tmp_path):
    """part-NNNNN.parquet without a marker (aws s3 sync of a folder lake) is the partition
    until a version replaces it."""
    folder = Lake(tmp_path / "lake")
    written = _write(folder, "2025-01-02", _rows(4, "from the folder"))
    bucket, prefix = _bucket_and_prefix(s3_lake_uri)
    key = f"{prefix}/things/day=2025-01-02/part-00000.parquet"
    s3.client().upload_file(str(written.files[0]), bucket, key)
    lake = open_lake(s3_lake_uri)
    assert lake.partitions("things") == [("day", "2025-01-02")]
    assert lake.read("things").column("name").to_pylist() == ["from the folder"] * 4
    _write(lake, "2025-01-02", _rows(1, "replaced"))
    assert lake.read("things").column("name").to_pylist() == ["replaced"]


def test_a_duckdb_warehouse_loads_a_lake_on_s3(s3, s3_lake_uri, tmp_path):
    """The DuckDB file reads the lake's files on S3 with the standard credentials."""
    lake = open_lake(s3_lake_uri)
    for day, n in (("2025-01-01", 3), ("2025-01-02", 4)):
        _write(lake, day, _rows(n, day))
    _write(lake, "2025-01-02", _rows(2, "again"))  # a rerun: exactly one copy loads
    with Warehouse(tmp_path / "w.duckdb") as warehouse:
        parts = [(v, lake.files("things", c, v)) for c, v in lake.partitions("things")]
        assert warehouse.load_partitions("things", parts, AT) == 5
        assert warehouse.partition_counts("things") == {"2025-01-01": 3, "2025-01-02": 2}


def test_a_missing_bucket_and_an_unknown_scheme_are_named(s3):
    with pytest.raises(StorageError, match=r"bucket 'no-such-bucket' does not exist"):
        open_lake("s3://no-such-bucket/lake")
    with pytest.raises(SettingsError, match=r"BIZAGI_LAKE.*'nope://x/y'"):
        open_lake("nope://x/y")


def test_a_commit_that_fails_after_its_marker_leaves_the_previous_version(s3_lake_uri, monkeypatch):
    """The marker's PUT may land although the writer never hears back (a retried request, a
    cancelled run): the failed commit takes its marker back, and a marker without files is
    never the partition."""
    lake = open_lake(s3_lake_uri)
    _write(lake, "2025-01-02", _rows(3, "old"))

    def lost(self, marker):
        raise OSError("the connection dropped after the marker was sent")

    monkeypatch.setattr(ObjectPartitionWriter, "_win_a_tie", lost)
    with pytest.raises(OSError, match="dropped"):
        _write(lake, "2025-01-02", _rows(5, "new"))
    assert lake.read("things").column("name").to_pylist() == ["old"] * 3


def test_a_live_writer_whose_files_a_sweep_took_fails_its_commit_and_loses_nothing(
    s3_lake_uri, monkeypatch
):
    monkeypatch.setattr(lake_module, "ROWS_PER_PART", 1_000)
    lake = open_lake(s3_lake_uri)
    _write(lake, "2025-01-02", _rows(3, "old"))
    slow = lake.open_partition("things", "day", "2025-01-02", SCHEMA, AT)
    slow.write(_rows(1_500, "slow"))  # one part file in the bucket, idle from now on
    other = open_lake(s3_lake_uri)
    other.orphan_after = dt.timedelta(0)  # it takes the idle writer for a dead one
    _write(other, "2025-01-03", _rows(1, "other run"))
    with pytest.raises(
        StorageError, match=r"files of this version vanished before its commit \(1 of 1"
    ):
        slow.commit()
    assert lake.read("things").column("name").to_pylist() == ["old"] * 3 + ["other run"]


def test_leftovers_of_a_folder_lake_copied_along_are_not_partitions(s3, s3_lake_uri, tmp_path):
    folder = Lake(tmp_path / "lake")
    written = _write(folder, "2025-01-02", _rows(4, "kept"))
    client = s3.client()
    bucket, prefix = _bucket_and_prefix(s3_lake_uri)
    for key in ("things/day=2025-01-02/part-00000.parquet",
                "things/_trash/day=2025-01-02.1234/part-00000.parquet",
                "things/_staging/day=2025-01-03.abcd/part-00000.parquet"):  # fmt: skip
        client.upload_file(str(written.files[0]), bucket, f"{prefix}/{key}")
    lake = open_lake(s3_lake_uri)
    assert lake.partitions("things") == [("day", "2025-01-02")]
    assert lake.rows("things") == 4


@pytest.mark.parametrize("location", ["s3://key:secret-value@bucket/lake",
                                      "s3://bucket/lake?secret_key=secret-value"])  # fmt: skip
def test_credentials_in_the_lake_location_are_refused_unshown(location):
    """The location is shown in logs and Dagster's metadata: credentials come from the
    environment only, and the settings refuse it before a code location loads."""
    for attempt in (lambda: open_lake(location), lambda: PipelineSettings(lake=location)):
        with pytest.raises(SettingsError, match=r"BIZAGI_LAKE.*from the environment") as caught:
            attempt()
        assert "secret-value" not in str(caught.value)
