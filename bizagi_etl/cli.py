"""The ``bizagi-etl`` command.

``emulator`` and ``demo`` live in modules of their own, imported only when one of them runs:
the other commands never load the emulator (uvicorn, starlette and the data generator).
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bizagi_etl import __version__

if TYPE_CHECKING:
    from bizagi_etl.pipeline import Catalog, PipelineSettings

DEBUG = "bizagi_etl.debug"  # ctx.meta key: show tracebacks and the redacted HTTP log
PROGRAM = "bizagi_etl.program"  # the root context's obj when run as the installed program


class Day(click.ParamType):
    """A UTC day written YYYY-MM-DD, four-digit year; an impossible day says so."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.date):
            return value
        text = str(value).strip()
        shown = text if len(text) <= 40 else f"{text[:25]}... ({len(text):,} chars)"
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            self.fail(f"expected a day as YYYY-MM-DD (four-digit year), got {shown!r}", param, ctx)
        try:
            return dt.date.fromisoformat(text)
        except ValueError as exc:
            self.fail(f"{shown} is not a real day ({exc})", param, ctx)


_DAY = Day()


# command -> the module that defines it, imported only when the command runs
_LAZY_COMMANDS = {"emulator": "bizagi_etl.emulator.command", "demo": "bizagi_etl.demo"}


class _LazyGroup(click.Group):
    """A group whose commands in ``_LAZY_COMMANDS`` are imported when used (click's recipe),
    and whose failures are one line each, never a traceback (unless ``--debug``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if ctx.meta.get(DEBUG):
                raise
            from bizagi_etl.failures import explain

            click.echo(f"FAILED: {explain(exc)}", err=True)
            ctx.exit(1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_COMMANDS:
            module = importlib.import_module(_LAZY_COMMANDS[cmd_name])
            command: click.Command = getattr(module, cmd_name)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="bizagi-etl")
@click.option("--debug", is_flag=True,
              help="On failure show the traceback; log HTTP (redacted) at DEBUG "
              "[env BIZAGI_LOG_LEVEL=DEBUG].")  # fmt: skip
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Extract a Bizagi project's OData API into Parquet and DuckDB."""
    level = "DEBUG" if debug else os.environ.get("BIZAGI_LOG_LEVEL", "WARNING").upper()
    ctx.meta[DEBUG] = level == "DEBUG"
    if level not in logging.getLevelNamesMapping():
        raise click.BadParameter(f"BIZAGI_LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, "
                                 f"got {level[:20]!r}")  # fmt: skip
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
def check() -> None:
    """Reach the project with the BIZAGI_* settings: who we run as, and what answers."""
    from bizagi_etl.connector import BizagiError, BizagiSettings, diagnose, run_check

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
    click.echo(f"OData service at {report.base_url}/odata/data")
    if report.user is not None:
        click.echo(f"  runs as      {report.user}")
    click.echo(f"  token        lifetime {lifetime}")
    click.echo(f"  round trip   {report.round_trip_ms:.0f} ms (service document)")
    shown = ", ".join(report.entity_sets) or "none listed"
    click.echo(f"  offers       {len(report.entity_sets)}: {shown}")
    for path, state in report.resources.items():
        click.echo(f"  {state:11}  {path}")
    for note in report.notes:
        click.echo(f"  note         {note}")
    if not report.all_ok:
        click.echo("FAILED: some resources do not answer (see above)", err=True)
        raise SystemExit(1)
    click.echo("OK")


@main.command()
@click.option("--streams-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Your own streams (TOML) [env BIZAGI_STREAMS_FILE].")  # fmt: skip
def streams(streams_file: Path | None) -> None:
    """The stream catalog: tables, key and partitioning."""
    from rich.table import Table

    from bizagi_etl.report import out

    catalog = _catalog(_pipeline_settings(streams_file=streams_file))
    table = Table(title="Streams", title_justify="left")
    for name in ("stream", "tables", "key", "partitioning", "source"):
        table.add_column(name)
    for s in catalog.all():
        partitioning = f"daily on {s.cursor}" if s.cursor else "snapshot (per day)"
        table.add_row(s.name, s.tables_label, ", ".join(s.key), partitioning, s.path)
    out.print(table)


def _where(command: Any) -> Any:
    """The options that say where a run lands (extract and sync share them)."""
    options = (
        click.option("--lake", default=None,
                     help="Lake folder or s3://bucket/prefix [env BIZAGI_LAKE; default "
                          "bizagi-data/lake]."),
        click.option("--warehouse", default=None,
                     help="DuckDB file, or ducklake:postgres:<libpq string> / ducklake:<file> "
                          "[env BIZAGI_WAREHOUSE; default bizagi-data/warehouse.duckdb]"),
        click.option("--no-load", is_flag=True, help="Write the lake only."),
        click.option("--streams-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Your own streams (TOML) [env BIZAGI_STREAMS_FILE]."),
    )  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.argument("stream_names", metavar="STREAM...", nargs=-1, required=True)
