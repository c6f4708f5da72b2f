"""The house's rules, checked: three layers with declared APIs, imports flowing one way, no
private name used outside its module, and a CLI that starts without loading what it won't use."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from bizagi_etl.pipeline.lake import Lake

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["bizagi_etl", "bizagi_etl.connector", "bizagi_etl.pipeline", "bizagi_etl.emulator"]
# the program's own modules, which no layer of the library imports
APP = ("bizagi_etl.cli", "bizagi_etl.console", "bizagi_etl.demo", "bizagi_etl.handover",
       "bizagi_etl.report")  # fmt: skip
# layer -> what it must never import
FORBIDDEN = {
    "bizagi_etl/connector": ("bizagi_etl.pipeline", "bizagi_etl.emulator", *APP, "dagster"),
    "bizagi_etl/pipeline": ("bizagi_etl.emulator", *APP, "dagster"),
    "bizagi_etl/emulator": ("bizagi_etl.pipeline", *APP, "dagster"),
    "bizagi_etl": ("dagster", "dagster_project"),
}  # fmt: skip


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in a file, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_every_declared_name_exists(package):
    module = importlib.import_module(package)
    assert module.__all__, f"{package} declares no public API"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


@pytest.mark.parametrize("package", ["bizagi_etl.emulator"])
def test_eager_packages_declare_exactly_what_they_import(package):
    module = importlib.import_module(package)
    public = {n for n, v in vars(module).items()
              if not n.startswith("_") and type(v).__name__ != "module"}  # fmt: skip
    assert public <= set(module.__all__)


@pytest.mark.parametrize("package", ["bizagi_etl", "bizagi_etl.pipeline", "bizagi_etl.connector"])
def test_no_lazy_export_is_shadowed_by_a_submodule(package):
    """Importing bizagi_etl.pipeline.run would set the package's attribute `run` to the
    module, hiding a function of that name: exports and module names must differ (but for a
    submodule exported as itself, as the connector's odata)."""
    import pkgutil

    module = importlib.import_module(package)
    submodules = {m.name for m in pkgutil.iter_modules(module.__path__)}
    shadowed = {n for n in set(module.__all__) & submodules if getattr(module, n).__name__
                != f"{package}.{n}"}  # fmt: skip
    assert shadowed == set()


def test_an_unknown_name_of_a_lazy_package_is_an_attribute_error():
    import bizagi_etl.pipeline

    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = bizagi_etl.pipeline.Nothing


@pytest.mark.parametrize("layer", list(FORBIDDEN))
def test_imports_flow_one_way(layer):
    sources = _sources(layer)  # "bizagi_etl": the whole library
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sources
        for module, _ in _imports(path)
        if module.startswith(FORBIDDEN[layer])
    ]
    assert wrong == []


