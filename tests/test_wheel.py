"""The wheel holds everything the program needs: built, installed in a fresh venv, run there.

Slow (about a minute, most of it pip installing into a fresh venv), so ``make test`` deselects it
and ``.ci/run`` runs it on its own: ``.venv/bin/pytest -m slow``.

How, and why this way:

* The wheel is built with ``pip wheel --no-deps`` (no new dependency) from a copy of the
  working tree, never in place: pip builds in-tree, and setuptools leaves ``build/lib`` behind
  without cleaning it, so a module deleted from the source could still ride along in the next
  wheel and hide exactly what this test looks for. The copy also keeps parallel builds apart.
* The fresh venv is a plain ``python -m venv`` and the wheel is installed with its
  dependencies from the index, as a user does: about 40 s (on CI, pip's cache from make's own
  install serves the downloads). ``--system-site-packages`` would see the repository's editable
  install. A ``.pth`` pointing at the project venv's site-packages would not (the editable
  finder hangs on a ``.pth`` there, which is then never run), but it would skip proving that
  the wheel's declared dependencies resolve and install; not worth the seconds. The tests
  assert the modules run from the fresh venv's site-packages and are not an editable install.
* Everything in the fresh venv runs from an empty folder with ``PYTHONPATH`` and its kin,
  ``VIRTUAL_ENV`` and ``BIZAGI_*`` removed from the environment: nothing of the repository is
  on its path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from bizagi_etl.demo import DEMO_QUERIES

# The timeout covers fixture setup too: a cold pip cache downloads every dependency.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bizagi_etl", "dagster_project")  # top-level packages, as [tool.setuptools] lists
SQL = sorted(REPO.glob("sql/*.sql"))
CASES = 2_000
SEED = 42
# Not the wheel's business: version control, virtualenvs, caches, build output, local data.
ROOT_ONLY = {".git", ".venv", "venv", "build", "dist", "bizagi-demo", "bizagi-data",
             ".mypy_cache", ".pytest_cache", ".ruff_cache"}  # fmt: skip
ANYWHERE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "*.egg-info", "*.duckdb", "*.duckdb.wal", ".tmp_dagster_home_*"
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _not_source(folder: str, names: list[str]) -> set[str]:
    ignored = set(ANYWHERE(folder, names))
    if Path(folder) == REPO:
        ignored |= ROOT_ONLY.intersection(names)
    return ignored


@dataclass(frozen=True)
class Venv:
    root: Path
    python: Path
    bin: Path


def _env() -> dict[str, str]:
    """The outer environment without anything that could put the repository on a path."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"}
    drop |= {"FORCE_COLOR", "DAGSTER_HOME"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("BIZAGI_")}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"  # rich's width when not on a terminal: no wrapped lines to parse
    return env