@click.option("--start", type=_DAY, help="First day (UTC), inclusive. Default: yesterday.")
@click.option("--end", type=_DAY, help="Last day (UTC), exclusive. Default: today.")
@_where
@click.option("--duckdb-memory-limit",
              help="DuckDB's memory while loading, beyond which it spills to disk "
              "[env BIZAGI_DUCKDB_MEMORY_LIMIT; default 64MB, 256MB for a DuckLake].")  # fmt: skip
def extract(
    stream_names: tuple[str, ...],
    start: dt.date | None,
    end: dt.date | None,
    lake: str | None,
    warehouse: str | None,
    no_load: bool,
    streams_file: Path | None,
    duckdb_memory_limit: str | None,
) -> None:
    """Extract STREAM... over [start, end) into the lake, and load the warehouse."""
    from bizagi_etl import handover
    from bizagi_etl.connector import BizagiClient, BizagiSettings
    from bizagi_etl.console import extract_for_handover, run_and_report

    today = dt.datetime.now(dt.UTC).date()
    first = start or today - dt.timedelta(days=1)
    last = end or today
    if not first < last:
        raise click.UsageError(f"--start ({first}) must be before --end ({last}); end is exclusive")
    where = _pipeline_settings(lake=lake, warehouse=warehouse, streams_file=streams_file,
                               duckdb_memory_limit=duckdb_memory_limit)  # fmt: skip
    catalog = _catalog(where)
    settings = BizagiSettings.from_env()
    ctx = click.get_current_context()
    if no_load or ctx.find_root().obj != PROGRAM or not handover.possible():
        with BizagiClient(settings) as client:
            report = run_and_report(client, catalog, stream_names, where, not no_load, first,
                                    last)  # fmt: skip
        from bizagi_etl.failures import explain

        _report_failed({name: explain(error) for name, error in report.failed.items()})
        return
    with BizagiClient(settings) as client:
        plan, folder = extract_for_handover(client, catalog, stream_names, where, first, last)
    path = handover.hand_over(plan, folder, debug=ctx.meta[DEBUG])  # returns if it cannot
    _report_failed(handover.land_plan(path).failed)


@main.command(hidden=True)
@click.argument("plan_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def land(plan_file: Path) -> None:
    """Load what ``extract`` wrote, as PLAN_FILE says: ``extract`` hands its load over to a
    fresh image of its process (bizagi_etl/handover.py)."""
    from bizagi_etl.handover import land_plan

    _report_failed(land_plan(plan_file).failed)


def _report_failed(failed: dict[str, str]) -> None:
    """The streams that failed on their own account, a line each, and exit status 1."""
    if failed:
        for name, why in failed.items():
            click.echo(f"FAILED: stream {name}: {why}", err=True)
        raise SystemExit(1)


@main.command()
@click.argument("stream_names", metavar="STREAM...", nargs=-1, required=True)
@click.option(
    "--now",
    "now_text",
    metavar="INSTANT",
    help="Sync up to this instant (ISO day or date-time, UTC; default: now).",
)
@_where
def sync(
    stream_names: tuple[str, ...],
    now_text: str | None,
    lake: str | None,
    warehouse: str | None,
    no_load: bool,
    streams_file: Path | None,
) -> None:
    """Bring daily STREAM... to the server's current state: new days, days with open cases,
    days whose counts moved; record cases that vanished."""
    from bizagi_etl.connector import BizagiClient, BizagiSettings
    from bizagi_etl.console import sync_and_report

    now = _instant(now_text)
    where = _pipeline_settings(lake=lake, warehouse=warehouse, streams_file=streams_file)
    catalog = _catalog(where)
    with BizagiClient(BizagiSettings.from_env()) as client:
        sync_and_report(client, catalog, stream_names, where, None if no_load else where.warehouse,
                        now)  # fmt: skip


def _instant(text: str | None) -> dt.datetime:
    """An ISO date or date-time as a UTC instant (naive means UTC); now when not given."""
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        shown = text if len(text) <= 40 else f"{text[:25]}... ({len(text):,} chars)"
        raise click.BadParameter(f"expected an ISO date or date-time, got {shown!r}",
                                 param_hint="--now") from None  # fmt: skip
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _pipeline_settings(**options: Any) -> PipelineSettings:
    """Lake, warehouse and streams file: options win over BIZAGI_* variables."""
    from bizagi_etl.connector import SettingsError
    from bizagi_etl.pipeline import PipelineSettings

    try:
        return PipelineSettings.from_env(**options)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _catalog(settings: PipelineSettings) -> Catalog:
    from bizagi_etl.connector import SchemaError
    from bizagi_etl.pipeline import Catalog

    try:
        return Catalog.load(settings.streams_file)
    except SchemaError as exc:
        raise click.UsageError(str(exc)) from None


def program() -> None:
    """The installed ``bizagi-etl`` (and ``python -m bizagi_etl.cli``): ``main``, as a process
    of its own, which ``extract`` may hand its load over to (bizagi_etl/handover.py). Callers
    of ``main`` in a process they keep (tests, scripts) get the load in that process."""
    main(obj=PROGRAM)


if __name__ == "__main__":
    program()
