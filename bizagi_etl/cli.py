"""The ``bizagi-etl`` command."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import click

from bizagi_etl import __version__
from bizagi_etl.emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EmulatorConfig,
    EmulatorConfigError,
)

_DAY = click.DateTime(formats=["%Y-%m-%d"])
_SHARE = click.FloatRange(0.0, 1.0)


@click.group()
@click.version_option(__version__, prog_name="bizagi-etl")
def main() -> None:
    """Extract a Bizagi project's OData API into Parquet and DuckDB."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--client-id", default=DEFAULT_CLIENT_ID, show_default=True)
@click.option("--client-secret", default=DEFAULT_CLIENT_SECRET, show_default=True)
@click.option("--scopes", default="api", show_default=True, help="Scopes the client may request.")
@click.option("--seed", default=42, show_default=True, type=int, help="Drives all data and faults.")
@click.option("--cases", default=20_000, show_default=True, type=click.IntRange(0))
@click.option("--start", type=_DAY, default="2024-01-01", show_default=True,
              help="First day of the case history (UTC).")  # fmt: skip
@click.option("--end", type=_DAY, default=None, help="Day the history stops at (default: today).")
@click.option("--token-ttl", default=3600, show_default=True, type=click.IntRange(0),
              help="Token lifetime in seconds; 0 = never expires.")  # fmt: skip
@click.option("--page-cap", default=1000, show_default=True, type=click.IntRange(1),
              help="Most rows in one page, whatever $top asks.")  # fmt: skip
