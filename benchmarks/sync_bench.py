"""A day of sync against a full re-extraction: requests, seconds, share of days re-read.

For each size it lands a history with the emulator's clock at the end of it, moves the clock
a day, and then, side by side on copies of the same lake: `sync_stream` (what changed) and
`extract_stream` over every day (what a re-extraction without sync costs). The emulator runs
in this process (its clock must move), with the given latency.

    .venv/bin/python benchmarks/sync_bench.py --cases 100000,1000000 --latency 0
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

from bizagi_etl.connector import BizagiClient, BizagiSettings
from bizagi_etl.emulator import EmulatorConfig, EmulatorServer
from bizagi_etl.pipeline import (
    MOVED,
    NEW,
    OPEN,
    Catalog,
    Lake,
    extract_stream,
    sync_stream,
    use_system_allocator,
)

START, END = dt.date(2024, 1, 1), dt.date(2026, 11, 1)


def run(cases: int, latency: int) -> dict[str, object]:
    config = EmulatorConfig(cases=cases, start=START, end=END, now=END, latency_ms=latency)
    stream = Catalog.load().get("cases")
    folder = Path(tempfile.mkdtemp())
    with EmulatorServer(config) as server:
        settings = BizagiSettings(base_url=server.base_url, client_id=server.client_id,
                                  client_secret=server.client_secret)  # fmt: skip
        with BizagiClient(settings) as client:
            sync_stream(client, stream, Lake(folder / "lake"), None, start=START, now=server.now)
            shutil.copytree(folder / "lake", folder / "full")
            now = server.advance(dt.timedelta(days=1))
            began = time.perf_counter()
            report = sync_stream(client, stream, Lake(folder / "lake"), None, start=START, now=now)
            sync_seconds = time.perf_counter() - began
            began = time.perf_counter()
            full = extract_stream(client, stream, Lake(folder / "full"), start=START,
                                  end=now.date() + dt.timedelta(days=1))  # fmt: skip
            full_seconds = time.perf_counter() - began
    shutil.rmtree(folder)
    history = (now.date() - START).days + 1
    read = len(report.plan.days(NEW)) + len(report.plan.days(MOVED))
    rewritten = sum(1 for r in report.results for p in r.partitions if p.table == "cases")
    return {
        "cases": cases, "latency": latency, "days": history, "read": read,
        "open": len(report.plan.days(OPEN)), "rewritten": rewritten,
        "share": read / history, "sync_requests": report.requests,
        "count_requests": report.plan.count_requests, "sync_s": sync_seconds,
        "full_requests": full.requests, "full_s": full_seconds,
        "added": report.added, "changed": report.changed, "deleted": report.deleted,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="100000")
    parser.add_argument("--latency", type=int, default=0)
    args = parser.parse_args()
    use_system_allocator()
    print("| cases | days | days re-read (share) | open days refreshed / rewritten "
          "| sync requests (counts) | sync s | full requests | full s "
          "| added / changed / deleted |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for cases in (int(c) for c in args.cases.split(",")):
        r = run(cases, args.latency)
        print(f"| {r['cases']:,} | {r['days']:,} | {r['read']:,} ({r['share']:.1%}) | "
              f"{r['open']:,} / {r['rewritten']:,} | "
              f"{r['sync_requests']:,} ({r['count_requests']:,}) | {r['sync_s']:.1f} | "
              f"{r['full_requests']:,} | {r['full_s']:.1f} | "
              f"{r['added']:,} / {r['changed']:,} / {r['deleted']:,} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
