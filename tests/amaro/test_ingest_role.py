"""``amaro ingest``: an upload-only node that keeps off the first CPU on a shared machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from amaro.infra.cpus import background_cpus, parse_cpus
from amaro.settings import Settings
from tests.conftest import free_port, node_env, wait_answering, with_node


def start(settings: Settings, tmp: Path, cpus: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    node = with_node(settings, node_id="ingest-test", port=port, ws_port=free_port(), data_dir=tmp,
                     log_level="warning")
    env = node_env(node, AMARO_INGEST_CPUS=cpus)
    log = (tmp / "ingest.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "amaro", "ingest"], env=env, stdout=log,
                            stderr=subprocess.STDOUT), port


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
async def test_ingest_serves_uploads_off_the_first_cpu(settings: Settings, tmp_path: Path) -> None:
    process, port = start(settings, tmp_path, "auto")
    try:
        await wait_answering(process, f"http://127.0.0.1:{port}/readyz", (tmp_path / "ingest.log").read_text)
        async with httpx.AsyncClient() as http:
            options = await http.options(f"http://127.0.0.1:{port}/uploads/")
        assert options.headers["tus-version"] == "1.0.0"
        expected = parse_cpus(background_cpus("auto"))
        threads = psutil.Process(process.pid).threads()
        assert threads and all(set(os.sched_getaffinity(t.id)) == expected for t in threads)
    finally:
        process.terminate()
        process.wait(20)


def test_a_malformed_cpu_list_stops_the_node_with_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    process, _ = start(settings, tmp_path, "0;1")
    assert process.wait(30) != 0
    assert "AMARO_INGEST_CPUS must be auto, all or a CPU list" in (tmp_path / "ingest.log").read_text()


def test_an_ingest_node_is_not_ready_once_it_drains(settings: Settings, tmp_path: Path) -> None:
    """``/readyz`` turns 503 when drain starts, so the balancer sends uploads elsewhere."""
    from starlette.testclient import TestClient

    from amaro.ingest import build_ingest_app, drain_ingest

    app = build_ingest_app(with_node(settings, node_id="ingest-drain", data_dir=tmp_path), background=False)
    with TestClient(app) as http:
        assert http.get("/readyz").status_code == 200
        http.portal.call(drain_ingest, app, 1.0)
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["node"] == "draining"
