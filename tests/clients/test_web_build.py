"""The web app hub nodes serve is committed as a build (clients/web/dist). It must be the build of
the sources as they are: building again into another folder gives the same files, byte for byte,
and the app's JSDoc types check. Node.js and npm are required: a missing one fails here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
WEB = CLIENTS / "web"


def _installed(package: Path, npm: str) -> None:
    """``npm ci`` in ``package`` unless its node_modules matches its lock already."""
    installed = package / "node_modules" / ".package-lock.json"
    lock = package / "package-lock.json"
    if installed.is_file() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(package)],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"npm ci in {package.name} failed:\n{done.stdout}\n{done.stderr}")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_the_committed_web_app_is_the_build_of_its_sources(tmp_path: Path) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("Node.js (node and npm) is required to check the web app's build: install Node.js 20+")
    for package in (CLIENTS / "js", WEB):
        _installed(package, npm)
    out = tmp_path / "dist"
    built = subprocess.run([node, str(WEB / "build.mjs"), str(out)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    fresh, committed = _tree(out), _tree(WEB / "dist")
    assert sorted(fresh) == sorted(committed), "clients/web/dist lists other files than a build: run `make web`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"clients/web/dist is not the build of the sources ({stale}): run `make web`"
    checked = subprocess.run([npm, "run", "--silent", "--prefix", str(WEB), "check"], capture_output=True, text=True,
                             timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
