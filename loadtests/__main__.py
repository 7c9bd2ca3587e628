"""``python -m loadtests <benchmark> [--json FILE]``: benchmarks that print JSON figures.

Each benchmark starts the processes it measures on loopback and stops them when done.
"""

from __future__ import annotations

import argparse
import signal
import sys

from loadtests import fanout, feed, media, staging, uploads
from loadtests.crash import run as crash


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests")
    sub = parser.add_subparsers(dest="benchmark", required=True)
    for name, module in (("fanout", fanout), ("uploads", uploads), ("staging", staging), ("media", media),
                         ("feed", feed), ("crash", crash)):
        command = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        command.add_argument("--json", help="also write the JSON figures to this file")
        module.add_arguments(command)
        command.set_defaults(run=module.main)
    args = parser.parse_args(argv)
    # A timeout's SIGTERM unwinds like Ctrl-C, so the cluster stops the servers it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
