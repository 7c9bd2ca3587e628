"""The Python SDK installs on its own: from its own project (clients/python) and the protocol's,
into an empty virtual environment, with nothing of the server."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_sdk_installs_alone_and_carries_only_itself(tmp_path: Path) -> None:
    # Built from copies: a build writes its scratch folders into the project it builds.
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT / "protocol", tmp_path / "protocol", ignore=ignore)
    shutil.copytree(ROOT / "clients/python", tmp_path / "sdk", ignore=ignore)
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheels,
        tmp_path / "protocol", tmp_path / "sdk")
    sdk = next(wheels.glob("amaro_client-*.whl"))
    with zipfile.ZipFile(sdk) as wheel:
        packages = {name.split("/")[0] for name in wheel.namelist() if not name.split("/")[0].endswith(".dist-info")}
        metadata = next(wheel.read(n).decode() for n in wheel.namelist() if n.endswith("METADATA"))
    assert packages == {"amaro_client"}
    requires = sorted(line.split(":", 1)[1].strip().split(">")[0].split("=")[0]
                      for line in metadata.splitlines() if line.startswith("Requires-Dist:"))
    assert requires == ["amaro-protocol", "websockets"]

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--find-links", wheels, "amaro-client")
    probe = ("import importlib.util as u, amaro_client, protocol; "
             "print(sorted(m for m in ('realtime', 'feed', 'media', 'nara', 'amaro', 'starlette', 'asyncpg') "
             "if u.find_spec(m)))")
    assert run(python, "-c", probe, cwd=tmp_path).strip() == "[]"
