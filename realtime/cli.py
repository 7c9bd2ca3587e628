"""``amaro``: one command, one subcommand per role.

- ``amaro dev``: the whole platform on one machine with no external services (embedded Redis and
  PostgreSQL in ``--data-dir``), a hub and a NARA worker as child processes; Ctrl-C stops it all.
- ``amaro hub``: a hub node (sockets, auth API, uploads unless ``AMARO_HUB_UPLOADS=0``).
- ``amaro ingest``: an upload-only node, scaled apart from hubs.
- ``amaro worker``: a NARA-1r media worker.
- ``amaro migrate``: apply pending schema migrations.
- ``amaro keys rotate|rewrap``: media encryption key rotation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import structlog

from realtime.config import ConfigError, Settings
from realtime.logs import configure_logging

log = structlog.get_logger("amaro")


def run_async(main: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main)
    return uvloop.run(main)


def dev_token_secret(data_dir: Path) -> str:
    """A per-data-folder secret for development, created once with owner-only permissions."""
    path = data_dir / "token_secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


def load_settings() -> Settings:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"amaro: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_format, settings.log_level)
    if not settings.redis_url or not settings.database_url:
        print("amaro: AMARO_REDIS_URL and AMARO_DATABASE_URL are required (or run `amaro dev`)",
              file=sys.stderr)
        raise SystemExit(2)
    if not settings.token_secret:
        print("amaro: AMARO_TOKEN_SECRET is required", file=sys.stderr)
        raise SystemExit(2)
    return settings


async def migrate_main(settings: Settings) -> int:
    import asyncpg

    from realtime.migrations import migrate

    conn = await asyncpg.connect(settings.database_url)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    log.info("migrations_done", applied=len(applied))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    return run_async(migrate_main(load_settings()))


def cmd_hub(args: argparse.Namespace) -> int:
    from realtime.serve import serve_hub

    return run_async(serve_hub(load_settings()))


def cmd_ingest(args: argparse.Namespace) -> int:
    from realtime.serve import serve_ingest

    return run_async(serve_ingest(load_settings()))


def cmd_worker(args: argparse.Namespace) -> int:
    from realtime.serve import serve_worker

    return run_async(serve_worker(load_settings()))


def cmd_keys(args: argparse.Namespace) -> int:
    from realtime.serve import keys_main

    return run_async(keys_main(load_settings(), args.action))


def cmd_dev(args: argparse.Namespace) -> int:
    from realtime.dev import run_dev

    return run_dev(data_dir=Path(args.data_dir), host=args.host, port=args.port, worker=not args.no_worker)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amaro", description="Amaro Than realtime platform")
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run the whole platform locally with embedded Redis and PostgreSQL")
    dev.add_argument("--data-dir", default=os.environ.get("AMARO_DATA_DIR", ".amaro"))
    dev.add_argument("--host", default=os.environ.get("AMARO_HOST", "127.0.0.1"))
    dev.add_argument("--port", type=int, default=int(os.environ.get("AMARO_PORT", "8000")))
    dev.add_argument("--no-worker", action="store_true", help="do not start a NARA worker")
    dev.set_defaults(func=cmd_dev)
    sub.add_parser("hub", help="run a hub node").set_defaults(func=cmd_hub)
    sub.add_parser("ingest", help="run an upload-only node").set_defaults(func=cmd_ingest)
    sub.add_parser("worker", help="run a NARA-1r media worker").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply pending schema migrations").set_defaults(func=cmd_migrate)
    keys = sub.add_parser("keys", help="media encryption keys")
    keys.add_argument("action", choices=["rotate", "rewrap"])
    keys.set_defaults(func=cmd_keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
