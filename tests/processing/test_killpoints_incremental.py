"""SIGKILL at every commit point of incremental runs, then rerun: exactly a clean run's output.

The harness is :mod:`tests.io.test_killpoints`: the run is traced once (every file created,
fsynced, renamed or deleted below the test directory: output parts, the checkpoint, an
aggregation's partial state and result), then killed before each of those steps in turn and
at random moments, and rerun. Row jobs must leave the same part files with the same
content as a clean run; aggregations the same row set; no temporaries in the sink (DuckDB
reads them, its glob does not skip hidden names), no duplicates.

``test_a_file_named_before_an_interrupted_one_waits_for_it`` is issue 19's aimed kill
point: ``part-0008`` SIGKILLed after a commit inside it, then ``part-0000`` and
``part-0002`` appear; the rerun used to count ``part-0008``'s committed chunks twice.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from sygnify.processing import Aggregate, Checkpoint, FileSource, LargeDataHandler, ParquetSink, query
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.moto import MotoServer, moto_server
from tests.io.test_killpoints import AIMS, Scenario, Zygote, duckdb_rows, kill_everywhere, register, zygote

__all__ = ["zygote"]  # the fixture, for pytest

SPEC = Aggregate(by="k", total=("v", "sum"), n=("v", "len"), top=("v", "max"))


def frame(start: int, rows: int) -> pl.DataFrame:
    ids = list(range(start, start + rows))
    return pl.DataFrame({"id": ids, "k": [i % 7 for i in ids], "v": [i % 13 for i in ids]})


def add_files(directory: Path, numbers: list[int], rows: int = 300) -> None:
    src = directory / "src"
    src.mkdir(exist_ok=True)
    for number in numbers:
        frame(number * 10_000, rows).write_parquet(src / f"part-{number:04d}.parquet", row_group_size=50)


@contextlib.contextmanager
def chunk_path(on: bool) -> Iterator[None]:
    """The chunk-by-chunk path (the engine declines the job), or the one-query-per-file path."""
    with mock.patch.object(query, "eligible", return_value=False) if on else contextlib.nullcontext():
        yield


def run(directory: Path, *, aggregate: bool, chunks: bool, cursor: str | None = None) -> None:
    handler = LargeDataHandler(chunk_size=100, progress=False)
    state = Checkpoint(directory / "state.json", interval=0)
    sink = str(directory / "agg.parquet") if aggregate else str(directory / "out") + "/"
    with chunk_path(chunks):
        handler.process(
            str(directory / "src"),
            transform=SPEC if aggregate else None,
            mode="incremental",
            sink=sink,
            checkpoint=state,
            cursor=cursor,
        )


def row_outcome(directory: Path) -> Any:
    """Each part file's name and bytes, the rows sorted, and what DuckDB reads of the sink."""
    out = directory / "out"
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if not p.name.startswith(".")}
    rows = pl.read_parquet(out).sort("id")
    assert rows["id"].n_unique() == rows.height, "a row is duplicated"
    return files, rows.rows(), duckdb_rows(out)


def aggregate_outcome(directory: Path) -> Any:
    """The result's rows (sorted by key); the partial state beside the checkpoint is the
    committed one only."""
    state = json.loads((directory / "state.json").read_text())
    sides = sorted(p.name for p in directory.glob("state.json.*.arrow"))
    assert sides == sorted(f"state.json.{state['partial']}.{key}.arrow" for key in state["partial_keys"])
    result = pl.read_parquet(directory / "agg.parquet").sort("k")
    assert result["n"].sum() == sum(1 for _ in (directory / "src").iterdir()) * 300
    return result.rows()


def _incremental(name: str, *, aggregate: bool, chunks: bool, cursor: str | None = None) -> Scenario:
    def setup(directory: Path) -> None:
        add_files(directory, [1, 3])
        run(directory, aggregate=aggregate, chunks=chunks, cursor=cursor)
        add_files(directory, [5, 7])

    return register(
        Scenario(
            name,
            setup,
            lambda directory: run(directory, aggregate=aggregate, chunks=chunks, cursor=cursor),
            aggregate_outcome if aggregate else row_outcome,
            outputs=("",),
        )
    )


INCREMENTAL_SCENARIOS = [
    _incremental("incremental-rows-by-chunk", aggregate=False, chunks=True),
    _incremental("incremental-rows-by-file", aggregate=False, chunks=False),
    _incremental("incremental-aggregate-by-chunk", aggregate=True, chunks=True),
    _incremental("incremental-aggregate-by-file", aggregate=True, chunks=False),
    _incremental("incremental-rows-by-cursor", aggregate=False, chunks=True, cursor="id"),
]


@pytest.mark.parametrize("scenario", INCREMENTAL_SCENARIOS, ids=lambda s: s.name)
def test_an_incremental_run_killed_at_every_step_then_rerun_equals_a_clean_run(
    zygote: Zygote, tmp_path: Path, scenario: Scenario
) -> None:
    assert len(kill_everywhere(zygote, scenario, tmp_path).steps) >= 6


# -- issue 19, item 1: the aimed kill point ----------------------------------------------------


