"""Scale-out side by side: months of cases landed by `bizagi-etl extract` into

- a folder and a DuckDB file, one process (the embedded default);
- a lake on S3 and a DuckLake (catalog in PostgreSQL, data on S3), one process;
- the same, one process per month, all at once (what a multi-run Dagster backfill does).

PostgreSQL 15 and moto's S3 server are started here as the tests start them
(tests/services.py), on 127.0.0.1; the emulator serves with the given latency. Each round runs
every contender on fresh targets, in turn; the medians and ratios come from the same rounds.

    .venv/bin/python benchmarks/scale_bench.py --cases 100000 --months 4 --latency 100
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from services import Postgres, moto_s3, postgres

from bizagi_etl.emulator import EmulatorConfig, EmulatorServer
from bizagi_etl.pipeline import Warehouse

START, END = dt.date(2024, 1, 1), dt.date(2026, 11, 1)
CLI = [sys.executable, "-m", "bizagi_etl.cli", "extract", "cases"]


def months(first: dt.date, count: int) -> list[tuple[str, str]]:
    out, day = [], first
    for _ in range(count):
        following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        out.append((day.isoformat(), following.isoformat()))
        day = following
    return out


def land(env: dict[str, str], windows: list[tuple[str, str]]) -> float:
    """Seconds for the windows' processes, started together, to finish."""
    began = time.perf_counter()
    running = [subprocess.Popen([*CLI, "--start", a, "--end", b], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for a, b in windows]  # fmt: skip
    for process in running:
        _, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"extract failed: {err.decode()[-2000:]}")
    return time.perf_counter() - began


def count(warehouse: str, data: str | None) -> int:
    with Warehouse(warehouse, data=data) as w:
        return int(w.query("SELECT count(*) FROM bizagi.cases")[0][0])  # type: ignore[arg-type]


def round_of(base: dict[str, str], pg: Postgres, s3, windows, folder: Path) -> dict[str, float]:
    whole = [(windows[0][0], windows[-1][1])]
    out = {}
    local = folder / f"local-{time.monotonic_ns()}"
    env = base | {"BIZAGI_LAKE": str(local / "lake"), "BIZAGI_WAREHOUSE": str(local / "w.duckdb")}
    out["folder + DuckDB file, 1 process"] = land(env, whole)
    rows = count(env["BIZAGI_WAREHOUSE"], None)
    for label, plan in (("S3 + DuckLake, 1 process", whole),
                        (f"S3 + DuckLake, {len(windows)} processes", windows)):  # fmt: skip
        catalog = f"ducklake:postgres:{pg.dsn(pg.create_database('bench'))}"
        bucket = s3.create_bucket("bench")
        env = base | s3.env | {"BIZAGI_LAKE": f"s3://{bucket}/lake", "BIZAGI_WAREHOUSE": catalog,
                               "BIZAGI_WAREHOUSE_DATA": f"s3://{bucket}/data/"}  # fmt: skip
        out[label] = land(env, plan)
        landed = count(catalog, env["BIZAGI_WAREHOUSE_DATA"])
        if landed != rows:
            raise SystemExit(f"{label}: {landed} cases landed, the DuckDB file has {rows}")
    out["rows"] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=4)
    parser.add_argument("--latency", type=int, default=100, help="ms per emulator request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default="scale.md")
    args = parser.parse_args()
    windows = months(dt.date(2025, 3, 1), args.months)
    config = EmulatorConfig(cases=args.cases, start=START, end=END, latency_ms=args.latency)
    folder = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    with postgres() as pg, moto_s3() as s3, EmulatorServer(config) as server:
        os.environ.update(s3.env)  # this process counts rows in the DuckLake too
        base = {k: v for k, v in os.environ.items() if not k.startswith("BIZAGI_")} | {
            "BIZAGI_BASE_URL": server.base_url, "BIZAGI_CLIENT_ID": server.client_id,
            "BIZAGI_CLIENT_SECRET": server.client_secret,
        }  # fmt: skip
        rounds = [round_of(base, pg, s3, windows, folder) for _ in range(args.rounds)]
    rows = int(rounds[0]["rows"])
    labels = [k for k in rounds[0] if k != "rows"]
    medians = {k: statistics.median(r[k] for r in rounds) for k in labels}
    first = medians[labels[0]]
    lines = [
        f"# Scale-out: {args.months} months of cases ({rows:,} rows), "
        f"{args.cases:,}-case emulator at {args.latency} ms, median of {args.rounds}",
        "",
        "| contender | s | rows/s | x folder + DuckDB file |",
        "|---|---|---|---|",
        *(f"| {k} | {v:.2f} | {rows / v:,.0f} | {first / v:.2f} |" for k, v in medians.items()),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).parent / "results" / args.output
    out.write_text(text)


if __name__ == "__main__":
    main()
