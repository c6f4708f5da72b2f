"""OData benchmark, side by side in one run: a generic OData v4 entity set into DuckDB.

It starts `bizagi-etl emulator --flavor standard` (a generic OData v4 face: a JWT from
client credentials, next links relative to the service root, totals only with `$count=true`)
in its own process, and measures its `Claims` entity set (`odata/data/Claims`, --rows rows,
pages of at most 1,000). Each contender runs in a fresh process of its own, so its peak RSS
(ru_maxrss from os.wait4) is its own; its seconds are the wall clock from that process's
start to its exit, imports included. Each is run --repeats times, one round of all contenders
after another, and the table gives the medians:

- bare:                 httpx.Client + orjson, following @odata.nextLink one page at a time,
                        parsing only and counting rows: the floor of what the service allows;
- bizagi_etl_defaults:  `python -m bizagi_etl.cli extract claims --streams-file F`, end to end
                        (lake and DuckDB warehouse), a snapshot stream, no tuning settings;
- bizagi_etl_page_1000: the same with BIZAGI_PAGE_SIZE=1000;
- dlt_tuned:            dlt's rest_api source into DuckDB, tuned as dlt's performance guide says
                        (https://dlthub.com/docs/reference/performance); its knobs are in
                        DLT_KNOBS and in the table's notes.

Every run's rows are checked (the warehouse's and dlt's tables are counted afterwards): a
contender that lands anything but --rows rows fails the benchmark. It prints a Markdown table
and writes it to benchmarks/results/odata.md (--out). `make bench` runs it; dlt comes with the
`bench` extra (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CLIENT = ("bizagi-etl-demo", "emulator-secret-change-me")
ENTITY_PATH = "odata/data/Claims"
PAGE_CAP = 1000  # the emulator's largest page, whatever $top asks
CONTENDERS = ["bare", "bizagi_etl_defaults", "bizagi_etl_page_1000", "dlt_tuned"]

STREAMS_TOML = f"""\
[[streams]]
name = "claims"
path = "{ENTITY_PATH}"
key = "id"
"""

# dlt's settings, as environment variables (its config providers read them at run time).
DLT_KNOBS = {
    "DATA_WRITER__BUFFER_MAX_ITEMS": "20000",  # default 5000; raise it, says the guide
    "EXTRACT__DATA_WRITER__FILE_MAX_ITEMS": "50000",  # rotate: 4 files so normalize can split
    "NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS": "50000",  # rotate: 4 parquet files to load at once
    "EXTRACT__WORKERS": "2",  # thread pool of parallelized resources (2 cores)
    "NORMALIZE__WORKERS": "2",  # process pool, one extract file each (2 cores); forked, dlt's
    # default on Linux (the extract threads are gone by then; spawn re-imports dlt per worker)
    "LOAD__WORKERS": "4",  # one thread per load file
    "RUNTIME__DLTHUB_TELEMETRY": "false",  # not a speed knob: no calls home from a benchmark
}
# The page size, the OData way: $top would cap the whole result (1,000 rows, no next link).
DLT_PAGE = {"Prefer": f"odata.maxpagesize={PAGE_CAP}"}
DLT_NOTES = (
    "rest_api, json_link paginator on `['@odata.nextLink']` (relative links resolve by urljoin),"
    f" page size by `Prefer: odata.maxpagesize={PAGE_CAP}`, data_selector `value`,"
    " resource parallelized=True,"
    ' loader_file_format="parquet", bearer token fetched first; '
    + ", ".join(f"{k}={v}" for k, v in DLT_KNOBS.items())
)
NOTES = {
    "bare": "httpx.Client + orjson, one page at a time, parse and count only",
    "bizagi_etl_defaults": "`bizagi-etl extract`, lake + warehouse, no tuning settings",
    "bizagi_etl_page_1000": "the same, BIZAGI_PAGE_SIZE=1000",
    "dlt_tuned": DLT_NOTES,
}


# -- the server -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _emulator(rows: int, log: Path, latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    """Start the emulator in its own process and wait until it hands out tokens."""
    import httpx

    port = _free_port()
    command = [sys.executable, "-m", "bizagi_etl.cli", "emulator", "--flavor", "standard",
               "--port", str(port), "--claims", str(rows), "--cases", "1000",
               "--page-cap", str(PAGE_CAP), "--latency-ms", str(latency_ms)]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        if process.poll() is not None:
            raise SystemExit(f"the emulator exited ({process.returncode}):\n{log.read_text()}")
        try:
            _token_httpx(base)
            return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("the emulator did not answer within 120 s")


def _token_httpx(base: str) -> str:
    import httpx

    form = {"grant_type": "client_credentials", "scope": "api"}
    answer = httpx.post(f"{base}/oauth2/server/token", auth=CLIENT, data=form)
    answer.raise_for_status()
    return str(answer.json()["access_token"])


# -- the contenders, each run in a process of its own -----------------------------------------


def run_bare(base: str) -> dict[str, int]:
    """Follow the next links from the entity set, parse each page, count its rows."""
    from urllib.parse import urljoin

    import httpx
    import orjson

    headers = {"Authorization": f"Bearer {_token_httpx(base)}"}
    rows = 0
    with httpx.Client(headers=headers, timeout=60) as client:
        url: str | None = f"{base}/{ENTITY_PATH}"
        while url:
            answer = client.get(url)
            answer.raise_for_status()
            body = orjson.loads(answer.content)
            rows += len(body["value"])
            link = body.get("@odata.nextLink")
            url = urljoin(url, link) if link else None
    return {"rows": rows}


def run_dlt(base: str, workdir: Path) -> dict[str, int]:
    """dlt's rest_api source into DuckDB, with DLT_KNOBS; the parent counts its rows."""
    os.environ.update(DLT_KNOBS)
    import dlt
    from dlt.sources.helpers import requests
    from dlt.sources.rest_api import rest_api_source

    form = {"grant_type": "client_credentials", "scope": "api"}
    answer = requests.post(f"{base}/oauth2/server/token", auth=CLIENT, data=form)
    token = answer.json()["access_token"]
    source = rest_api_source({
        "client": {
            "base_url": f"{base}/{ENTITY_PATH.rsplit('/', 1)[0]}/",
            "auth": {"type": "bearer", "token": token},
            "paginator": {"type": "json_link", "next_url_path": "['@odata.nextLink']"},
        },
        "resources": [{
            "name": "claims",
            "primary_key": "id",
            "write_disposition": "replace",
            "parallelized": True,
            "endpoint": {"path": ENTITY_PATH.rsplit("/", 1)[1], "headers": DLT_PAGE,
                         "data_selector": "value"},
        }],
    })  # fmt: skip
    pipeline = dlt.pipeline(
        pipeline_name="odata_bench",
        destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")),
        dataset_name="odata",
        pipelines_dir=str(workdir / "dlt"),
    )
    pipeline.run(source, loader_file_format="parquet")
    return {}


