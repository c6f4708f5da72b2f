"""Pipeline benchmark, side by side in one run: `make bench` (not part of `make test`).

For each emulator setting (cases x latency) it starts `bizagi-etl emulator` in its own process,
then runs each contender in a fresh process of its own (so its peak RSS is its own):

- limit:       a bare httpx loop over the same pages the extract asks for, parsing JSON only;
- sequential:  `bizagi-etl extract cases`, lake and warehouse, one worker: the program as users
               run it, which loads in a fresh image of its process (bizagi_etl/handover.py);
- concurrent:  the same with 8 workers;
- one_process: the library in one process, `extract_stream` then `load_result`, one worker;
               it also reports its RSS once extracted and its load's rows/s;
- dlt:         dlt's REST API source into DuckDB (`pip install -e '.[bench]'`), if installed.

It prints a Markdown table (rows/s, ratio to the limit, ratio to dlt, peak RSS) and writes it to
benchmarks/results/pipeline.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

RESULTS = Path(__file__).parent / "results"
END = "2026-11-01"
START = "2024-01-01"
CLIENT = ("bizagi-etl-demo", "emulator-secret-change-me")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _emulator(
    cases: int, latency: int, page_cap: int = 1000
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "bizagi_etl.cli", "emulator", "--port", str(port),
               "--cases", str(cases), "--start", START, "--end", END,
               "--latency-ms", str(latency), "--page-cap", str(page_cap)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.post(f"{base}/oauth2/server/token", auth=CLIENT,
                       data={"grant_type": "client_credentials", "scope": "api"})  # fmt: skip
            return process, base
        except httpx.ConnectError:
            time.sleep(0.1)
    raise SystemExit("the emulator did not start")


def _measure(contender: str, base: str, workdir: Path) -> dict[str, float]:
    """Run one contender in its own process; its rows, seconds and peak RSS."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--run", contender, "--base", base, "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    output = process.stdout.read() if process.stdout else b""
    if status != 0:
        raise SystemExit(f"{contender} failed (status {status})")
    result = json.loads(output.decode().strip().splitlines()[-1])
    # Linux reports KiB. A program contender runs as a child of this one: its peak is the
    # children's, which wait4 does not give for a grandchild, so the runner reports it.
    result["rss_mb"] = result.pop("child_rss_mb", usage.ru_maxrss / 1024)
    return result


# -- the contenders, each run in a process of its own -----------------------------------------


def run_limit(base: str, workdir: Path) -> dict[str, float]:
    """The same requests as the extract (chunks of days x process), JSON parsing only."""
    import datetime as dt

    import orjson

    from bizagi_etl.connector import BizagiClient, BizagiSettings, Secret, odata
    from bizagi_etl.pipeline import Catalog, chunk_days_for, count_at_source, day_chunks, midnight

    form = {"grant_type": "client_credentials", "scope": "api"}
    token = httpx.post(f"{base}/oauth2/server/token", auth=CLIENT, data=form).json()
    client = httpx.Client(headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=60)
    began, rows = time.perf_counter(), 0
    processes = orjson.loads(client.get(f"{base}/odata/data/processes").content)["value"]
    start, end = dt.date.fromisoformat(START), dt.date.fromisoformat(END)
    settings = BizagiSettings(base_url=base, client_id=CLIENT[0], client_secret=Secret(CLIENT[1]))
    with BizagiClient(settings) as counter:  # the same chunks the extract will choose
        size = chunk_days_for(count_at_source(counter, Catalog.load().get("cases"), start, end),
                              start, end)  # fmt: skip
    for days in day_chunks(start, end, size):
        window = odata.window("creationDate", midnight(days[0]),
                              midnight(days[-1] + dt.timedelta(days=1)))  # fmt: skip
        for process in sorted(processes, key=lambda p: p["id"]):
            url: str | None = (
                f"{base}/odata/data/processes({process['id']})/cases?"
                + odata.query_string({"$top": 1000, "$skip": 0, "$filter": window})
            )
            while url:
                body = orjson.loads(client.get(url).content)
                rows += len(body["value"])
                url = body.get("@odata.nextLink")
    return {"rows": rows, "seconds": time.perf_counter() - began}


