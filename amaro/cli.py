"""``amaro``: one command, one subcommand per role.

- ``amaro dev``: the whole platform on one machine with no external services (embedded Redis and
  PostgreSQL in ``--data-dir``), a hub and a NARA worker as child processes; Ctrl-C stops it all.
- ``amaro hub``: a hub node (sockets, auth API, uploads unless ``AMARO_HUB_UPLOADS=0``).
- ``amaro ingest``: an upload-only node, scaled apart from hubs.
- ``amaro worker``: a NARA-1r media worker.
- ``amaro migrate``: apply pending schema migrations.
- ``amaro keys rotate|rewrap``: media encryption key rotation.
- ``amaro settings``: the settings table (README, Configuration), or ``--check`` this environment.
- ``amaro client ...``: the SDK's command line (``amaro-client``: log in, rooms, tail, send, upload).

Settings are read from the environment once, here, and checked before anything connects: a bad
value exits with status 2 and one line naming the variable and what it accepts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from amaro.logs import configure_logging
from amaro.settings import ROLES, Settings, load, markdown_table, role_help, unknown
from amaro.variables import SettingError

PROG = "amaro"


def version() -> str:
    try:
        return metadata.version("amaro-than")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def fail(message: str) -> NoReturn:
    print(f"{PROG}: {message}", file=sys.stderr)
    raise SystemExit(2)


def run_async(main: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main)
    return uvloop.run(main)


def read_settings() -> Settings:
    """The settings tree from this process's environment; exits 2 with one line on a bad value."""
    try:
        settings = load(os.environ)
    except SettingError as exc:
        fail(str(exc))
    for name in unknown(os.environ):
        print(f"{PROG}: warning: {name} is not a setting any role reads (README, Configuration)", file=sys.stderr)
    return settings


def require(settings: Settings, role: str) -> None:
    """What a role cannot start without, checked before it connects to anything."""
    services = settings.services
    if role in ("hub", "ingest", "worker") and not (services.redis_url and services.database_url):
        fail("AMARO_REDIS_URL and AMARO_DATABASE_URL must be set (or run `amaro dev`)")
    if role in ("migrate",) and not services.database_url:
        fail("AMARO_DATABASE_URL must be set")
    if role in ("hub", "ingest") and not settings.auth.token_secret:
        fail("AMARO_TOKEN_SECRET must be set")


def start(role: str) -> Settings:
    settings = read_settings()
    require(settings, role)
    configure_logging(settings.node.log_format, settings.node.log_level)
    return settings


def cmd_hub(args: argparse.Namespace) -> int:
    from amaro.roles import serve_hub

    return run_async(serve_hub(start("hub")))


def cmd_ingest(args: argparse.Namespace) -> int:
    from amaro.roles import serve_ingest

    return run_async(serve_ingest(start("ingest")))


def cmd_worker(args: argparse.Namespace) -> int:
    from amaro.roles import serve_worker

    return run_async(serve_worker(start("worker")))


def cmd_migrate(args: argparse.Namespace) -> int:
    from amaro.roles import migrate_main

    return run_async(migrate_main(start("migrate")))


def cmd_keys(args: argparse.Namespace) -> int:
    from amaro.roles import keys_main

    settings = start("keys")
    if args.action == "rewrap" and not settings.services.database_url:
        fail("AMARO_DATABASE_URL must be set")
    return run_async(keys_main(settings, args.action))


def cmd_dev(args: argparse.Namespace) -> int:
    from amaro.dev import run_dev

    settings = read_settings()
    node = settings.node
    node = replace(node, data_dir=Path(args.data_dir) if args.data_dir else node.data_dir,
                   host=args.host or node.host, port=node.port if args.port is None else args.port,
                   ws_port=node.ws_port if args.ws_port is None else args.ws_port)
    if node.port == node.ws_port:
        fail(f"the HTTP and socket ports must differ, both are {node.port}")
    settings = replace(settings, node=node)
    configure_logging(node.log_format, node.log_level)
    return run_dev(settings, worker=not args.no_worker)


def cmd_settings(args: argparse.Namespace) -> int:
    if args.check:
        read_settings()
        print("settings are valid")
        return 0
    print(markdown_table())
    return 0


def port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Amaro Than realtime platform")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(ROLES) + ",settings,client}")

    def role(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=summary, epilog=role_help(name),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    dev = role("dev", "run the whole platform locally: embedded Redis and PostgreSQL, a hub and a worker")
    dev.add_argument("--data-dir", help="data folder (default: AMARO_DATA_DIR or .amaro)")
    dev.add_argument("--host", help="listen address (default: AMARO_HOST or 127.0.0.1)")
    dev.add_argument("--port", type=port, help="HTTP port (default: AMARO_PORT or 8000)")
    dev.add_argument("--ws-port", type=port, help="socket port (default: AMARO_WS_PORT or 8001)")
    dev.add_argument("--no-worker", action="store_true", help="do not start a NARA worker")
    dev.set_defaults(func=cmd_dev)
    role("hub", "run a hub node: sockets, the HTTP APIs and (unless AMARO_HUB_UPLOADS=0) uploads"
         ).set_defaults(func=cmd_hub)
    role("ingest", "run an upload-only node").set_defaults(func=cmd_ingest)
    role("worker", "run a NARA-1r media worker").set_defaults(func=cmd_worker)
    role("migrate", "apply pending schema migrations").set_defaults(func=cmd_migrate)
    keys = role("keys", "media encryption keys: rotate (a new master key) or rewrap (every object onto the newest)")
    keys.add_argument("action", choices=["rotate", "rewrap"])
    keys.set_defaults(func=cmd_keys)
    settings = sub.add_parser("settings", help="print the settings table, or check this environment's values")
    settings.add_argument("--check", action="store_true", help="check the AMARO_* variables set here and exit")
    settings.set_defaults(func=cmd_settings)
    sub.add_parser("client", add_help=False, help="the platform as a user: `amaro client --help` (amaro-client)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["client"]:  # the SDK's own command line, as `amaro-client` runs it
        from amaro_client.cli import main as client_main

        return client_main(argv[1:], os.environ)
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
