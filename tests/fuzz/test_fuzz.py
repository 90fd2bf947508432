"""Hostile files through every reader: no crash, no hang, no raw exception, no silent row change.

The seeded campaign sends ``SYGNIFY_FUZZ_CASES`` generated inputs (default 220: every
generator of ``tests/fuzz/generators.py`` five times) through ``stream``, ``scan``, ``query``
and ``LargeDataHandler.process`` in every mode and error policy, each in a worker
subprocess (``tests/fuzz/harness.py``), and fails with every broken invariant, grouped by
category, each with a one-line reproduction. Options (environment variables):

- ``SYGNIFY_FUZZ_CASES=2000``: a longer run (about 0.3 s per input on two cores);
- ``SYGNIFY_FUZZ_SEED=7``: another seed (default 19, so CI sees the same inputs);
- ``SYGNIFY_FUZZ_TIMEOUT=20``: seconds before an operation counts as a hang;
- ``SYGNIFY_FUZZ_WORKERS=2``: worker subprocesses in parallel;
- ``SYGNIFY_FUZZ_MEMORY_MB=4096``: each worker's address-space limit (a declared huge allocation
  then fails as a crash or an error instead of exhausting the machine).

The campaign's safety invariants (no crash, no hang, no raw exception, no invalid data) must
hold; its row accounting is a strict xfail until the gaps its reason names are closed (issue
19 is open), so a fix there shows as an XPASS. The regression corpus (the inputs named in
issue 19 and the atheris findings) runs as one test per input, every invariant strict.
"""

from __future__ import annotations

import csv
import io
import json
import os

import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from tests.fuzz.generators import GENERATORS, Case, generate, regression_cases
from tests.fuzz.harness import Outcome, check, report, run_cases

CASES = int(os.environ.get("SYGNIFY_FUZZ_CASES", 5 * len(GENERATORS)))
SEED = int(os.environ.get("SYGNIFY_FUZZ_SEED", 19))
TIMEOUT = float(os.environ.get("SYGNIFY_FUZZ_TIMEOUT", 20))
WORKERS = int(os.environ.get("SYGNIFY_FUZZ_WORKERS", 1))


def _assert_clean(outcomes: list[Outcome]) -> None:
    failures = check(outcomes)
    if failures:
        pytest.fail(report(outcomes, failures), pytrace=False)


#: The invariants the seeded campaign holds today, and the one it does not yet (issue 19, open).
SAFETY = ("crash", "hang", "raw exception", "invalid batch")


@pytest.fixture(scope="module")
def seeded_outcomes() -> list[Outcome]:
    return run_cases(generate(SEED, CASES), timeout=TIMEOUT, workers=WORKERS)


@pytest.mark.slow
@pytest.mark.timeout(max(300, CASES * 3))
def test_seeded_inputs_never_crash_hang_raise_raw_or_return_invalid_data(
    seeded_outcomes: list[Outcome],
) -> None:
    failures = [failure for failure in check(seeded_outcomes) if failure.category in SAFETY]
    if failures:
        pytest.fail(report(seeded_outcomes, failures), pytrace=False)


@pytest.mark.slow
@pytest.mark.timeout(max(300, CASES * 3))
@pytest.mark.xfail(
    strict=True,
    reason="not yet: a file the readers reject whole (an empty CSV, JSON lines with bad UTF-8 or type drift "
    "inside one file) is one dead letter naming the file, not its rows; DuckDB's CSV sniffer (query()) "
    "disagrees with the other readers on malformed CSV (unbalanced quotes, a last line with an extra field)",
)
def test_seeded_inputs_account_for_every_row(seeded_outcomes: list[Outcome]) -> None:
    failures = [failure for failure in check(seeded_outcomes) if failure.category not in SAFETY]
    if failures:
        pytest.fail(report(seeded_outcomes, failures), pytrace=False)


@pytest.fixture(scope="module")
def regression_outcomes() -> dict[str, list[Outcome]]:
    outcomes = run_cases(regression_cases(), timeout=TIMEOUT)
    grouped: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        grouped.setdefault(outcome.case.name, []).append(outcome)
    return grouped


@pytest.mark.timeout(
    900
)  # the first one runs the whole corpus (the fixture); a hang costs TIMEOUT per operation
@pytest.mark.parametrize("case", regression_cases(), ids=lambda case: case.name)
def test_regression_input(case: Case, regression_outcomes: dict[str, list[Outcome]]) -> None:
    _assert_clean(regression_outcomes[case.name])


# ---------------------------------------------------------------- the harness catches each category


def _selftest_case(rows: int | None = 1) -> Case:
    return Case("selftest", {"x.csv": b"a\n1\n"}, "x.csv", rows)


@pytest.mark.parametrize(
    ("op", "category"),
    [
        ("selftest:abort", "crash"),
        ("selftest:hang", "hang"),
        ("selftest:raw", "raw exception"),
        ("selftest:invalid", "invalid batch"),
        ("selftest:2", "row mismatch"),
    ],
)
def test_harness_reports_each_category(op: str, category: str) -> None:
    outcomes = run_cases([_selftest_case()], ops=[op, "selftest:1", "selftest:typed"], timeout=2)
    failures = check(outcomes)
    assert [(f.category, f.op) for f in failures] == [(category, op)]
    # The worker was replaced after a crash or hang: the next requests were answered.
    assert [o.answer["status"] for o in outcomes[1:]] == ["ok", "error"]
    assert f"--op {op}" in failures[0].reproduction()
    assert category in report(outcomes, failures)


def test_readers_that_disagree_are_a_row_mismatch_when_the_count_is_unknown() -> None:
    outcomes = run_cases([_selftest_case(rows=None)], ops=["selftest:1", "selftest:3"], timeout=5)
    (failure,) = check(outcomes)
    assert failure.category == "row mismatch"
    assert "selftest:1=1, selftest:3=3" in failure.detail


# ---------------------------------------------------------------- the generators' ground truth


def _count(path: str, data: bytes) -> int:
    """Rows of a well-formed file, read by the standard library or pyarrow, not by sygnify."""
    name = path.rsplit("/", 1)[-1]
    if name.startswith((".", "_")) or name.endswith((".txt", ".crc")):
        return 0  # never read
    if path.endswith(".parquet"):
        return int(pq.read_metadata(io.BytesIO(data)).num_rows)
    if path.endswith((".arrow", ".feather", ".ipc")):
        try:
            return int(ipc.open_file(io.BytesIO(data)).read_all().num_rows)
        except Exception:
            return int(ipc.open_stream(io.BytesIO(data)).read_all().num_rows)
    csv.field_size_limit(1 << 24)
    text = data.decode("utf-8-sig")
    if path.endswith((".jsonl", ".ndjson", ".json")):
        return sum(isinstance(json.loads(line), dict) for line in text.splitlines() if line.strip())
    return max(0, sum(1 for row in csv.reader(io.StringIO(text, newline="")) if row) - 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_row_counts_are_true(seed: int) -> None:
    checked = 0
    for case in generate(seed, 2 * len(GENERATORS)):
        kind = case.name.split("#")[0]
        if case.rows is None or kind.endswith("-empty"):
            continue
        if "utf8" in kind or "drift" in kind or "deep" in kind:
            continue
        assert sum(_count(p, d) for p, d in case.files.items()) == case.rows, case.name
        checked += 1
    assert checked > len(GENERATORS) // 2