def run_program(base: str, workdir: Path, workers: int) -> dict[str, float]:
    """``bizagi-etl extract cases`` in a process of its own (whose peak RSS the caller reads:
    the larger of its two images, see bizagi_etl/handover.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIZAGI_")}
    env |= {"BIZAGI_BASE_URL": base, "BIZAGI_CLIENT_ID": CLIENT[0],
            "BIZAGI_CLIENT_SECRET": CLIENT[1], "BIZAGI_PAGE_SIZE": "1000",
            "BIZAGI_MAX_CONCURRENCY": str(workers), "BIZAGI_LAKE": str(workdir / "lake"),
            "BIZAGI_WAREHOUSE": str(workdir / "w.duckdb")}  # fmt: skip
    command = [sys.executable, "-m", "bizagi_etl.cli", "extract", "cases", "--start", START,
               "--end", END]  # fmt: skip
    began = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    import duckdb

    with duckdb.connect(str(workdir / "w.duckdb"), read_only=True) as con:
        (rows,) = con.execute("SELECT count(*) FROM bizagi.cases").fetchone() or (0,)
    return {"rows": rows, "seconds": seconds, "child_rss_mb": peak}


def run_extract(base: str, workdir: Path, workers: int) -> dict[str, float]:
    import datetime as dt

    from bizagi_etl.connector import BizagiClient, BizagiSettings, Secret
    from bizagi_etl.pipeline import (
        Catalog,
        Lake,
        defer_pandas,
        extract_stream,
        freeze_imports,
        load_result,
        use_system_allocator,
    )

    settings = BizagiSettings(base_url=base, client_id=CLIENT[0], client_secret=Secret(CLIENT[1]),
                              page_size=1000, max_concurrency=workers)  # fmt: skip
    use_system_allocator()  # as `bizagi-etl extract` does
    defer_pandas()
    freeze_imports()
    began = time.perf_counter()
    at = dt.datetime.now(dt.UTC)
    with BizagiClient(settings) as client:
        result = extract_stream(client, Catalog.load().get("cases"), Lake(workdir / "lake"),
                                start=dt.date.fromisoformat(START), end=dt.date.fromisoformat(END),
                                extracted_at=at, workers=workers)  # fmt: skip
    extracted = time.perf_counter()
    extract_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from bizagi_etl.pipeline.warehouse import Warehouse  # as the CLI: duckdb once a load runs

    with Warehouse(workdir / "w.duckdb") as warehouse:
        load_result(warehouse, result, at)
    done = time.perf_counter()
    return {"rows": result.rows("cases"), "seconds": done - began,
            "load_seconds": done - extracted, "extract_rss_mb": extract_rss,
            "loaded_rows": result.rows("cases") + result.rows("case_parameters")}  # fmt: skip


def run_dlt(base: str, workdir: Path) -> dict[str, float]:
    import dlt
    from dlt.common.configuration import configspec
    from dlt.sources.helpers.rest_client.auth import OAuth2ClientCredentials
    from dlt.sources.rest_api import rest_api_source

    @configspec
    class BizagiClientCredentials(OAuth2ClientCredentials):  # type: ignore[misc]
        """Bizagi wants the secret in a Basic header, not the form: what a dlt user would write."""

        def build_access_token_request(self) -> dict[str, object]:
            return {"auth": (self.client_id, self.client_secret),
                    "data": {"grant_type": "client_credentials", "scope": "api"}}  # fmt: skip

    auth = BizagiClientCredentials(
        access_token_url=f"{base}/oauth2/server/token",
        client_id=CLIENT[0],
        client_secret=CLIENT[1],
        access_token_request_data={"grant_type": "client_credentials", "scope": "api"},
        default_token_expiration=3600,
        session=None,
    )
    source = rest_api_source({
        "client": {"base_url": f"{base}/odata/data/", "auth": auth,
                   "paginator": {"type": "json_link", "next_url_path": "['@odata.nextLink']"}},
        "resource_defaults": {"endpoint": {"data_selector": "value", "params": {"$top": 1000}}},
        "resources": [
            {"name": "processes", "endpoint": {"path": "processes"}, "selected": False},
            {"name": "cases", "endpoint": {"path": "processes({process_id})/cases", "params": {
                "process_id": {"type": "resolve", "resource": "processes", "field": "id"}}}},
        ],
    })  # fmt: skip
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")),
        dataset_name="bizagi",
        pipelines_dir=str(workdir / "dlt"),
    )
    began = time.perf_counter()
    info = pipeline.run(source)
    seconds = time.perf_counter() - began
    del info
    import duckdb

    with duckdb.connect(str(workdir / "dlt.duckdb"), read_only=True) as con:
        count = con.execute("SELECT count(*) FROM bizagi.cases").fetchall()[0][0]
    return {"rows": count, "seconds": seconds}


# -- the table ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="100000,1000000")
    parser.add_argument("--latency", default="0,100")
    parser.add_argument("--skip-dlt", action="store_true")
    parser.add_argument("--dlt-cases", default="100000", help="case counts to run dlt at")
    parser.add_argument("--contenders", default="limit,sequential,concurrent,one_process",
                        help="comma list (dlt joins unless --skip-dlt)")  # fmt: skip
    parser.add_argument("--output", default="pipeline.md", help="file name under results/")
    parser.add_argument("--run"), parser.add_argument("--base"), parser.add_argument("--workdir")
    args = parser.parse_args()
    if args.run:
        workdir = Path(args.workdir)
        runners = {"limit": lambda: run_limit(args.base, workdir),
                   "sequential": lambda: run_program(args.base, workdir, 1),
                   "concurrent": lambda: run_program(args.base, workdir, 8),
                   "one_process": lambda: run_extract(args.base, workdir, 1),
                   "dlt": lambda: run_dlt(args.base, workdir)}  # fmt: skip
        print(json.dumps(runners[args.run]()))
        return
    with_dlt = not args.skip_dlt and _has_dlt()
    dlt_cases = {int(c) for c in args.dlt_cases.split(",")}
    rows = []
    for cases in (int(c) for c in args.cases.split(",")):
        contenders = args.contenders.split(",")
        contenders += ["dlt"] if with_dlt and cases in dlt_cases else []
        for latency in (int(x) for x in args.latency.split(",")):
            emulator, base = _emulator(cases, latency)
            try:
                measured = {}
                for contender in contenders:
                    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{contender}-"))
                    measured[contender] = _measure(contender, base, workdir)
                    shutil.rmtree(workdir, ignore_errors=True)
                    print(f"{cases:,} cases, {latency} ms, {contender}: {measured[contender]}",
                          file=sys.stderr)  # fmt: skip
            finally:
                emulator.terminate()
                emulator.wait(timeout=30)
            rows += _rows(cases, latency, measured)
    table = _markdown(rows)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.output).write_text(table + "\n")


def _has_dlt() -> bool:
    try:
        import dlt  # noqa: F401
    except ImportError:
        print("dlt is not installed (pip install -e '.[bench]'): skipping it", file=sys.stderr)
        return False
    return True


def _rows(cases: int, latency: int, measured: dict[str, dict[str, float]]) -> list[list[str]]:
    def rate(name: str) -> float:
        m = measured[name]
        return m["rows"] / m["seconds"] if m["seconds"] else 0.0

    out = []
    for name, m in measured.items():
        to_limit = rate(name) / rate("limit")
        to_dlt = f"{rate(name) / rate('dlt'):.2f}" if "dlt" in measured else "-"
        rss_dlt = f"{m['rss_mb'] / measured['dlt']['rss_mb']:.2f}" if "dlt" in measured else "-"
        load = f"{m['loaded_rows'] / m['load_seconds']:,.0f}" if "load_seconds" in m else "-"
        extract = f"{m['extract_rss_mb']:.0f}" if "extract_rss_mb" in m else "-"
        out.append([
            f"{cases:,}", f"{latency}", name, f"{int(m['rows']):,}", f"{m['seconds']:.1f}",
            f"{rate(name):,.0f}", f"{to_limit:.2f}", to_dlt, extract, f"{m['rss_mb']:.0f}",
            rss_dlt, load,
        ])  # fmt: skip
    return out


def _markdown(rows: list[list[str]]) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    head = ["cases", "latency ms", "contender", "rows", "seconds", "rows/s", "x limit", "x dlt",
            "RSS MB after extracting", "peak RSS MB", "RSS x dlt", "load rows/s"]  # fmt: skip
    lines = [f"Pipeline benchmark ({machine})", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]  # fmt: skip
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
