"""Shared fixtures: emulators on loopback ports and a small OData client for tests.

The connector's own client arrives with its issue; until then tests speak HTTP with httpx
directly, which is also what keeps these tests honest about the wire format.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import duckdb
import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest
from services import S3, Postgres, moto_s3, postgres
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bizagi_etl.connector.settings import BizagiSettings
from bizagi_etl.emulator import EmulatorConfig, EmulatorServer
from bizagi_etl.emulator.app import Emulated
from bizagi_etl.emulator.server import AsgiServer
from bizagi_etl.emulator.truth import export_truth
from bizagi_etl.pipeline.lake import Lake

# A fixed end keeps every test's data identical whatever day the suite runs.
END = dt.date(2026, 11, 1)
SMALL = EmulatorConfig(cases=3_000, start=dt.date(2025, 1, 1), end=END, seed=7)
# A streams file of two: people, and bad_claims whose key names no attribute of Claims.
WRONG_KEY_STREAMS = """
[[streams]]
name = "people"
path = "odata/data/stakeholders"
key = "id"

[[streams]]
name = "bad_claims"
path = "odata/data/Claims"
key = "claim_id"
"""


def token_for(server: EmulatorServer) -> str:
    response = httpx.post(
        server.token_url,
        auth=(server.client_id, server.client_secret),
        data={"grant_type": "client_credentials", "scope": "api"},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def client_for(server: EmulatorServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {token_for(server)}"},
        timeout=30,
    )


def settings_for(server: EmulatorServer, **changes: Any) -> BizagiSettings:
    """Connector settings for an emulator: short backoffs, large pages unless told otherwise."""
    values = {
        "base_url": server.base_url,
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "page_size": 1000,
        "max_backoff": 0.2,
    }
    return BizagiSettings(**(values | changes))


def flat_400(response: httpx.Response, *words: str) -> str:
    """Bizagi's flat error body with status 400; the message names every word given."""
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "type", "status", "message"}, body
    assert body["code"] == "400"
    assert body["type"] == "ODataException"
    assert body["status"] == "BadRequest"
    assert isinstance(body["message"], str)
    assert body["message"].strip()
    assert "Traceback" not in body["message"]
    for word in words:
        assert word in body["message"], body["message"]
    return str(body["message"])


# -- tiny apps on loopback, for behaviours the emulator does not have -------------------------

TINY_CLIENT_ID = "etl-reader"
TINY_SECRET = "Xq7-never-print-me-Zt9"
TINY_TOKEN = "144eb4" + "0f" * 29  # 64 hex digits, like Bizagi's recent tokens


@dataclasses.dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@contextmanager
def tiny(
    answer: Callable[[Request], Response], token_delay: float = 0.0
) -> Iterator[tuple[AsgiServer, list[Seen]]]:
    """A small app: Bizagi's token endpoint (answering TINY_TOKEN) and ``answer`` for the rest."""
    seen: list[Seen] = []

    async def endpoint(request: Request) -> Response:
        seen.append(Seen(request.method, request.url.path, dict(request.headers)))
        if request.url.path == "/oauth2/server/token":
            await asyncio.sleep(token_delay)
            return JSONResponse({"access_token": TINY_TOKEN, "token_type": "bearer",
                                 "expires_in": 3600, "http_status_code": 200})  # fmt: skip
        return answer(request)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])
    with AsgiServer(app) as server:
        yield server, seen


def tiny_settings(server: AsgiServer, **changes: Any) -> BizagiSettings:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "client_id": TINY_CLIENT_ID,
        "client_secret": TINY_SECRET,
    }
    return BizagiSettings(**(values | changes))


def page_all(client: httpx.Client, url: str, params: dict[str, Any] | None = None) -> list[dict]:
    """Every row of a collection, following @odata.nextLink; fails on a loop."""
    rows: list[dict] = []
    seen: set[str] = set()
    response = client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        rows.extend(body["value"])
        link = body.get("@odata.nextLink")
        if not link:
            return rows
        assert link not in seen, f"next link repeated: {link}"
        seen.add(link)
        response = client.get(link)


@pytest.fixture(scope="session")
def small_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(SMALL) as server:
        yield server


@pytest.fixture(scope="session")
def small_client(small_server: EmulatorServer) -> Iterator[httpx.Client]:
    with client_for(small_server) as client:
        yield client


