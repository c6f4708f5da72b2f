"""``bizagi-etl emulator``: serve the emulated Bizagi project, or export its ground truth.

Loaded by the CLI only when this command runs, so other commands never import the emulator.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import click

from bizagi_etl.emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EmulatorConfig,
    EmulatorConfigError,
    parse_instant,
)

_DAY = click.DateTime(formats=["%Y-%m-%d"])
_SHARE = click.FloatRange(0.0, 1.0)


def _now(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO date or date-time (2026-11-01, 2026-11-01T09:30:00Z)"
        ) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--client-id", default=DEFAULT_CLIENT_ID, show_default=True)
@click.option("--client-secret", default=DEFAULT_CLIENT_SECRET, show_default=True)
@click.option("--scopes", default="api", show_default=True, help="Scopes the client may request.")
@click.option("--seed", default=42, show_default=True, type=int, help="Drives all data and faults.")
@click.option("--cases", default=20_000, show_default=True, type=click.IntRange(0))
@click.option("--claims", default=5_000, show_default=True, type=click.IntRange(0),
              help="Rows of the Claims entity set.")  # fmt: skip
@click.option("--flavor", type=click.Choice(["bizagi", "standard"]), default="bizagi",
              show_default=True,
              help="Answer as Bizagi does, or as a generic OData v4 service.")  # fmt: skip
@click.option("--start", type=_DAY, default="2024-01-01", show_default=True,
              help="First day of the case history (UTC).")  # fmt: skip
@click.option("--end", type=_DAY, default=None, help="Day the history stops at (default: today).")
@click.option("--now", default=None, metavar="INSTANT", callback=_now,
              help="Serve the world as it stands at this instant: an ISO date (its midnight) or "
                   "date-time, UTC unless it carries an offset. Default: the wall clock, but not "
                   "past --end. Past --end, new cases keep arriving.")  # fmt: skip
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
    clock = f"{emulated.ds.now_instant:%Y-%m-%dT%H:%M:%SZ}"
    click.echo(
        f"Generated {emulated.ds.case_count:,} cases in {time.perf_counter() - began:.1f} s "
        f"(the world at {clock})",
        err=True,
    )
    if export_truth is not None:
        from bizagi_etl.emulator.truth import export_truth as export

        counts = export(emulated.ds, export_truth)
        for name, rows in counts.items():
            click.echo(f"{name:16} {rows:>10,} rows")
        click.echo(f"Ground truth at {clock} written to {export_truth}")
        return
    base = f"http://{host}:{port}"
    face = " (standard OData v4 flavour)" if config.flavor == "standard" else ""
    click.echo(f"Bizagi emulator on {base}{face}")
    click.echo(f"  base URL       {base}")
    click.echo(f"  token URL      {base}/oauth2/server/token")
    click.echo(f"  client id      {config.client_id}")
    click.echo(f"  client secret  {config.client_secret}")
    click.echo(f"  clock          {clock}")
    click.echo("Press Ctrl+C to stop.")
    try:
        serve_forever(emulated, host, port)
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises the signal
        click.echo("Emulator stopped.")


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
