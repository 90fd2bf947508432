"""Wide inputs cost linear time in their columns (issue 19, item 10).

A 2,000-column, 1-row CSV took 20-24 s a chunk: ``ChunkProcessor.conform`` read
``frame.schema``, which builds a new ``pl.Schema`` of every column, once per column. These
tests count the ``pl.Schema`` objects a run builds, instead of timing it: a run that builds
each schema a constant number of times builds as many for 5,000 columns as for 500.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sygnify.processing import LargeDataHandler
from sygnify.processing.chunk import ChunkOutcome, ChunkProcessor
from sygnify.processing.plan import Plan
from sygnify.resilience import RetryPolicy

MODES = ["streaming", "chunked", "parallel", "incremental"]


@pytest.fixture
def schemas_built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A counter of the ``pl.Schema`` objects built while the test runs."""
    count = [0]
    original = pl.Schema.__init__

    def counting(self: pl.Schema, *args: Any, **kwargs: Any) -> None:
        count[0] += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(pl.Schema, "__init__", counting)
    return count


def _wide_csv(path: Path, columns: int, *, bad_line: bool) -> Path:
    """A header, one good row and, with ``bad_line``, a line with one field too many (it sends
    the run to the chunk loop, the path that was quadratic)."""
    lines = [",".join(f"c{i}" for i in range(columns)), ",".join(str(i) for i in range(columns))]
    if bad_line:
        lines.append(",".join(str(i) for i in range(columns + 1)))
    path.write_text("\n".join(lines) + "\n")
    return path


def _built(tmp_path: Path, count: list[int], columns: int, mode: str, bad_line: bool) -> int:
    work = tmp_path / f"{mode}-{columns}"
    work.mkdir()
    source = _wide_csv(work / "wide.csv", columns, bad_line=bad_line)
    options: dict[str, Any] = {"dead_letter": work / "dead"}
    if mode == "incremental":
        options["checkpoint"] = work / "state.json"
    count[0] = 0
    result = LargeDataHandler(progress=False).process(
        str(source),
        transform=lambda lf: lf,
        mode=mode,  # type: ignore[arg-type]
        on_error="dead_letter",
        schema=dict.fromkeys((f"c{i}" for i in range(columns)), pl.Int64),
        sink=str(work / "out") + "/",
        **options,
    )
    assert (result.rows_in, result.rows_out, result.dead_letters) == (1 + bad_line, 1, int(bad_line))
    return count[0]


@pytest.mark.parametrize("bad_line", [True, False], ids=["chunk-loop", "one-query"])
@pytest.mark.parametrize("mode", MODES)
def test_schemas_built_do_not_grow_with_the_columns(
    tmp_path: Path, schemas_built: list[int], mode: str, bad_line: bool
) -> None:
    narrow = _built(tmp_path, schemas_built, 500, mode, bad_line)
    wide = _built(tmp_path, schemas_built, 5_000, mode, bad_line)
    # Before the fix: about 3 per column in conform() (1,500 against 15,000).
    assert wide <= narrow + 2, (narrow, wide)
    assert wide < 50


def test_conform_reads_the_schema_once(schemas_built: list[int]) -> None:
    columns = [f"c{i}" for i in range(2_000)]
    frame = pl.DataFrame({c: ["1", "x"] for c in columns})
    processor = ChunkProcessor(
        Plan.of(None),
        schema=pl.Schema(dict.fromkeys(columns, pl.Int64)),
        on_error="skip",
        dead_letter=None,
        retry=RetryPolicy(),
    )
    outcome = ChunkOutcome("00000000")
    schemas_built[0] = 0
    typed = processor.conform(frame, "00000000", "wide.csv", outcome)
    assert typed.height == 1
    assert [e.rows for e in outcome.errors] == [1]
    assert schemas_built[0] <= 3
