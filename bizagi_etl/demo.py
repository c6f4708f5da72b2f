"""``bizagi-etl demo``: the whole pipeline offline, emulator -> lake -> warehouse -> views.

Loaded by the CLI only when this command runs: it is the one command that needs both the
emulator and the pipeline.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click

from bizagi_etl.connector import BizagiClient, BizagiSettings, Secret
from bizagi_etl.console import run_and_report
from bizagi_etl.emulator import EmulatorConfig, EmulatorServer
from bizagi_etl.pipeline import Catalog, PipelineSettings, Warehouse
from bizagi_etl.report import out

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


@click.command()
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bizagi-demo"), show_default=True,
              help="Where the lake and the warehouse are left.")  # fmt: skip
@click.option("--cases", default=20_000, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=42, show_default=True, type=int)
def demo(folder: Path, cases: int, seed: int) -> None:
    """Run the whole pipeline offline: emulator -> lake -> warehouse -> views."""
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
            where = PipelineSettings(lake=str(lake_root), warehouse=str(db))
            run_and_report(client, Catalog.load(), names, where, True, config.start, config.end)
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
    out.print(f"\nTry your own: python -c \"import duckdb; "
              f"print(duckdb.connect('{db}', read_only=True).sql('{sql}'))\"")  # fmt: skip