# -- measuring --------------------------------------------------------------------------------


def _command(contender: str, base: str, workdir: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment a contender runs with."""
    env = dict(os.environ)
    if contender.startswith("bizagi_etl"):
        streams = workdir / "claims.toml"
        streams.write_text(STREAMS_TOML)
        # Drop any BIZAGI_* of the caller's shell: the defaults are what is measured.
        env = {k: v for k, v in env.items() if not k.startswith("BIZAGI_")}
        env.update({
            "BIZAGI_BASE_URL": base,
            "BIZAGI_CLIENT_ID": CLIENT[0],
            "BIZAGI_CLIENT_SECRET": CLIENT[1],
            "BIZAGI_TOKEN_URL": f"{base}/oauth2/server/token",
            "BIZAGI_FILTER_ENCODING": "standard",
            "BIZAGI_LAKE": str(workdir / "lake"),
            "BIZAGI_WAREHOUSE": str(workdir / "warehouse.duckdb"),
        })  # fmt: skip
        if contender == "bizagi_etl_page_1000":
            env["BIZAGI_PAGE_SIZE"] = str(PAGE_CAP)
        command = [sys.executable, "-m", "bizagi_etl.cli", "extract", "claims",
                   "--streams-file", str(streams)]  # fmt: skip
        return command, env
    command = [sys.executable, __file__, "--run", contender, "--base", base,
               "--workdir", str(workdir)]  # fmt: skip
    return command, env


def _count(database: Path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        row = con.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 (ours)
    return int(row[0]) if row else 0


def _measure(contender: str, base: str, expected: int) -> dict[str, float]:
    """Run one contender in a fresh process: its rows, wall seconds and peak RSS."""
    workdir = Path(tempfile.mkdtemp(prefix=f"odata-bench-{contender}-"))
    try:
        command, env = _command(contender, base, workdir)
        log = workdir / "output.log"
        with log.open("wb") as out:
            began = time.perf_counter()
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        output = log.read_text(errors="replace")
        if status != 0:
            raise SystemExit(f"{contender} failed (exit {process.returncode}):\n{output}")
        if contender == "bare":
            rows = int(json.loads(output.strip().splitlines()[-1])["rows"])
        elif contender == "dlt_tuned":
            rows = _count(workdir / "dlt.duckdb", "odata.claims")
        else:
            rows = _count(workdir / "warehouse.duckdb", "bizagi.claims")
        if rows != expected:
            raise SystemExit(f"{contender} landed {rows:,} rows, not {expected:,}:\n{output}")
        return {"rows": rows, "seconds": seconds, "rss_mb": usage.ru_maxrss / 1024}  # KiB
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# -- the table --------------------------------------------------------------------------------


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _markdown(
    medians: dict[str, dict[str, float]],
    rows: int,
    repeats: int,
    contenders: list[str],
    latency_ms: float,
) -> str:
    def rate(name: str) -> float:
        return medians[name]["rows"] / medians[name]["seconds"]

    versions = ", ".join(f"{p} {_version(p)}" for p in
                         ("bizagi-etl", "dlt", "httpx", "orjson", "duckdb", "pyarrow"))  # fmt: skip
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    head = ["contender", "rows", "seconds (median)", "rows/s", "x bare fetch",
            "peak RSS MB (median)", "x dlt RSS", "notes"]  # fmt: skip
    lines = [
        f"OData benchmark ({machine}; {versions}; {rows:,} rows of {ENTITY_PATH}, page cap "
        f"{PAGE_CAP}, {latency_ms:g} ms added to each answer, median of {repeats}; "
        f"`benchmarks/odata_bench.py --rows {rows} --latency-ms {latency_ms:g} "
        f"--repeats {repeats} --contenders {','.join(contenders)}`)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name in contenders:
        m = medians[name]
        to_bare = f"{rate(name) / rate('bare'):.2f}" if "bare" in medians else "-"
        dlt = medians.get("dlt_tuned")
        to_dlt = f"{m['rss_mb'] / dlt['rss_mb']:.2f}" if dlt else "-"
        cells = [name, f"{int(m['rows']):,}", f"{m['seconds']:.1f}", f"{rate(name):,.0f}",
                 to_bare, f"{m['rss_mb']:.0f}", to_dlt, NOTES[name]]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the Claims set")
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender (median)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help=(
        "added to each of the emulator's answers (+-25%%): 0 puts the server's own work on "
        "this machine's cores, a few ms is a server across a LAN"))  # fmt: skip
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma list")
    parser.add_argument("--out", type=Path, default=RESULTS / "odata.md", help="table file")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # inside a contender's process
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run == "bare":
        print(json.dumps(run_bare(args.base)))
        return
    if args.run == "dlt_tuned":
        print(json.dumps(run_dlt(args.base, Path(args.workdir))))
        return

    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}; choose from {CONTENDERS}")
    if "dlt_tuned" in contenders and _version("dlt") == "not installed":
        raise SystemExit("dlt is not installed: pip install -e '.[bench]'")
    emulator_log = Path(tempfile.mkstemp(prefix="odata-bench-emulator-", suffix=".log")[1])
    emulator, base = _emulator(args.rows, emulator_log, args.latency_ms)
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in contenders}
    try:
        for repeat in range(1, args.repeats + 1):
            for contender in contenders:
                measured = _measure(contender, base, args.rows)
                runs[contender].append(measured)
                print(f"run {repeat}/{args.repeats} {contender}: {measured['seconds']:.1f} s, "
                      f"{measured['rss_mb']:.0f} MB", file=sys.stderr)  # fmt: skip
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
        emulator_log.unlink(missing_ok=True)
    medians = {
        c: {key: statistics.median(run[key] for run in runs[c]) for key in runs[c][0]}
        for c in contenders
    }
    table = _markdown(medians, args.rows, args.repeats, contenders, args.latency_ms)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