def test_no_private_name_is_imported_across_modules():
    wrong = [
        f"{path.relative_to(ROOT)}: from {module} import {name}"
        for path in _sources("bizagi_etl", "dagster_project", "benchmarks", "tests")
        for module, names in _imports(path)
        if module.startswith(("bizagi_etl", "dagster_project"))
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert wrong == []


def test_no_private_attribute_of_another_object_is_used_in_the_code():
    """``x._name`` only on ``self``, ``cls`` or ``other`` (of the same class): another
    object's internals stay its own. Third-party modules are their maintainers' business."""
    wrong = []
    for path in _sources("bizagi_etl", "dagster_project"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        allowed = {"self", "cls", "other"} | {
            (alias.asname or alias.name).split(".")[0]
            for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
            if not (getattr(node, "module", None) or alias.name).startswith("bizagi_etl")
        }  # fmt: skip
        wrong += [
            f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and _private(node.attr)
            and not (isinstance(node.value, ast.Name) and node.value.id in allowed)
        ]  # fmt: skip
    assert wrong == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_what_dagster_project_uses_is_declared_public():
    wrong = []
    for path in _sources("dagster_project"):
        for module, names in _imports(path):
            if not module.startswith("bizagi_etl"):
                continue
            declared = getattr(importlib.import_module(module), "__all__", [])
            wrong += [f"{path.relative_to(ROOT)}: {module}.{n}" for n in names if n not in declared]
    assert wrong == []


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=ROOT)  # fmt: skip
    return {m.split(".")[0] if not m.startswith("bizagi_etl") else m
            for m in result.stdout.split()}  # fmt: skip


def test_the_cli_starts_without_the_emulator_or_the_data_stack():
    loaded = _loaded_after("import bizagi_etl.cli")
    heavy = {"bizagi_etl.emulator", "uvicorn", "starlette", "pyarrow", "duckdb", "pandas", "httpx"}
    assert loaded & heavy == set()


def test_extracting_does_not_load_duckdb_pandas_or_the_emulator():
    loaded = _loaded_after("import bizagi_etl.pipeline.extract")
    assert loaded & {"duckdb", "pandas", "bizagi_etl.emulator", "dagster"} == set()


def test_the_library_never_imports_dagster():
    import pkgutil

    import bizagi_etl

    modules = [m.name for m in pkgutil.walk_packages(bizagi_etl.__path__, "bizagi_etl.")]
    assert "bizagi_etl.emulator.app" in modules
    loaded = _loaded_after(f"import importlib\nfor m in {modules!r}: importlib.import_module(m)")
    assert "dagster" not in loaded


def test_an_extraction_run_loads_neither_pandas_nor_duckdb(small_server, tmp_path):
    """The CLI extracting a day of cases: pyarrow's probe for pandas is deferred and the
    warehouse is never opened, so neither lands in the process (about 60 MB between them)."""
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('LOADED', sorted(m for m in ('pandas', 'duckdb') "
        "if m in sys.modules)))\n"
        "from bizagi_etl.cli import main\n"
        "main(['extract', 'cases', '--start', '2025-06-01', '--end', '2025-06-02', '--no-load'])\n"
    )
    env = {"PATH": "/usr/bin:/bin", "BIZAGI_BASE_URL": small_server.base_url,
           "BIZAGI_CLIENT_ID": small_server.client_id,
           "BIZAGI_CLIENT_SECRET": small_server.client_secret,
           "BIZAGI_LAKE": str(tmp_path / "lake")}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout, result.stdout
    assert list((tmp_path / "lake" / "cases").glob("day=2025-06-01/*.parquet"))


def test_a_run_that_loads_the_warehouse_still_leaves_pandas_out(small_server, tmp_path):
    """The load binds no parameter (DuckDB's Python client imports pandas, 46 MB, to check
    any), so a whole CLI run, lake, warehouse and views, holds duckdb but not pandas."""
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('LOADED', sorted(m for m in ('pandas', 'duckdb') "
        "if m in sys.modules)))\n"
        "from bizagi_etl.cli import main\n"
        "main(['extract', 'cases', '--start', '2025-06-01', '--end', '2025-06-15'])\n"
    )
    env = {"PATH": "/usr/bin:/bin", "BIZAGI_BASE_URL": small_server.base_url,
           "BIZAGI_CLIENT_ID": small_server.client_id,
           "BIZAGI_CLIENT_SECRET": small_server.client_secret,
           "BIZAGI_LAKE": str(tmp_path / "lake"),
           "BIZAGI_WAREHOUSE": str(tmp_path / "w.duckdb")}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "LOADED ['duckdb']" in result.stdout, result.stdout
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        (landed,) = con.execute("SELECT count(*) FROM bizagi.cases").fetchone()
        (viewed,) = con.execute("SELECT sum(cases) FROM analytics.cases_per_process_day").fetchone()
    assert landed == viewed == Lake(tmp_path / "lake").rows("cases") > 0


def test_pandas_deferred_by_extraction_still_comes_when_asked_for():
    probe = (
        "import sys\n"
        "import pyarrow as pa\n"
        "from bizagi_etl.pipeline.frames import defer_pandas\n"
        "defer_pandas()\n"
        "assert 'pandas' not in sys.modules\n"
        "frame = pa.table({'a': [1, 2]}).to_pandas()\n"
        "print(type(frame).__name__, frame['a'].tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=ROOT, check=True)  # fmt: skip
    assert result.stdout.strip() == "DataFrame [1, 2]"
