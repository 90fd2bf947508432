"""Reproduce one fuzz case, or run a whole campaign, from the command line.

Reproduce (in this process, so a crash shows as it would in an application)::

    python -m tests.fuzz --seed 1 --case 17 --op stream
    python -m tests.fuzz --regression jsonl-null-line --op process:chunked:skip
    python -m tests.fuzz --seed 1 --case 17 --write /tmp/case17   # just the files

Campaign (every operation in worker subprocesses, the report the test prints)::

    python -m tests.fuzz --seed 1 --cases 500 [--timeout 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import sys
import tempfile
from pathlib import Path

from tests.fuzz.generators import GENERATORS, Case, case_at, generate, regression_cases
from tests.fuzz.harness import check, report, run_cases
from tests.fuzz.worker import OPERATIONS, run


def _write(case: Case, root: Path) -> None:
    for path, data in case.files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--case", type=int, help="reproduce case CASE of SEED")
    parser.add_argument("--regression", help="reproduce the named regression case")
    parser.add_argument("--op", default="*", help=f"one of {', '.join(OPERATIONS)}, or * for all")
    parser.add_argument("--write", type=Path, help="write the case's files to this folder and stop")
    parser.add_argument("--cases", type=int, default=2 * len(GENERATORS), help="campaign size")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    if args.case is None and args.regression is None:
        outcomes = run_cases(generate(args.seed, args.cases), timeout=args.timeout, workers=args.workers)
        failures = check(outcomes)
        print(report(outcomes, failures))
        return 1 if failures else 0

    if args.regression is not None:
        case = next(c for c in regression_cases() if c.name == args.regression)
    else:
        case = case_at(args.seed, args.case)
    print(f"{case.name}: source {case.source!r}, true rows {case.rows}, {case.size()} bytes {case.note}")
    if args.write is not None:
        _write(case, args.write)
        print(f"written under {args.write}")
        return 0
    # A hang prints every thread's stack and exits, as the harness's timeout would have stopped it.
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    with tempfile.TemporaryDirectory(prefix="sygnify-fuzz-") as root:
        _write(case, Path(root))
        for op in OPERATIONS if args.op == "*" else [args.op]:
            print(op, json.dumps(run(root, case.source, op)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
