"""Sends generated inputs through every reader in worker subprocesses and checks the invariants.

One worker subprocess (``tests.fuzz.worker``) runs the operations of many cases, one request
at a time; a worker that dies mid-request is a *crash* for that request (its signal and the
tail of its stderr are kept) and one that does not answer within ``timeout`` seconds is a
*hang*: both are killed and replaced by a fresh worker, so pytest itself never is.

The invariants (:func:`check`), per case:

- **crash**, **hang**: the worker died or did not answer;
- **raw exception**: an exception that is not a :class:`sygnify.errors.SygnifyError`;
- **invalid batch**: an Arrow batch, table or frame returned that fails ``validate(full=True)``;
- **row mismatch**: rows returned (for ``skip``/``dead_letter``: rows out plus rows skipped or
  dead-lettered) differ from the generator's true count; ``rows_out`` differs from the rows the
  output holds; ``dead_letters`` differs from the rows in the dead-letter files; or, where the
  true count is unknown, readers that succeeded disagree.
"""

from __future__ import annotations

import json
import os
import selectors
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fuzz.generators import Case
from tests.fuzz.worker import OPERATIONS, text

__all__ = ["CATEGORIES", "Failure", "Outcome", "Worker", "check", "report", "run_cases"]

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 120.0
CATEGORIES = ("crash", "hang", "raw exception", "invalid batch", "row mismatch")


@dataclass(frozen=True)
class Outcome:
    case: Case
    op: str
    answer: dict[str, Any]


@dataclass(frozen=True)
class Failure:
    category: str
    case: Case
    op: str
    detail: str

    def reproduction(self) -> str:
        if self.case.seed is None:
            where = f"--regression {shlex.quote(self.case.name)}"
        else:
            where = f"--seed {self.case.seed} --case {self.case.index}"
        return f"python -m tests.fuzz {where} --op {shlex.quote(self.op)}"


class Worker:
    """A ``tests.fuzz.worker`` subprocess, restarted after a crash or a hang."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115  (kept across restarts, closed by its owner)
        self.buffer = b""

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, POLARS_MAX_THREADS="2", PYTHONPATH=str(REPO), RUST_BACKTRACE="0")
        self.stderr.seek(0)
        self.stderr.truncate()
        self.buffer = b""
        return subprocess.Popen(
            [sys.executable, "-X", "faulthandler", "-m", "tests.fuzz.worker"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
        )

    def _stacks(self, start: int) -> str:
        """sygnify's frames in the stacks the worker dumped (innermost first), if it did."""
        self.stderr.seek(start)
        raw = self.stderr.read().decode(errors="replace")
        frames = [line.strip() for line in raw.splitlines() if "/sygnify/" in line and "File" in line]
        return text(": " + " | ".join(frames[:8]), 900) if frames else ""

    def _stderr_tail(self, start: int) -> str:
        self.stderr.seek(start)
        raw = self.stderr.read().decode(errors="replace")
        lines = [line.strip() for line in raw.splitlines() if line.strip() and "rows/s]" not in line]
        if any(line.startswith("Fatal Python error") for line in lines):
            # faulthandler: the signal, then the innermost Python frames (the module list is noise).
            at = next(i for i, line in enumerate(lines) if line.startswith("Fatal Python error"))
            lines = [
                line
                for line in lines[at : at + 8]
                if not line.startswith(("Extension modules", "<no Python"))
            ]
        else:
            lines = lines[-4:]
        return text(" | ".join(lines), 600)

    def _answer(self, timeout: float, start: int) -> dict[str, Any]:
        """The next answer line, or a ``hang``/``crash`` answer (the worker then is gone)."""
        proc = self.proc
        assert proc is not None
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.close()
                    return {"status": "hang", "message": f"no answer in {timeout:g} s{self._stacks(start)}"}
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    code = proc.wait()
                    self.proc = None
                    return {"status": "crash", "returncode": code, "message": self._stderr_tail(start)}
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return dict(json.loads(line))

    def ask(self, root: Path, case: Case, op: str) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
            # Importing sygnify on a busy machine takes seconds: not part of any operation's time.
            ready = self._answer(STARTUP_TIMEOUT, 0)
            if not ready.get("ready"):
                raise RuntimeError(f"the fuzz worker did not start: {ready}")
        proc = self.proc
        assert proc.stdin is not None
        self.stderr.seek(0, os.SEEK_END)
        start = self.stderr.tell()
        # The worker dumps its stacks a little before the deadline, so a hang says where it hangs.
        request = {"root": str(root), "source": case.source, "op": op, "timeout": self.timeout * 0.9}
        try:
            proc.stdin.write((json.dumps(request) + "\n").encode())
            proc.stdin.flush()
        except BrokenPipeError:
            pass
        return self._answer(self.timeout, start)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _run_share(cases: Sequence[Case], ops: Sequence[str] | None, timeout: float) -> list[Outcome]:
    worker = Worker(timeout)
    outcomes = []
    try:
        with tempfile.TemporaryDirectory(prefix="sygnify-fuzz-") as tmp:
            for n, case in enumerate(cases):
                root = Path(tmp) / f"case-{n}"
                for path, data in case.files.items():
                    (root / path).parent.mkdir(parents=True, exist_ok=True)
                    (root / path).write_bytes(data)
                for op in case.ops or ops or OPERATIONS:
                    outcomes.append(Outcome(case, op, worker.ask(root, case, op)))
    finally:
        worker.close()
        worker.stderr.close()
    return outcomes


