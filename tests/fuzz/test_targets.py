"""The atheris targets of ``nox -s fuzz`` run as plain functions, so they cannot rot unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.generators import generate
from tests.fuzz.targets import TARGETS, write_corpus

_VALID = {"csv": "csv-valid", "jsonl": "jsonl-valid", "parquet": "parquet-valid", "ipc": "arrow-file-valid"}


@pytest.mark.parametrize("fmt", sorted(TARGETS))
def test_target_reads_valid_inputs(fmt: str) -> None:
    cases = [c for c in generate(5, 160) if c.name.startswith(_VALID[fmt] + "#")][:4]
    assert cases
    for case in cases:
        (data,) = case.files.values()
        assert TARGETS[fmt](data) == case.rows, case.name


@pytest.mark.parametrize("fmt", sorted(TARGETS))
def test_corpus_seeds_every_target(fmt: str, tmp_path: Path) -> None:
    assert write_corpus(fmt, tmp_path, count=80) == len(list(tmp_path.iterdir())) > 3