def _run(command: Sequence[object], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
    )
    return ANSI.sub("", result.stdout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / REPO.name
    shutil.copytree(REPO, source, ignore=_not_source, symlinks=True)
    dist = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, source]
    _ok(_run(command, cwd=dist, timeout=600))
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("fresh") / "venv"
    _ok(_run([sys.executable, "-m", "venv", root], cwd=root.parent, timeout=300))
    bin_dir = root / "bin"
    python = bin_dir / "python"
    _ok(_run([python, "-m", "pip", "install", "--quiet", wheel], cwd=root.parent, timeout=1000))
    return Venv(root, python, bin_dir)


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_wheel_holds_every_module_view_and_the_typing_marker(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(
            (archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")),
            "",
        )
    assert SQL, "no views in sql/ to ship"
    wanted = {f"bizagi_etl/sql/{path.name}" for path in SQL}
    wanted |= {"bizagi_etl/sql/__init__.py", "bizagi_etl/py.typed", "dagster_project/__init__.py"}
    wanted |= {f"bizagi_etl/{sub}/__init__.py" for sub in ("connector", "pipeline", "emulator")}
    # Packages are listed in pyproject.toml, not found: every module of the source must be in.
    for top in PACKAGES:
        wanted |= {path.relative_to(REPO).as_posix() for path in (REPO / top).rglob("*.py")}
    missing = sorted(wanted - names)
    assert not missing, f"the wheel lacks {missing}"
    tops = {name.split("/", 1)[0] for name in names}
    strays = sorted(t for t in tops if t not in PACKAGES and not t.endswith(".dist-info"))
    assert not strays, f"the wheel installs more top-level names than its packages: {strays}"
    assert re.search(r"^bizagi-etl\s*=\s*bizagi_etl\.cli:program$", entry_points, re.MULTILINE)


def test_installed_modules_come_from_the_wheel_not_the_repository(venv: Venv, empty: Path) -> None:
    probe = (
        "import json, sys, importlib.metadata as md, importlib.resources as r\n"
        "import bizagi_etl, bizagi_etl.sql, dagster_project\n"
        "dist = md.distribution('bizagi-etl')\n"
        "print(json.dumps({'files': [bizagi_etl.__file__, bizagi_etl.sql.__file__,"
        " dagster_project.__file__], 'path': sys.path,"
        " 'direct_url': json.loads(dist.read_text('direct_url.json') or '{}'),"
        " 'sql': sorted(p.name for p in r.files('bizagi_etl.sql').iterdir())}))\n"
    )
    found = json.loads(_ok(_run([venv.python, "-I", "-c", probe], cwd=empty, timeout=120)))
    site = next(venv.root.glob("lib/python3*/site-packages")).resolve()
    for file in found["files"]:
        assert Path(file).resolve().is_relative_to(site), file
        assert not Path(file).resolve().is_relative_to(REPO), file
    assert not any(Path(p).resolve().is_relative_to(REPO) for p in found["path"] if p)
    assert found["direct_url"].get("dir_info", {}).get("editable") is not True
    assert "archive_info" in found["direct_url"], found["direct_url"]  # installed from a file
    assert {p.name for p in SQL} <= set(found["sql"])


def test_installed_demo_lands_the_cases_and_its_views_answer(
    venv: Venv, empty: Path, tmp_path: Path
) -> None:
    command = [venv.bin / "bizagi-etl", "demo", "--cases", CASES, "--seed", SEED]
    output = _ok(_run(command, cwd=empty, timeout=600))

    window = re.search(r"([\d,]+) cases from (\d{4}-\d\d-\d\d) to (\d{4}-\d\d-\d\d)", output)
    assert window, output
    assert int(window[1].replace(",", "")) == CASES
    start, end = window[2], window[3]
    printed = re.search(r"bizagi\.cases\s+([\d,]+) rows", output)
    assert printed, output
    # Each of the demo's three queries over the views printed at least one row.
    titles = [title for title, _ in DEMO_QUERIES]
    for title, following in zip(titles, [*titles[1:], "Try your own"], strict=True):
        assert title in output, output
        assert following in output, output
        block = output.split(title, 1)[1].split(following, 1)[0]
        rows = [line for line in block.splitlines() if re.match(r"^ {4}\S", line)]
        assert rows, f"the query {title!r} answered no rows:\n{block}"

    # What the installed emulator says it serves for the same settings and window.
    truth = tmp_path / "truth"
    command = [venv.bin / "bizagi-etl", "emulator", "--cases", CASES, "--seed", SEED,
               "--start", start, "--end", end, "--export-truth", truth]  # fmt: skip
    _ok(_run(command, cwd=empty, timeout=300))

    db = empty / "bizagi-demo" / "warehouse.duckdb"
    assert db.is_file(), sorted(p.name for p in empty.rglob("*"))
    with duckdb.connect(str(db), read_only=True) as con:

        def one(sql: str) -> int:
            row = con.execute(sql).fetchone()
            assert row is not None, sql
            return int(row[0])

        def truth_rows(name: str) -> int:
            return one(f"SELECT count(*) FROM read_parquet('{truth / name}.parquet')")

        views = {
            f"{schema}.{name}"
            for schema, name in con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_type = 'VIEW'"
            ).fetchall()
        }
        declared = {
            match.lower()
            for path in SQL
            for match in re.findall(
                r"CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+([\w.]+)", path.read_text(), re.IGNORECASE
            )
        }
        assert declared, "no CREATE VIEW found in sql/"
        assert declared <= views, f"views of sql/ missing: {sorted(declared - views)}"
        for view in ("cases_per_process_day", "case_sla", "open_workitems"):
            assert one(f"SELECT count(*) FROM analytics.{view}") > 0, view

        cases = one("SELECT count(*) FROM bizagi.cases")
        assert cases == int(printed[1].replace(",", "")) == truth_rows("cases") == CASES
        assert one("SELECT sum(cases) FROM analytics.cases_per_process_day") == cases
        assert one("SELECT count(*) FROM analytics.case_sla") == cases
        assert one("SELECT count(*) FROM bizagi.case_parameters") == truth_rows("case_parameters")
        assert one("SELECT count(*) FROM bizagi.processes") == truth_rows("processes")


def test_installed_code_location_loads(venv: Venv, empty: Path) -> None:
    """What ``dagster dev -m dagster_project.definitions`` loads, with no pyproject.toml around."""
    command = [venv.bin / "dagster", "definitions", "validate", "-m", "dagster_project.definitions"]
    result = _run(command, cwd=empty, timeout=300)
    _ok(result)
    assert "Validation successful" in ANSI.sub("", result.stdout + result.stderr)
