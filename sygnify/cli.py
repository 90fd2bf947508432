"""The ``sygnify`` command line: ``sygnify demo``, ``sygnify plugins``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sygnify import __version__
from sygnify.plugins import GROUPS, Registry

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from sygnify.demo import run_demo

    if args.rows < 1:
        print("sygnify demo: --rows must be at least 1", file=sys.stderr)
        return 2
    run_demo(Path(args.dir), rows=args.rows, batch_size=args.batch_size)
    return 0


def missing_packages(extra: str) -> list[str]:
    """The distributions sygnify's ``extra`` needs that are not installed (from sygnify's metadata).

    >>> missing_packages("no-such-extra")
    []
    """
    import importlib.metadata
    import re

    try:
        requirements = importlib.metadata.requires("sygnify") or []
    except importlib.metadata.PackageNotFoundError:  # a plain checkout, not installed
        return []
    missing: list[str] = []
    for requirement in requirements:
        name, _, marker = requirement.partition(";")
        if not re.search(rf"""extra\s*==\s*["']{re.escape(extra)}["']""", marker):
            continue
        distribution = re.split(r"[\s\[<>=!~;]", name.strip(), maxsplit=1)[0]
        if distribution == "sygnify":  # an extra made of other extras ("all")
            continue
        try:
            importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            missing.append(distribution)
    return missing


def _plugins(args: argparse.Namespace) -> int:
    # Built-ins come from sygnify.plugins.BUILTINS, third-party plugins from entry points.
    for kind, group in GROUPS.items():
        registry: Registry[object] = Registry(group, kind=kind)
        infos = registry.describe()
        print(f"{group} ({kind}s): {len(infos)}")
        for info in infos:
            extra = registry.extra(info.name)
            missing = missing_packages(extra) if extra else []
            status = f"  missing: pip install 'sygnify[{extra}]'" if missing else ""
            print(f"  {info.name:<22} {info.target}  [{info.distribution or '?'}]{status}")
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
    plugins = commands.add_parser("plugins", help="list plugins of each kind and missing extras")
    plugins.set_defaults(handler=_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    from sygnify.errors import SygnifyError

    try:
        return int(args.handler(args))
    except BrokenPipeError:
        # The reader went away (``sygnify plugins | head``): stop quietly, as the Python docs advise,
        # pointing stdout at devnull so the interpreter's final flush does not fail again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except SygnifyError as exc:
        print(f"sygnify {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
