"""Entry point of the code location: everything under ``dagster_project/defs``."""

import importlib
from pathlib import Path

import dagster as dg

from bizagi_etl.pipeline import use_system_allocator

use_system_allocator()  # before any asset allocates: Arrow's pool is the process's choice


@dg.definitions
def defs() -> dg.Definitions:
    # From the module itself, not from [tool.dg] in pyproject.toml (which load_from_defs_folder
    # looks for above this file): an installed wheel has no pyproject.toml.
    return dg.ComponentTree.from_module(
        defs_module=importlib.import_module("dagster_project.defs"),
        project_root=Path(__file__).parent.parent,
    ).build_defs()