@pytest.fixture(scope="session")
def small_truth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """The small server's ground truth, one frame per exported file."""
    folder: Path = tmp_path_factory.mktemp("truth")
    export_truth(Emulated(SMALL).ds, folder)
    return {p.stem: pd.read_parquet(p) for p in folder.glob("*.parquet")}


@pytest.fixture(scope="session")
def processes(small_client: httpx.Client) -> list[dict]:
    return list(small_client.get("/odata/data/processes").json()["value"])


@pytest.fixture
def make_server() -> Callable[..., AbstractContextManager[EmulatorServer]]:
    """Start an emulator with some settings changed from SMALL."""

    @contextmanager
    def start(**changes: Any) -> Iterator[EmulatorServer]:
        with EmulatorServer(dataclasses.replace(SMALL, **changes)) as server:
            yield server

    return start


# -- the warehouse a Dagster test run wrote (w.duckdb in its folder) ---------------------------


def unfinished(lake: Lake, table: str) -> list[str]:
    """What a folder lake's staging holds for ``table``: versions being written, or left by a
    killed run (the versions writes replaced wait beside it, in ``Lake.retired_dir``)."""
    staging = lake.staging_dir(table)
    return sorted(p.name for p in staging.iterdir()) if staging.exists() else []


def query(folder: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(folder / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def execute(folder: Path, sql: str) -> None:
    con = duckdb.connect(str(folder / "w.duckdb"))
    try:
        con.execute(sql)
    finally:
        con.close()


# -- the truth of a moving world, and what landed of it -----------------------------------------

CaseState = tuple[dict[int, tuple[Any, ...]], set[tuple[Any, ...]]]


def truth_at(server: EmulatorServer, folder: Path, before: dt.datetime | None = None) -> CaseState:
    """Cases (id -> closed, solution instant) and parameters (case, xpath, value) at the
    emulator's clock; with ``before``, only the cases created before that instant."""
    export_truth(server.emulated.ds, folder, cases_only=True)
    cases = pq.read_table(folder / "cases.parquet").to_pylist()
    cases = [c for c in cases if before is None or c["creation_utc"] < before]
    ids = {c["id"] for c in cases}
    params = pq.read_table(folder / "case_parameters.parquet").to_pylist()
    by_id = {c["id"]: (c["closed"], _instant(c["solutionDate"])) for c in cases}
    return by_id, {(p["case_id"], p["xpath"], _value(p["value"])) for p in params
                   if p["case_id"] in ids}  # fmt: skip


def landed_cases(cases: list[tuple[Any, ...]], params: list[tuple[Any, ...]]) -> CaseState:
    """The same shape from warehouse rows: (id, closed, solution_date) and (case_id, xpath,
    value, value_type)."""
    by_id = {i: (closed, when) for i, closed, when in cases}
    return by_id, {(c, x, _landed_value(v, t)) for c, x, v, t in params}


def _instant(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def _value(json_text: str | None) -> object:
    return None if json_text is None else _hashable(json.loads(json_text))


def _landed_value(text: str | None, kind: str) -> object:
    if kind == "string":
        return text
    return None if text is None else _hashable(json.loads(text))


def _hashable(value: object) -> object:
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value


async def presented_credentials(request: Request) -> tuple[str, str, str]:
    """What a client sent a token endpoint: the form, the Authorization header, and the
    client secret from either (Basic credentials first, as RFC 6749 prefers)."""
    form = (await request.body()).decode()
    auth = request.headers.get("authorization", "")
    if auth.startswith("Basic "):
        secret = base64.b64decode(auth[6:]).decode().split(":", 1)[1]
    else:
        secret = parse_qs(form).get("client_secret", [""])[0]
    return form, auth, secret


# -- real servers for the scale-out backends, started once per session -------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Postgres]:
    with postgres() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3]:
    with moto_s3() as server:
        yield server


@pytest.fixture
def s3(s3_server: S3, monkeypatch: pytest.MonkeyPatch) -> S3:
    """moto's S3 with the standard variables set, as a user's environment would have them."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def s3_lake_uri(s3: S3) -> str:
    return f"s3://{s3.create_bucket('lake')}/lake"


@pytest.fixture
def ducklake(pg_server: Postgres, s3: S3) -> tuple[str, str]:
    """(BIZAGI_WAREHOUSE, BIZAGI_WAREHOUSE_DATA) of a new DuckLake: catalog in PostgreSQL,
    data files on S3."""
    catalog = pg_server.dsn(pg_server.create_database("lake"))
    return f"ducklake:postgres:{catalog}", f"s3://{s3.create_bucket('warehouse')}/data/"