@click.option("--latency-ms", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Added to every OData answer, +-25% jitter.")  # fmt: skip
@click.option("--fault-rate", default=0.0, show_default=True, type=_SHARE,
              help="Share of OData requests answered 429 or 503 with Retry-After.")  # fmt: skip
@click.option("--retry-after", default=1, show_default=True, type=click.IntRange(0),
              help="Seconds announced by Retry-After.")  # fmt: skip
@click.option("--drop-rate", default=0.0, show_default=True, type=_SHARE,
              help="Share of OData answers whose connection closes mid-body.")  # fmt: skip
@click.option("--truncate-rate", default=0.0, show_default=True, type=_SHARE,
              help="Share of OData answers whose JSON body is cut short.")  # fmt: skip
@click.option("--mutate-rate", default=0.0, show_default=True, type=_SHARE,
              help="Share of OData requests that first create a new case.")  # fmt: skip
@click.option("--drift-date", type=_DAY, default=None,
              help="Cases created from this day carry a new parameter and attribute.")  # fmt: skip
@click.option("--repeat-next-link", is_flag=True, help="Every page points to the same next link.")
@click.option("--lenient-options", is_flag=True,
              help="Ignore $select/$orderby/$search instead of answering 400.")  # fmt: skip
@click.option("--token-errors-as-200", is_flag=True,
              help="Answer token errors with HTTP 200 and the error in the body.")  # fmt: skip
@click.option("--accept-form-credentials", is_flag=True,
              help="Also take client_id/client_secret from the token form.")  # fmt: skip
@click.option("--next-link-origin", default=None, metavar="URL",
              help="Serve next links on another origin, as a bad proxy would.")  # fmt: skip
@click.option("--export-truth", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write every row it would serve as Parquet into DIR, then exit.")  # fmt: skip
def emulator(host: str, port: int, export_truth: Path | None, **settings: Any) -> None:
    """Serve an emulated Bizagi project (OAuth2 + OData) on HOST:PORT."""
    config = _emulator_config(settings)
    from bizagi_etl.emulator.app import Emulated  # imported late: keeps `--help` fast
    from bizagi_etl.emulator.server import serve_forever

    began = time.perf_counter()
    emulated = Emulated(config)
    click.echo(
        f"Generated {emulated.ds.case_count:,} cases in {time.perf_counter() - began:.1f} s",
        err=True,
    )
    if export_truth is not None:
        from bizagi_etl.emulator.truth import export_truth as export

        counts = export(emulated.ds, export_truth)
        for name, rows in counts.items():
            click.echo(f"{name:16} {rows:>10,} rows")
        click.echo(f"Ground truth written to {export_truth}")
        return
    base = f"http://{host}:{port}"
    click.echo(f"Bizagi emulator on {base}")
    click.echo(f"  base URL       {base}")
    click.echo(f"  token URL      {base}/oauth2/server/token")
    click.echo(f"  client id      {config.client_id}")
    click.echo(f"  client secret  {config.client_secret}")
    click.echo("Press Ctrl+C to stop.")
    try:
        serve_forever(emulated, host, port)
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises the signal
        click.echo("Emulator stopped.")


@main.command()
def check() -> None:
    """Reach the project with the BIZAGI_* settings: who we run as, and what answers."""
    from bizagi_etl.check import diagnose, run_check
    from bizagi_etl.errors import BizagiError
    from bizagi_etl.settings import BizagiSettings

    settings = None
    try:
        settings = BizagiSettings.from_env()
        report = run_check(settings)
    except BizagiError as exc:
        click.echo(f"FAILED: {diagnose(exc, settings)}", err=True)
        raise SystemExit(1) from None
    lifetime = (
        "never expires" if report.token_lifetime is None else f"{report.token_lifetime:.0f} s"
    )
    click.echo(f"Bizagi at {report.base_url}")
    click.echo(f"  runs as      {report.user}")
    click.echo(f"  token        lifetime {lifetime}")
    click.echo(f"  round trip   {report.round_trip_ms:.0f} ms (userProfile)")
    for path, state in report.resources.items():
        click.echo(f"  {state:11}  {path}")
    if not report.all_ok:
        click.echo("FAILED: some resources do not answer (see above)", err=True)
        raise SystemExit(1)
    click.echo("OK")


def _env_path(name: str, default: str) -> Path:
    return Path(os.environ.get(name) or default)


@main.command()
@click.option("--streams-file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="BIZAGI_STREAMS_FILE", help="Your own streams (TOML).")  # fmt: skip
def streams(streams_file: Path | None) -> None:
    """The stream catalog: tables, key and partitioning."""
    from rich.table import Table

    from bizagi_etl.console import out
    from bizagi_etl.streams import ENTITY_VALUES

    catalog = _catalog(streams_file)
    table = Table(title="Streams", title_justify="left")
    for name in ("stream", "tables", "key", "partitioning", "source"):
        table.add_column(name)
    for s in catalog.all():
        partitioning = f"daily on {s.cursor}" if s.cursor else "snapshot (per day)"
        table.add_row(s.name, ", ".join(s.tables), ", ".join(s.key), partitioning, s.path)
    table.add_row(ENTITY_VALUES, "entity_<name>, one per parameter entity", "id",
                  "snapshot (per day)", "odata/data/entities(id)/values")  # fmt: skip
    out.print(table)


@main.command()
@click.argument("stream_names", metavar="STREAM...", nargs=-1, required=True)
@click.option("--start", type=_DAY, help="First day (UTC), inclusive. Default: yesterday.")
@click.option("--end", type=_DAY, help="Last day (UTC), exclusive. Default: today.")
@click.option("--lake", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Lake folder [env BIZAGI_LAKE; default bizagi-data/lake].")  # fmt: skip
@click.option("--warehouse", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="DuckDB file [env BIZAGI_WAREHOUSE; default bizagi-data/...duckdb]")  # fmt: skip
@click.option("--no-load", is_flag=True, help="Write the lake only.")
@click.option("--streams-file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="BIZAGI_STREAMS_FILE", help="Your own streams (TOML).")  # fmt: skip
@click.option("--duckdb-memory-limit", envvar="BIZAGI_DUCKDB_MEMORY_LIMIT",
              help="DuckDB's memory while loading, beyond which it spills to disk "
              "[env BIZAGI_DUCKDB_MEMORY_LIMIT; default 128MB].")  # fmt: skip
def extract(
    stream_names: tuple[str, ...],
    start: dt.datetime | None,
    end: dt.datetime | None,
    lake: Path | None,
    warehouse: Path | None,
    no_load: bool,
    streams_file: Path | None,
    duckdb_memory_limit: str | None,
) -> None:
    """Extract STREAM... over [start, end) into the lake, and load the warehouse."""
    from bizagi_etl.client import BizagiClient
    from bizagi_etl.errors import BizagiError
    from bizagi_etl.settings import BizagiSettings

    today = dt.datetime.now(dt.UTC).date()
    first = start.date() if start else today - dt.timedelta(days=1)
    last = end.date() if end else today
    if not first < last:
        raise click.UsageError(f"--start ({first}) must be before --end ({last}); end is exclusive")
    lake_root = lake or _env_path("BIZAGI_LAKE", "bizagi-data/lake")
    db = warehouse or _env_path("BIZAGI_WAREHOUSE", "bizagi-data/warehouse.duckdb")
    try:
        settings = BizagiSettings.from_env()
        with BizagiClient(settings) as client:
            _run_and_report(client, _catalog(streams_file), stream_names, lake_root,
                            None if no_load else db, first, last,
                            duckdb_memory_limit)  # fmt: skip
    except BizagiError as exc:
        from bizagi_etl.check import diagnose

        click.echo(f"FAILED: {diagnose(exc)}", err=True)
        raise SystemExit(1) from None


def _catalog(streams_file: Path | None) -> Any:
    from bizagi_etl.errors import SchemaError
    from bizagi_etl.streams import Catalog

    try:
        return Catalog.load(streams_file)
    except SchemaError as exc:
        raise click.UsageError(str(exc)) from None


def _run_and_report(
    client: Any,
    catalog: Any,
    names: tuple[str, ...] | list[str],
    lake_root: Path,
    db: Path | None,
    start: dt.date,
    end: dt.date,
    memory_limit: str | None = None,
) -> Any:
    from bizagi_etl.console import out, stream_progress, summary
    from bizagi_etl.frames import use_system_allocator
    from bizagi_etl.lake import Lake
    from bizagi_etl.run import run
    from bizagi_etl.warehouse import Warehouse

    use_system_allocator()
    warehouse = Warehouse(db, memory_limit=memory_limit) if db else None
    try:
        with stream_progress() as progress:
            report = run(client, catalog, names, Lake(lake_root), warehouse,
                         start=start, end=end, progress=progress)  # fmt: skip
    finally:
        if warehouse is not None:
            warehouse.close()
    out.print(summary(report.results, report.loaded))
    out.print(f"Lake: {lake_root}" + (f"   Warehouse: {db}" if db else "   (not loaded)"))
    return report


DEMO_QUERIES = (
    ("Cases per process in the last 30 days of the history",
     "SELECT process_name, sum(cases) AS cases, sum(open_cases) AS still_open "
     "FROM analytics.cases_per_process_day WHERE day >= (SELECT max(day) - 30 "
     "FROM analytics.cases_per_process_day) GROUP BY ALL ORDER BY cases DESC LIMIT 5"),
    ("SLA status by process",
     "SELECT process_name, sla_status, count(*) AS cases, round(avg(cycle_hours), 1) AS avg_hours "
     "FROM analytics.case_sla GROUP BY ALL ORDER BY process_name, sla_status LIMIT 8"),
    ("Open workitems by task and state",
     "SELECT task, state, workitems FROM analytics.open_workitems "
     "ORDER BY workitems DESC LIMIT 5"),
)  # fmt: skip


@main.command()
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bizagi-demo"), show_default=True,
              help="Where the lake and the warehouse are left.")  # fmt: skip
@click.option("--cases", default=20_000, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=42, show_default=True, type=int)
def demo(folder: Path, cases: int, seed: int) -> None:
    """Run the whole pipeline offline: emulator -> lake -> warehouse -> views."""
    import shutil

    from bizagi_etl.client import BizagiClient
    from bizagi_etl.console import out
    from bizagi_etl.emulator import EmulatorServer
    from bizagi_etl.settings import BizagiSettings, Secret
    from bizagi_etl.warehouse import Warehouse

    began = time.perf_counter()
    config = EmulatorConfig(cases=cases, seed=seed)
    lake_root, db = folder / "lake", folder / "warehouse.duckdb"
    shutil.rmtree(lake_root, ignore_errors=True)  # the demo owns these two, nothing else
    db.unlink(missing_ok=True)
    out.print(f"Starting the Bizagi emulator: {cases:,} cases from {config.start} to {config.end}")
    with EmulatorServer(config) as bizagi:
        settings = BizagiSettings(
            base_url=bizagi.base_url,
            client_id=bizagi.client_id,
            client_secret=Secret(bizagi.client_secret),
            page_size=1000,
        )
        with BizagiClient(settings) as client:
            names = ["processes", "stakeholders", "entities", "entity_values", "cases", "inbox"]
            _run_and_report(client, _catalog(None), names, lake_root, db, config.start, config.end)
    with Warehouse(db) as warehouse:
        out.print(f"\nLanded in {time.perf_counter() - began:.1f} s. Tables in {db}:")
        for table in warehouse.tables():
            out.print(f"  bizagi.{table:<20} {warehouse.count(table):>10,} rows")
        out.print("\nThree queries to try:")
        for title, sql in DEMO_QUERIES:
            out.print(f"\n[bold]{title}[/bold]\n  {sql}")
            for row in warehouse.query(sql):
                out.print("   ", *row)
    sql = "SHOW ALL TABLES"
    out.print(f"\nTry your own: .venv/bin/python -c \"import duckdb; "
              f"print(duckdb.connect('{db}', read_only=True).sql('{sql}'))\"")  # fmt: skip


def _emulator_config(settings: dict[str, Any]) -> EmulatorConfig:
    for name in ("start", "end", "drift_date"):
        if isinstance(settings.get(name), dt.datetime):
            settings[name] = settings[name].date()
    if settings.get("end") is None:
        settings.pop("end", None)
    settings["scopes"] = tuple(settings["scopes"].split())
    try:
        return EmulatorConfig(**settings)
    except EmulatorConfigError as exc:
        raise click.UsageError(str(exc)) from None


if __name__ == "__main__":
    main()
