"""``python -m loadtests.naive --port P --data DIR --db URL``: run the naive baseline server."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from loadtests.naive.server import PooledServer
from loadtests.naive.store import create_schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.naive", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port (printed on start)")
    parser.add_argument("--data", type=Path, required=True, help="where uploads and their renditions go")
    parser.add_argument("--db", required=True, help="PostgreSQL URL; the naive_* tables are created there")
    parser.add_argument("--workers", type=int, default=4, help="the fixed pool of synchronous workers")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds a stop waits for running requests")
    args = parser.parse_args(argv)

    create_schema(args.db)
    server = PooledServer((args.host, args.port), args.db, args.data, args.workers)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="naive-accept")
    serving.start()
    print(f"naive listening on http://{args.host}:{server.server_address[1]} workers={args.workers}", flush=True)
    stop.wait()
    server.shutdown()
    serving.join()
    finished = server.stop(args.grace)
    print("naive stopped" if finished else "naive stopped; requests still running were abandoned", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