def run_cases(
    cases: Sequence[Case], *, ops: Sequence[str] | None = None, timeout: float = 20.0, workers: int = 1
) -> list[Outcome]:
    """Every operation (``case.ops``, else ``ops``, else all) on every case, in ``workers`` subprocesses."""
    shares = [cases[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda share: _run_share(share, ops, timeout), shares))
    return [outcome for share in results for outcome in share]


def _by_case(outcomes: Iterable[Outcome]) -> dict[int, list[Outcome]]:
    grouped: dict[int, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        grouped[id(outcome.case)].append(outcome)
    return grouped


def check(outcomes: Iterable[Outcome]) -> list[Failure]:
    """Every broken invariant (see the module docstring), in the order of the outcomes."""
    failures: list[Failure] = []
    for group in _by_case(outcomes).values():
        case = group[0].case
        counts: dict[str, int] = {}
        for outcome in group:
            op, answer = outcome.op, outcome.answer
            status = answer["status"]

            def fail(category: str, detail: str, op: str = op, case: Case = case) -> None:
                failures.append(Failure(category, case, op, detail))

            if status in ("crash", "hang"):
                code = answer.get("returncode")
                fail(status, (f"returncode {code}: " if code is not None else "") + answer["message"])
                continue
            if status == "error":
                if not answer["typed"]:
                    fail("raw exception", f"{answer['type']}: {answer['message']}")
                continue
            if answer["invalid"]:
                fail("invalid batch", "; ".join(answer["invalid"][:3]))
            if case.rows is not None and answer["accounted"] != case.rows:
                fail("row mismatch", f"{_describe(answer)}, the input has {case.rows}")
            if "rows_out" in answer and answer["rows_out"] != answer["rows"]:
                fail(
                    "row mismatch",
                    f"result.rows_out={answer['rows_out']} but the output holds {answer['rows']}",
                )
            if op.endswith(":dead_letter") and answer["dead_letters"] != answer["dead_letter_file_rows"]:
                fail(
                    "row mismatch",
                    f"result.dead_letters={answer['dead_letters']} but the dead-letter files hold "
                    f"{answer['dead_letter_file_rows']} rows",
                )
            counts[op] = answer["accounted"]
        if case.rows is None and len(set(counts.values())) > 1:
            spread = ", ".join(f"{op}={n}" for op, n in counts.items())
            failures.append(Failure("row mismatch", case, "*", f"readers disagree: {spread}"))
    return failures


def _describe(answer: dict[str, Any]) -> str:
    if "rows_out" not in answer:
        return f"returned {answer['rows']} rows"
    extra = ""
    if answer["skipped"]:
        extra += f" + {answer['skipped']} skipped"
    if answer["dead_letter_file_rows"]:
        extra += f" + {answer['dead_letter_file_rows']} dead-lettered"
    return f"output {answer['rows']} rows{extra} (rows_in={answer['rows_in']})"


def policy_notes(outcomes: Iterable[Outcome]) -> Counter[str]:
    """Typed errors raised under ``skip``/``dead_letter`` (not a failure of this suite: issue 19 item 9)."""
    notes: Counter[str] = Counter()
    for outcome in outcomes:
        answer = outcome.answer
        if outcome.op.endswith((":skip", ":dead_letter")) and answer["status"] == "error" and answer["typed"]:
            notes[f"{outcome.case.name.split('#')[0]} {answer['type'].rsplit('.', 1)[-1]}"] += 1
    return notes


def _summary(failures: Sequence[Failure]) -> str:
    """``kind xN (ops)`` per input kind, the process operations folded per mode."""
    ops: dict[str, Counter[str]] = defaultdict(Counter)
    for f in failures:
        ops[f.case.name.split("#")[0]][f.op.rsplit(":", 1)[0] if f.op.startswith("process:") else f.op] += 1
    return "; ".join(
        f"{kind} x{sum(c.values())} ({', '.join(f'{op} {n}' for op, n in c.items())})"
        for kind, c in sorted(ops.items(), key=lambda kv: -sum(kv[1].values()))
    )


def report(outcomes: Sequence[Outcome], failures: Sequence[Failure]) -> str:
    """All failures grouped by category, each with its case, operation and reproduction."""
    statuses = Counter(o.answer["status"] for o in outcomes)
    cases = len({id(o.case) for o in outcomes})
    lines = [
        f"{cases} inputs, {len(outcomes)} operations: "
        + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        + "; failures: "
        + (
            ", ".join(f"{n} {c}" for c in CATEGORIES if (n := sum(f.category == c for f in failures)))
            or "none"
        )
    ]
    for category in CATEGORIES:
        found = [f for f in failures if f.category == category]
        if not found:
            continue
        lines.append(f"\n== {category} ({len(found)})")
        lines.append("   by input kind: " + _summary(found))
        for f in found:
            seed = f"seed {f.case.seed} " if f.case.seed is not None else ""
            lines.append(f" - {seed}{f.case.name} [{f.op}] {f.detail}")
            lines.append(f"     repro: {f.reproduction()}")
    notes = policy_notes(outcomes)
    if notes:
        lines.append(
            "\n(not failing) typed errors under skip/dead_letter, by input kind: "
            + ", ".join(f"{k} x{n}" for k, n in notes.most_common())
        )
    return "\n".join(lines)
