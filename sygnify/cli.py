"""The ``sygnify`` command line: ``sygnify demo``, ``sygnify plugins``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sygnify import __version__
from sygnify.plugins import GROUPS, discover

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from sygnify.demo import run_demo

    if args.rows < 1:
        print("sygnify demo: --rows must be at least 1", file=sys.stderr)
        return 2
    run_demo(Path(args.dir), rows=args.rows, batch_size=args.batch_size)
    return 0


def _plugins(args: argparse.Namespace) -> int:
    for kind, group in GROUPS.items():
        plugins = discover(group)
        print(f"{group} ({kind}s): {len(plugins)}")
        for info in sorted(plugins.values(), key=lambda info: info.name):
            print(f"  {info.name:<22} {info.target}  [{info.distribution or '?'}]")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sygnify", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sygnify {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run an end-to-end job on synthetic data, locally")
    demo.add_argument(
        "--dir", default="sygnify-demo", help="where to write the data (default: ./sygnify-demo)"
    )
    demo.add_argument("--rows", type=int, default=1_000_000, help="transactions to generate")
    demo.add_argument("--batch-size", type=int, default=100_000, help="rows per streamed batch")
    demo.set_defaults(handler=_demo)
    plugins = commands.add_parser("plugins", help="list installed plugins per entry-point group")
    plugins.set_defaults(handler=_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    from sygnify.errors import SygnifyError

    try:
        return int(args.handler(args))
    except SygnifyError as exc:
        print(f"sygnify {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
