"""Entry point of the code location: everything under ``dagster_project/defs``."""

from pathlib import Path

import dagster as dg

from bizagi_etl.pipeline import use_system_allocator

use_system_allocator()  # before any asset allocates: Arrow's pool is the process's choice


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
