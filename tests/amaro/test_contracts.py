"""The architecture's import contracts (pyproject.toml, ``[tool.importlinter]``) hold, and they bite:
a copy of the source tree with one forbidden import added breaks the contract that forbids it.

Also: no module outside the composition root reads the environment (settings are read once, by
``amaro``, and passed down)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("amaro", "protocol", "realtime", "feed", "media", "nara", "loadtests")
#: Everything that is not the composition root: the parts, the SDK and the load-test harness.
OUTSIDE_ROOT = ("protocol", "realtime", "feed", "media", "nara", "loadtests", "clients/python/amaro_client")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=cwd, env={
        "PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin", "NO_COLOR": "1",
    }, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages and the contracts, flat in one folder (the SDK beside the rest)."""
    dest = tmp_path_factory.mktemp("tree")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copytree(ROOT / "clients/python/amaro_client", dest / "amaro_client", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_the_contracts_hold_on_the_source_tree() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "source", "contract", "edge"), [
    ("media/_probe.py", "import nara.job\n", "the parts never import each other", "media._probe -> nara.job"),
    ("realtime/_probe.py", "from feed import access\n", "the parts never import each other",
     "realtime._probe -> feed.access"),
    ("protocol/_probe.py", "import asyncio\n", "protocol is pure", "protocol._probe -> asyncio"),
    ("protocol/_probe.py", "import realtime.keys\n", "protocol is pure", "protocol._probe -> realtime.keys"),
    ("nara/_probe.py", "from amaro import settings\n", "nothing imports the composition root",
     "nara._probe -> amaro.settings"),
    ("amaro/infra/_probe.py", "import media.jobs\n", "amaro.infra imports no part", "amaro.infra._probe -> media.jobs"),
    ("amaro_client/_probe.py", "import realtime.hub\n", "the Python SDK stands on the protocol alone",
     "amaro_client._probe -> realtime.hub"),
])
def test_a_forbidden_import_breaks_its_contract(tree_copy: Path, module: str, source: str, contract: str,
                                                 edge: str) -> None:
    clean = lint_imports(tree_copy)
    assert clean.returncode == 0, clean.stdout + clean.stderr  # the copy alone breaks nothing
    probe = tree_copy / module
    probe.write_text(source)
    try:
        broken = lint_imports(tree_copy)
    finally:
        probe.unlink()
    assert broken.returncode != 0
    report = broken.stdout
    assert f"{contract}" in report and "BROKEN" in report.split(contract, 1)[1].splitlines()[0], report
    assert edge in report, report


def _environment_reads(path: Path) -> list[int]:
    """Lines of ``path`` that read the process environment: ``os.environ``, ``os.getenv``,
    ``os.environb`` or ``from os import environ``."""
    tree = ast.parse(path.read_text(), str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv", "getenvb") \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" \
                and any(a.name in ("environ", "environb", "getenv", "getenvb") for a in node.names):
            lines.append(node.lineno)
    return lines


def _program_entry(path: Path, name: str) -> range:
    """The lines of function ``name`` in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    found = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return range(found.lineno, (found.end_lineno or found.lineno) + 1)


def test_nothing_outside_the_composition_root_reads_the_environment() -> None:
    # The SDK's command line is a program of its own: its console script's entry is its root.
    cli = ROOT / "clients/python/amaro_client/cli.py"
    allowed = {f"{cli.relative_to(ROOT)}:{line}" for line in _program_entry(cli, "entry")}
    found = {f"{path.relative_to(ROOT)}:{line}"
             for folder in OUTSIDE_ROOT for path in sorted((ROOT / folder).rglob("*.py"))
             for line in _environment_reads(path)} - allowed
    assert not found, f"read the environment outside amaro/: {sorted(found)}"


def test_the_environment_check_sees_each_way_of_reading(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom os import environ\na = os.environ['X']\nb = os.getenv('Y')\n")
    assert _environment_reads(probe) == [2, 3, 4]
