"""How large a page to ask for: the connector's requests and seconds by page size, side by side.

Starts `bizagi-etl emulator` in its own process (page cap 5,000), then pages every case of
every process with `iter_rows` at each page size, at 0 ms and 100 ms of server latency, median
of three runs. This is what AUTO_PAGE_SIZE in bizagi_etl/connector/paging.py was chosen from.

    .venv/bin/python benchmarks/page_size_bench.py --cases 50000
"""

from __future__ import annotations

import argparse
import statistics
import time

from pipeline_bench import CLIENT, _emulator

from bizagi_etl.connector import BizagiClient, BizagiSettings, QueryStats, iter_rows

SIZES = (100, 1_000, 5_000)


def page_all(base: str, page_size: int) -> tuple[int, int, float]:
    """(rows, requests, seconds) for every case of every process, sequentially."""
    client_id, secret = CLIENT
    settings = BizagiSettings(base_url=base, client_id=client_id, client_secret=secret,
                              page_size=page_size)  # fmt: skip
    rows = requests = 0
    began = time.perf_counter()
    with BizagiClient(settings) as client:
        for process in iter_rows(client, "odata/data/processes"):
            stats = QueryStats(path=process["id"])
            path = f"odata/data/processes({process['id']})/cases"
            rows += sum(1 for _ in iter_rows(client, path, stats=stats))
            requests += stats.requests
    return rows, requests, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--latency", default="0,100", help="server latencies in ms")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| latency ms | page size | rows | requests | median s | rows/s | x 100-row pages |")
    print("|---|---|---|---|---|---|---|")
    for latency in (int(x) for x in args.latency.split(",")):
        process, base = _emulator(args.cases, latency, page_cap=5_000)
        try:
            baseline = None
            for size in SIZES:
                runs = [page_all(base, size) for _ in range(args.repeat)]
                rows, requests = runs[0][0], runs[0][1]
                seconds = statistics.median(r[2] for r in runs)
                baseline = baseline or seconds
                line = f"| {latency} | {size:,} | {rows:,} | {requests:,} | {seconds:.2f} | "
                print(f"{line}{rows / seconds:,.0f} | {baseline / seconds:.2f} |", flush=True)
        finally:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
