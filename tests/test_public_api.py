"""The package's public surface, and the rule that the library never imports Dagster."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import bizagi_etl


def test_all_is_exactly_the_public_names():
    public = {n for n in vars(bizagi_etl) if not n.startswith("_") and not _is_module(n)}
    assert set(bizagi_etl.__all__) - {"__version__"} == public
    for name in bizagi_etl.__all__:
        assert getattr(bizagi_etl, name) is not None


def _is_module(name: str) -> bool:
    return type(getattr(bizagi_etl, name)).__name__ == "module"


def test_the_library_never_imports_dagster():
    modules = [m.name for m in pkgutil.walk_packages(bizagi_etl.__path__, "bizagi_etl.")]
    assert "bizagi_etl.emulator.app" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'dagster'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
