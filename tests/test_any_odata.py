"""Any OData v4 service, end to end: a user's streams file (a daily and a snapshot stream, no
columns table) over a business entity set lands the ground truth exactly, with the types the
service's $metadata declares, against the emulator in both flavours, under 5-second tokens
and 3 % of 429/503 answers."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bizagi_etl.cli import main
from bizagi_etl.emulator import EmulatorConfig, EmulatorServer
from bizagi_etl.emulator.app import Emulated
from bizagi_etl.emulator.truth import export_truth
from bizagi_etl.pipeline import safe_name

STREAMS = """
[[streams]]
name = "claims_daily"
path = "odata/data/Claims"
key = "id"
cursor = "lastModified"

[[streams]]
name = "claims"
path = "odata/data/Claims"
key = "id"
"""
DUCKDB_TYPES = {
    "id": "BIGINT", "claim_number": "VARCHAR", "status": "VARCHAR",
    "last_modified": "TIMESTAMP WITH TIME ZONE", "submitted_at": "TIMESTAMP WITH TIME ZONE",
    "policy_id": "VARCHAR", "policy_holder": "VARCHAR", "amount": "DECIMAL(18,4)",
    "reserve_ratio": "DECIMAL(5,5)", "score": "DOUBLE", "priority_code": "SMALLINT",
    "item_count": "INTEGER", "external_ref": "BIGINT", "approved": "BOOLEAN",
    "incident_date": "DATE", "notes": "VARCHAR",
}  # fmt: skip


def config(flavor: str) -> EmulatorConfig:
    return EmulatorConfig(cases=50, claims=2_000, flavor=flavor, token_ttl=5, fault_rate=0.03,
                          retry_after=0, latency_ms=150, end=dt.date(2026, 11, 28))  # fmt: skip


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("claims_truth")
    export_truth(Emulated(config("bizagi")).ds, folder)
    table = pq.read_table(folder / "claims.parquet")
    rows = table.to_pylist()
    return [{safe_name(k): v for k, v in row.items()} for row in rows]


@pytest.mark.parametrize("flavor", ["bizagi", "standard"])
def test_a_streams_file_over_any_odata_service_lands_the_truth(flavor, truth, tmp_path):
    streams = tmp_path / "streams.toml"
    streams.write_text(STREAMS, encoding="utf-8")
    with EmulatorServer(config(flavor)) as server:
        env = {
            "BIZAGI_BASE_URL": server.base_url, "BIZAGI_CLIENT_ID": server.client_id,
            "BIZAGI_CLIENT_SECRET": server.client_secret, "BIZAGI_STREAMS_FILE": str(streams),
            "BIZAGI_LAKE": str(tmp_path / "lake"), "BIZAGI_WAREHOUSE": str(tmp_path / "w.duckdb"),
            "BIZAGI_MAX_BACKOFF": "0.2", "BIZAGI_MAX_CONCURRENCY": "1",  # outlive a token
            "BIZAGI_FILTER_ENCODING": "standard" if flavor == "standard" else "bizagi",
        }  # fmt: skip
        result = CliRunner().invoke(main, ["extract", "claims_daily", "claims",
                                           "--start", "2024-01-01", "--end", "2026-11-29"],
                                    env=env)  # fmt: skip
        issued = server.emulated.tokens.issued
        faults = server.injected
    assert result.exit_code == 0, result.output
    assert issued >= 2, "the run outlived a 5-second token"
    assert sum(faults.values()) > 0, "throttling was injected"
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        for table in ("claims", "claims_daily"):
            types = dict(con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'bizagi' AND table_name = ? ORDER BY ordinal_position",
                [table]).fetchall())  # fmt: skip
            assert list(types)[: len(DUCKDB_TYPES)] == list(DUCKDB_TYPES), table  # their order
            assert {k: types[k] for k in DUCKDB_TYPES} == DUCKDB_TYPES, table
            cursor = con.execute(
                f"SELECT {', '.join(DUCKDB_TYPES)} FROM bizagi.{table} ORDER BY id"
            )
            got = [dict(zip(DUCKDB_TYPES, row, strict=True)) for row in cursor.fetchall()]
            assert got == truth, table
    finally:
        con.close()
