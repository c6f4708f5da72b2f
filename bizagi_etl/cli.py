"""The ``bizagi-etl`` command.

``emulator`` and ``demo`` live in modules of their own, imported only when one of them runs:
the other commands never load the emulator (uvicorn, starlette and the data generator).
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
from pathlib import Path
from typing import Any

import click

from bizagi_etl import __version__

_DAY = click.DateTime(formats=["%Y-%m-%d"])


# command -> the module that defines it, imported only when the command runs
_LAZY_COMMANDS = {"emulator": "bizagi_etl.emulator.command", "demo": "bizagi_etl.demo"}


class _LazyGroup(click.Group):
    """A group whose commands in ``_LAZY_COMMANDS`` are imported when used (click's recipe)."""

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
def main() -> None:
    """Extract a Bizagi project's OData API into Parquet and DuckDB."""


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
    from bizagi_etl.pipeline import ENTITY_VALUES

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
    from bizagi_etl.connector import BizagiClient, BizagiError, BizagiSettings
    from bizagi_etl.console import run_and_report

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
            run_and_report(client, _catalog(streams_file), stream_names, lake_root,
                           None if no_load else db, first, last,
                           duckdb_memory_limit)  # fmt: skip
    except BizagiError as exc:
        from bizagi_etl.connector import diagnose

        click.echo(f"FAILED: {diagnose(exc)}", err=True)
        raise SystemExit(1) from None


def _catalog(streams_file: Path | None) -> Any:
    from bizagi_etl.connector import SchemaError
    from bizagi_etl.pipeline import Catalog

    try:
        return Catalog.load(streams_file)
    except SchemaError as exc:
        raise click.UsageError(str(exc)) from None


if __name__ == "__main__":
    main()
