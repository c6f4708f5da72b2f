"""Emulator start-up and page latency at scale: `make bench` (not part of `make test`).

Starts `bizagi-etl emulator` in its own process with a million cases, then measures:
- start-up: from launch until a token is issued, and the server's resident memory then;
- 1,000-row pages of `processes(id)/cases` (with parameters), round trip seen by a client
  that only reads the bytes, at random offsets, with and without a one-day `$filter`;
- resident memory after the pages.
Writes a Markdown table to stdout and to benchmarks/results/emulator.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

RESULTS = Path(__file__).parent / "results"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(cases: int, port: int) -> tuple[subprocess.Popen[bytes], float, str]:
    command = [sys.executable, "-m", "bizagi_etl.cli", "emulator", "--port", str(port),
               "--cases", str(cases), "--end", "2026-11-01"]  # fmt: skip
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            response = httpx.post(
                f"{base}/oauth2/server/token",
                auth=("bizagi-etl-demo", "emulator-secret-change-me"),
                data={"grant_type": "client_credentials", "scope": "api"},
            )
            return process, time.perf_counter() - began, response.json()["access_token"]
        except httpx.ConnectError:
            if process.poll() is not None:
                raise SystemExit("the emulator exited during start-up") from None
            time.sleep(0.02)


def _timed(client: httpx.Client, url: str, params: dict[str, object]) -> tuple[float, int]:
    began = time.perf_counter()
    response = client.get(url, params=params)
    elapsed = time.perf_counter() - began
    response.raise_for_status()
    return elapsed * 1000, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=60)
    args = parser.parse_args()
    port = _free_port()
    process, startup, token = _start(args.cases, port)
    try:
        rss_start = psutil.Process(process.pid).memory_info().rss / 2**20
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        )
        processes = client.get("/odata/data/processes").json()["value"]
        totals = {
            p["id"]: client.get(
                f"/odata/data/processes({p['id']})/cases", params={"$top": 0}
            ).json()["@odata.totalCount"]
            for p in processes
        }
        rng = random.Random(1)
        plain, sizes, rows, filtered = [], [], [], []
        for _ in range(args.pages):
            process_id = rng.choice(processes)["id"]
            url = f"/odata/data/processes({process_id})/cases"
            skip = rng.randrange(0, max(1, totals[process_id] - 1000))
            ms, size = _timed(client, url, {"$top": 1000, "$skip": skip})
            plain.append(ms)
            sizes.append(size)
            rows.append(min(1000, totals[process_id] - skip))
            day = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            window = f"creationDate ge {day}T00:00:00Z and creationDate lt {day}T23:59:59Z"
            filtered.append(_timed(client, url, {"$top": 1000, "$filter": window})[0])
        rss_end = psutil.Process(process.pid).memory_info().rss / 2**20
    finally:
        process.terminate()
        process.wait(timeout=30)
    rows = [
        ("cases", f"{args.cases:,}", ""),
        ("start-up until a token is issued", f"{startup:.2f} s", "< 30 s"),
        ("resident memory after start-up", f"{rss_start:.0f} MiB", "< 1 GiB"),
        ("1,000-row page, median round trip", f"{statistics.median(plain):.1f} ms", "< 30 ms"),
        ("1,000-row page, 90th percentile", f"{_p90(plain):.1f} ms", ""),
        ("rows per page, smallest", f"{min(rows):,}", ""),
        ("page bytes, median", f"{statistics.median(sizes) / 1024:.0f} KiB", ""),
        ("one-day $filter page (first ask), median", f"{statistics.median(filtered):.1f} ms", ""),
        ("resident memory after the pages", f"{rss_end:.0f} MiB", "< 1 GiB"),
    ]
    table = _markdown(rows)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "emulator.md").write_text(table + "\n")


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def _markdown(rows: list[tuple[str, str, str]]) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [f"Emulator benchmark ({machine})", "", "| measure | value | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
