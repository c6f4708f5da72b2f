"""What the Dagster tests share: the code location's definitions, loaded without the user's
streams file, and the resources that point a run at an emulator and a temporary folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from bizagi_etl.emulator import EmulatorServer
from dagster_project.definitions import defs
from dagster_project.defs.resources import BizagiResource, LakehouseResource


def definitions() -> dg.Definitions:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("BIZAGI_STREAMS_FILE", raising=False)
        return defs()


def resources(server: EmulatorServer, folder: Path, **bizagi: Any) -> dict[str, Any]:
    """``bizagi`` on the emulator (1,000-row pages unless told), ``lakehouse`` in ``folder``."""
    return {
        "bizagi": BizagiResource(
            base_url=server.base_url,
            client_id=server.client_id,
            client_secret=server.client_secret,
            page_size=bizagi.pop("page_size", 1000),
            **bizagi,
        ),
        "lakehouse": LakehouseResource(
            lake_root=str(folder / "lake"), warehouse_path=str(folder / "w.duckdb")
        ),
    }