def _after_a_commit_inside(name: str) -> Callable[[str, str], bool]:
    """True right after the checkpoint is committed with ``name``'s run part-way done."""

    def aimed(kind: str, path: str) -> bool:
        if kind != "rename" or path != "state.json":
            return False
        run_ = json.loads(Path(aimed.root, path).read_text()).get("run")  # type: ignore[attr-defined]
        return bool(run_ and run_.get("file", "").endswith(name) and run_["chunks_done"] >= 2)

    return aimed


def _aimed_setup(directory: Path) -> None:
    add_files(directory, [1, 3, 5], rows=600)
    run(directory, aggregate=True, chunks=True)
    add_files(directory, [7, 8], rows=600)


def _aimed_job(directory: Path) -> None:
    AIMS["inside-part-0008"].root = str(directory)  # type: ignore[attr-defined]
    run(directory, aggregate=True, chunks=True)


AIMS["inside-part-0008"] = _after_a_commit_inside("part-0008.parquet")
AIMED = register(
    Scenario(
        "incremental-aggregate-older-file-after-a-crash",
        _aimed_setup,
        _aimed_job,
        aggregate_outcome,
        after=lambda directory: add_files(directory, [0, 2], rows=600),
        outputs=("",),
    )
)


def test_a_file_named_before_an_interrupted_one_waits_for_it(zygote: Zygote, tmp_path: Path) -> None:
    """Files 1, 3, 5 -> run; add 7, 8; SIGKILL after a commit inside part-0008; add 0, 2;
    rerun: the row set of a clean run (it used to count part-0008's committed chunks twice)."""
    base = tmp_path / "crashed"
    base.mkdir()
    _aimed_setup(base)
    code = zygote.run(
        scenario=AIMED.name, directory=str(base), trace=str(tmp_path / "t.json"), aim="inside-part-0008"
    )
    assert code == -9
    state = json.loads((base / "state.json").read_text())
    assert state["run"]["file"].endswith("part-0008.parquet")
    assert state["run"]["chunks_done"] >= 2
    AIMED.after(base)
    run(base, aggregate=True, chunks=True)

    clean = tmp_path / "clean"
    clean.mkdir()
    _aimed_setup(clean)
    run(clean, aggregate=True, chunks=True)
    AIMED.after(clean)
    run(clean, aggregate=True, chunks=True)

    crashed, expected = (
        pl.read_parquet(base / "agg.parquet").sort("k"),
        pl.read_parquet(clean / "agg.parquet").sort("k"),
    )
    assert crashed["n"].sum() == expected["n"].sum() == 7 * 600  # 4,400 before the fix
    assert crashed.rows() == expected.rows()
    assert crashed.rows() == SPEC.over(pl.scan_parquet(base / "src")).collect().sort("k").rows()
    assert pq.read_metadata(base / "agg.parquet").num_rows == 7


# -- on an object store: what a crashed run leaves is removed by the next --------------------

moto, s3_server = emulator_fixtures(
    moto_server, "moto server could not be installed or started", session="moto", name="s3_server"
)


def test_an_incremental_run_on_s3_removes_what_a_crashed_run_left(s3_server: MotoServer) -> None:
    filesystem = pafs.S3FileSystem(
        endpoint_override=s3_server.endpoint,
        access_key="testing",
        secret_key="testing-secret",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    prefix = f"sweep-{uuid.uuid4().hex[:12]}"
    filesystem.create_dir(prefix)
    table = frame(0, 300).to_arrow()
    with filesystem.open_output_stream(f"{prefix}/src/part-0001.parquet") as out:
        pq.write_table(table, out)
    left = [  # as a SIGKILL leaves them: temporaries, and a partial state never committed
        f"{prefix}/out/.sygnify-tmp-{'a' * 32}-part-00000000.parquet.tmp",
        f"{prefix}/.sygnify-tmp-{'b' * 32}-agg.json.tmp",
        f"{prefix}/agg.json.s00000009.sum.arrow",
    ]
    kept = f"{prefix}/.sygnify-tmp-{'c' * 32}-another.json.tmp"  # not this job's
    for key in [*left, kept]:
        filesystem.open_output_stream(key).close()
    handler = LargeDataHandler(chunk_size=100, progress=False)
    handler.process(
        FileSource(f"{prefix}/src/", filesystem=filesystem),
        mode="incremental",
        sink=ParquetSink(f"{prefix}/out/", filesystem=filesystem),
        checkpoint=Checkpoint(f"{prefix}/rows.json", filesystem=filesystem),
    )
    handler.process(
        FileSource(f"{prefix}/src/", filesystem=filesystem),
        transform=SPEC,
        mode="incremental",
        sink=ParquetSink(f"{prefix}/agg.parquet", filesystem=filesystem),
        checkpoint=Checkpoint(f"{prefix}/agg.json", filesystem=filesystem),
    )
    exists = {key: filesystem.get_file_info(key).type != pafs.FileType.NotFound for key in [*left, kept]}
    assert exists == {**dict.fromkeys(left, False), kept: True}
    rows = pq.ParquetDataset(f"{prefix}/out/", filesystem=filesystem).read()
    assert sorted(rows.column("id").to_pylist()) == list(range(300))
