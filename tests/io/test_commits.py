"""The commit protocol of dataset writes (sygnify.io.commits), on an in-memory store."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from typing import BinaryIO

import pytest

from sygnify.io.commits import (
    LOG_DIR,
    CommitFilter,
    FilePut,
    Log,
    commit,
    dataset_root,
    is_part_name,
    marker_name,
    part_name,
    write_token,
)

A, B, C = "a" * 32, "b" * 32, "c" * 32


class MemoryFiles:
    """A store in a dict, with injectable failures and a clock for modification times."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.mtime: dict[str, float] = {}
        self.now = itertools.count(1000)
        self.fail_put: Callable[[str], Exception | None] = lambda path: None
        self.lose_answer: Callable[[str], bool] = lambda path: False
        self.fail_list = False

    def put(self, path: str, write: Callable[[BinaryIO], None]) -> None:
        error = self.fail_put(path)
        if error is not None:
            raise error
        import io

        buffer = io.BytesIO()
        write(buffer)
        self.data[path] = buffer.getvalue()
        self.mtime[path] = float(next(self.now))
        if self.lose_answer(path):
            raise ConnectionError("the answer was lost")

    def list(self) -> Sequence[tuple[str, float | None]]:
        if self.fail_list:
            raise ConnectionError("listing failed")
        return [(path, self.mtime[path]) for path in sorted(self.data)]

    def read(self, path: str) -> bytes:
        return self.data[path]

    def delete(self, paths: Sequence[str]) -> None:
        for path in paths:
            self.data.pop(path, None)
            self.mtime.pop(path, None)

    def visible(self) -> list[str]:
        keep = CommitFilter(self.list())
        return [p for p, m in self.list() if not p.startswith(("_", ".")) and keep(p, m)]


def parts_writer(names: Sequence[str]) -> Callable[[str, FilePut], list[str]]:
    def write(token: str, put: FilePut) -> list[str]:
        paths = [f"{name}/{part_name(token, 0, '.parquet')}" for name in names]
        for path in paths:
            put(path, lambda out: out.write(b"x") and None)
        return paths

    return write


def test_write_tokens_part_and_marker_names() -> None:
    assert write_token("x") == write_token("x") != write_token("y")
    assert write_token() != write_token()
    assert is_part_name(part_name(A, 12, ".csv"))
    assert not is_part_name(f"part-{A}-0.parquet")  # the naming of sygnify before commits
    assert marker_name(A, "overwrite", 5) == f"{LOG_DIR}/0000000000005-{A}.overwrite.json"


@pytest.mark.parametrize(
    ("directory", "root"),
    [("t/", "t/"), ("t/k=1/", "t/"), ("t/k=1/j=2", "t/"), ("k=1/", ""), ("/abs/t/k=1/", "/abs/t/"), ("", "")],
)
def test_the_dataset_root_is_above_the_partition_directories(directory: str, root: str) -> None:
    assert dataset_root(directory) == root


def test_a_dataset_without_a_log_shows_every_file_but_uncommitted_parts() -> None:
    assert not Log.parse([]).visible(part_name(A, 0, ".parquet"), None)
    assert Log.parse([]).visible(f"part-{A}-0.parquet", None)  # sygnify's naming before commits
    assert Log.parse([("not-a-commit.json", 1.0)]).visible("x.parquet", None)


def test_only_committed_parts_after_the_last_overwrite_are_visible() -> None:
    log = Log.parse(
        [
            (f"0000000000001-{A}.append.json", 1.0),
            (f"0000000000002-{B}.overwrite.json", 2.0),
            (f"0000000000003-{C}.append.json", 3.0),
        ]
    )
    assert [log.visible(part_name(token, 0, ".csv"), None) for token in (A, B, C, "d" * 32)] == [
        False,
        True,
        True,
        False,
    ]
    # Files of other tools: visible only when changed after the overwrite committed.
    assert not log.visible("other.csv", 1.5)
    assert log.visible("other.csv", 2.5)
    assert not log.visible("other.csv", None)


