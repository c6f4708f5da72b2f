"""Real servers the scale-out tests start themselves on 127.0.0.1, and stop.

- PostgreSQL 15 from the machine image (``initdb``/``pg_ctl`` on the PATH). It refuses to run as
  root, so as root it runs as the ``postgres`` user, in a temporary folder of its own, on a free
  port, with its socket in that folder and trust authentication for loopback only.
- S3: moto's standalone server (``python -m moto.server``), a bucket per test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
S3_KEYS = {
    "AWS_ACCESS_KEY_ID": "moto-key",
    "AWS_SECRET_ACCESS_KEY": "moto-secret",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Postgres:
    port: int
    folder: Path

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string (what DuckLake's ``ducklake:postgres:`` takes)."""
        return f"dbname={database} host={HOST} port={self.port} user=postgres"

    def url(self, database: str) -> str:
        """A SQLAlchemy URL with psycopg2 (what dagster-postgres takes)."""
        return f"postgresql+psycopg2://postgres@{HOST}:{self.port}/{database}"

    def create_database(self, prefix: str = "db") -> str:
        import psycopg2

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        con = psycopg2.connect(self.dsn())
        try:
            con.autocommit = True
            with con.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return name


def _postgres_tool(name: str) -> str:
    """A PostgreSQL server program: on the PATH, or where Debian's packages put it."""
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))[::-1]), None
    )
    if found is None:
        raise RuntimeError(
            f"{name} is not on the PATH nor in /usr/lib/postgresql/*/bin: these tests need "
            f"PostgreSQL 15's server (.ci/run installs Debian's postgresql package)"
        )
    return found


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    initdb, pg_ctl = _postgres_tool("initdb"), _postgres_tool("pg_ctl")
    folder = Path(tempfile.mkdtemp(prefix="bizagi-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    folder.chmod(0o700)
    port = free_port()
    options = (
        f"-p {port} -k {folder} -c listen_addresses={HOST} -c fsync=off "
        f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    init = [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]
    start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]
    try:
        for command in (init, start):
            subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=120)
        yield Postgres(port, folder)
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class S3:
    endpoint: str  # http://127.0.0.1:port

    @property
    def env(self) -> dict[str, str]:
        """The standard variables a client of this server reads."""
        return {**S3_KEYS, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self) -> Any:
        """A boto3 client of this server, for what the tests set up or look at."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=S3_KEYS["AWS_REGION"],
                            aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip

    def create_bucket(self, prefix: str = "bucket") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        found: list[str] = []
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                        Prefix=prefix)  # fmt: skip
        for page in pages:
            found.extend(o["Key"] for o in page.get("Contents", []))
        return sorted(found)


@contextlib.contextmanager
def moto_s3() -> Iterator[S3]:
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below, after the server
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    endpoint = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"moto did not start: {log.read()[-2000:]!r}") from None
                time.sleep(0.1)
        yield S3(endpoint)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