def test_the_nearest_log_governs_a_file() -> None:
    listing = [
        (f"lake/a/{LOG_DIR}/0000000000001-{A}.append.json", 1.0),
        (f"lake/a/b/{LOG_DIR}/0000000000001-{B}.append.json", 1.0),
    ]
    keep = CommitFilter(listing)
    assert keep(f"lake/a/{part_name(A, 0, '.csv')}", 1.0)
    assert not keep(f"lake/a/b/{part_name(A, 0, '.csv')}", 1.0)  # a/b has its own log
    assert keep(f"lake/a/b/{part_name(B, 0, '.csv')}", 1.0)
    assert keep("lake/c/anything.csv", 1.0)  # no log governs lake/c
    # Without any log: other files are visible, parts of writes that never committed are not.
    assert CommitFilter([])("x.csv", 1.0)
    assert not CommitFilter([])(f"t/{part_name(A, 0, '.csv')}", 1.0)


def test_a_commit_publishes_all_parts_at_once() -> None:
    files = MemoryFiles()
    done = commit(files, parts_writer(["k=1", "k=2"]), rows=10, mode="append")
    assert sorted(files.visible()) == sorted(done.files)
    record = json.loads(next(v for p, v in files.data.items() if p.startswith(LOG_DIR)))
    assert (record["rows"], record["mode"], sorted(record["files"])) == (10, "append", sorted(done.files))


@pytest.mark.parametrize("failing", [0, 1, 2])
def test_a_write_failing_at_any_put_shows_nothing_and_leaves_no_parts(failing: int) -> None:
    files = MemoryFiles()
    commit(files, parts_writer(["old"]), rows=1, mode="append")
    before = dict(files.data)
    puts = itertools.count()
    files.fail_put = lambda path: OSError("disk full") if next(puts) == failing else None
    with pytest.raises(OSError, match="disk full"):
        commit(files, parts_writer(["k=1", "k=2"]), rows=2, mode="overwrite")
    assert files.data == before


def test_a_lost_answer_to_the_commit_is_found_and_is_success() -> None:
    files = MemoryFiles()
    files.lose_answer = lambda path: path.startswith(LOG_DIR)
    done = commit(files, parts_writer(["k=1"]), rows=1, mode="append")
    assert files.visible() == done.files


def test_a_failed_commit_that_cannot_be_checked_deletes_nothing() -> None:
    files = MemoryFiles()
    files.fail_put = lambda path: ConnectionError("timeout") if path.startswith(LOG_DIR) else None

    original_list = files.list

    def failing_list() -> Sequence[tuple[str, float | None]]:
        raise ConnectionError("listing failed")

    files.list = failing_list  # type: ignore[method-assign]
    with pytest.raises(ConnectionError, match="timeout"):
        commit(files, parts_writer(["k=1"]), rows=1, mode="append")
    files.list = original_list  # type: ignore[method-assign]
    assert len(files.data) == 1  # the part stays (hidden: no commit names it)
    assert files.visible() == []


def test_a_repeated_write_id_writes_nothing_and_returns_the_first_result() -> None:
    files = MemoryFiles()
    first = commit(files, parts_writer(["k=1"]), rows=3, mode="append", write_id="load-1")
    snapshot = dict(files.data)
    again = commit(files, parts_writer(["k=1", "k=2"]), rows=99, mode="append", write_id="load-1")
    assert (again.files, again.rows, again.repeated) == (first.files, 3, True)
    assert files.data == snapshot


def test_an_overwrite_removes_what_it_hid_but_not_a_younger_running_write() -> None:
    files = MemoryFiles()
    commit(files, parts_writer(["k=1"]), rows=1, mode="append", clock=lambda: 5_000.0)
    files.put("foreign.csv", lambda out: out.write(b"x") and None)
    files.put(f"k=9/{part_name(C, 0, '.parquet')}", lambda out: out.write(b"x") and None)  # crashed
    clock = iter([float(next(files.now)) + 0.5, 10_000.0])  # start, then commit time
    running = f"k=8/{part_name('e' * 32, 0, '.parquet')}"

    def write(token: str, put: FilePut) -> list[str]:
        paths = parts_writer(["k=2"])(token, put)
        files.put(running, lambda out: out.write(b"x") and None)  # another write, started later
        return paths

    done = commit(files, write, rows=1, mode="overwrite", obsolete=["_meta.json"], clock=lambda: next(clock))
    remaining = sorted(files.data)
    assert [p for p in remaining if not p.startswith(LOG_DIR)] == sorted([*done.files, running])
    assert len([p for p in remaining if p.startswith(LOG_DIR)]) == 1
    assert files.visible() == done.files
