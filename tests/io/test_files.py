"""The one glob and the one atomic write (sygnify.io.files), on the local disk."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import pyarrow.fs as pafs
import pytest

from sygnify.errors import NotFoundError
from sygnify.io import files
from sygnify.io.files import (
    TEMP_PREFIX,
    atomic_write,
    expand_glob,
    find_files,
    glob_prefix,
    glob_regex,
    is_data_file,
    publish,
)

TREE = [
    "a/x.parquet",
    "a/y.parquet",
    "a/notes.txt",
    "a/_SUCCESS",
    "a/.x.parquet",
    "a/_x.parquet",
    "a/sub/z.parquet",
    "a/sub/deep/w.parquet",
    "a/_tmp/v.parquet",
    "a/.staging/u.parquet",
    "a/2026-01.csv",
    "a/2026-02.csv",
    "b.parquet",
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in TREE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("a/*.parquet", "a/x.parquet", True),
        ("a/*.parquet", "a/sub/z.parquet", False),  # "*" never crosses "/"
        ("a/?.parquet", "a/x.parquet", True),
        ("a/?.parquet", "a/xy.parquet", False),
        ("a/?parquet", "a/.parquet", False),  # "?" does not start a hidden name
        ("a?b", "a/b", False),  # ... nor cross "/"
        ("a/[xy].parquet", "a/y.parquet", True),
        ("a/[!xy].parquet", "a/z.parquet", True),
        ("a/[!xy].parquet", "a/x.parquet", False),
        ("a/[a-c].csv", "a/b.csv", True),  # ranges are ranges
        ("a/[a-c].csv", "a/-.csv", False),
        ("a[/]b", "a/b", False),  # a set never matches "/"
        ("a/**/*.parquet", "a/x.parquet", True),  # "**" is zero or more directories
        ("a/**/*.parquet", "a/sub/deep/w.parquet", True),
        ("a/**/*.parquet", "a/_tmp/v.parquet", False),  # ... never hidden ones
        ("a/**", "a/sub/deep/w.parquet", True),
        ("a/**", "a/.staging/u.parquet", False),
        ("a/**z.parquet", "a/sub/z.parquet", False),  # "**" inside a segment is "*"
        ("a/*.parquet", "a/_x.parquet", False),
        ("a/*.parquet", "a/.x.parquet", False),
        ("a/_*.parquet", "a/_x.parquet", True),  # a hidden name spelt out is reachable
        ("a/.x.parquet", "a/.x.parquet", True),
        ("a/x.parquet", "a/x.parquet", True),  # no glob characters: the literal path
        ("a/x.parquet", "a/x.parquetz", False),
        ("a+(b)/*.csv", "a+(b)/c.csv", True),  # regex characters are literal
        ("a/*", "a/", False),  # a wildcard segment names something: never an empty name
        ("a/*", "a/x", True),
        ("a/**", "a/", False),  # ... nor a trailing "**" (an object store's directory marker)
        ("**", "a/b/", False),
        ("**", "a/b", True),
        ("a/*/x", "a//x", False),
        ("a/x*", "a/x", True),  # a "*" after other characters may still match nothing
        ("a/[!]a]", "a/]", False),  # "]" right after "[!" is a member: not "]" or "a"
        ("a/[!]a]", "a/a", False),
        ("a/[!]a]", "a/b", True),
        ("a/[]a]", "a/]", True),  # ... and right after "[": "]" or "a"
        ("a/[]a]", "a/a", True),
        ("a/[]a]", "a/b", False),
        ("a/[]", "a/[]", True),  # an unclosed set is literal text
    ],
)
def test_glob_regex(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is matches


def test_hidden_true_lets_wildcards_match_hidden_names() -> None:
    assert glob_regex("a/**/*.parquet", hidden=True).match("a/_tmp/.v.parquet")


def test_glob_prefix_is_the_literal_text_before_the_first_glob_character() -> None:
    assert glob_prefix("bucket/raw/2026-*/x.parquet") == "bucket/raw/2026-"
    assert glob_prefix("bucket/raw/[ab]/x") == "bucket/raw/"
    assert glob_prefix("bucket/raw/x.parquet") == "bucket/raw/x.parquet"


def test_expand_glob_agrees_with_the_regex(tree: Path) -> None:
    every_file = sorted(
        Path(directory, name).relative_to(tree).as_posix()
        for directory, _, names in os.walk(tree)
        for name in names
    )
    for pattern in ("a/*.parquet", "a/**/*.parquet", "a/**", "*/*/*.parquet", "a/_*", "a/[xy].*", "*"):
        regex = glob_regex(pattern)
        expected = [str(tree / path) for path in every_file if regex.match(path)]
        assert expand_glob(f"{tree}/{pattern}") == expected, pattern


def test_expand_glob_relative_to_the_working_directory(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    assert expand_glob("a/*.parquet") == ["a/x.parquet", "a/y.parquet"]
    assert expand_glob("*.parquet") == ["b.parquet"]
    assert expand_glob("missing/*.parquet") == []


def test_find_files_on_a_directory_skips_hidden_names_at_any_depth(tree: Path) -> None:
    found = [Path(path).relative_to(tree).as_posix() for path in find_files(str(tree / "a"))]
    assert found == [
        "a/2026-01.csv",
        "a/2026-02.csv",
        "a/sub/deep/w.parquet",
        "a/sub/z.parquet",
        "a/x.parquet",
        "a/y.parquet",
    ]
    with_any = find_files(str(tree / "a") + "/", any_format=True)
    assert str(tree / "a" / "notes.txt") in with_any
    assert str(tree / "a" / "_SUCCESS") not in with_any


def test_find_files_on_a_glob_keeps_data_files_only(tree: Path) -> None:
    assert find_files(f"{tree}/a/*") == [
        str(tree / "a" / name) for name in ("2026-01.csv", "2026-02.csv", "x.parquet", "y.parquet")
    ]
    assert str(tree / "a" / "notes.txt") in find_files(f"{tree}/a/*", any_format=True)
    assert find_files(f"{tree}/a/*.json") == []


def test_find_files_on_a_file_and_on_nothing(tree: Path) -> None:
    assert find_files(str(tree / "a" / "notes.txt")) == [str(tree / "a" / "notes.txt")]
    with pytest.raises(NotFoundError, match="no file or directory"):
        find_files(str(tree / "nothing"))


def test_is_data_file() -> None:
    assert is_data_file("day=1/part-0.parquet")
    assert not is_data_file("_delta_log/0.json")
    assert not is_data_file("x/.part.parquet")
    assert not is_data_file("README")
    assert is_data_file("README", any_format=True)


def test_atomic_write_replaces_the_file_and_fsyncs_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "deep" / "state.json"
    target.parent.mkdir()
    target.write_bytes(b"old")
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(descriptor: int) -> None:  # a spy: the real fsync still runs
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(files.os, "fsync", recording_fsync)
    assert atomic_write(target, lambda out: out.write(b"new")) == 3
    assert target.read_bytes() == b"new"
    assert os.listdir(target.parent) == ["state.json"]
    # The data before the rename (the temporary file), the directory after it.
    assert len(synced) == 2
    assert Path(synced[0]).name.startswith(TEMP_PREFIX)
    assert synced[1] == str(target.parent)


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")

    def failing(out: object) -> None:
        out.write(b"half")  # type: ignore[attr-defined]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_atomic_write_on_a_pyarrow_filesystem_writes_the_object(tmp_path: Path) -> None:
    # Any filesystem that is not LocalFileSystem (here one rooted at tmp_path) is written as
    # an object store is: a hidden temporary key, moved to the target once complete
    # (tests/io/test_atomic_object_store.py does this against S3).
    store = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    store.create_dir("bucket")
    assert atomic_write("bucket/key.bin", lambda out: out.write(b"abc"), filesystem=store) == 3
    assert (tmp_path / "bucket" / "key.bin").read_bytes() == b"abc"
    assert os.listdir(tmp_path / "bucket") == ["key.bin"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_gives_a_new_file_what_open_would(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "new.json", lambda out: out.write(b"{}"))
        with open(tmp_path / "opened.json", "wb"):
            pass
    finally:
        os.umask(umask)
    assert _mode(tmp_path / "new.json") == _mode(tmp_path / "opened.json") == 0o644


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    target = tmp_path / "shared.json"
    target.write_bytes(b"old")
    target.chmod(0o664)  # wider than the umask allows a new file: kept all the same
    atomic_write(target, lambda out: out.write(b"new"))
    assert _mode(target) == 0o664


def test_atomic_write_with_a_mode_sets_exactly_that_mode_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "secret.json"
    target.write_bytes(b"old")
    target.chmod(0o644)
    seen: list[int] = []

    def write(out: BinaryIO) -> int:  # the temporary, while it is being written
        seen.append(_mode(next(tmp_path.glob(f"{TEMP_PREFIX}*"))))
        return out.write(b"token")

    atomic_write(target, write, mode=0o600)
    assert seen == [0o600]
    assert _mode(target) == 0o600
    assert target.read_bytes() == b"token"


def test_publish_moves_a_staged_file_into_a_new_directory(tmp_path: Path) -> None:
    staged = tmp_path / "staged.parquet"
    staged.write_bytes(b"data")
    publish(staged, tmp_path / "out" / "day=1" / "part.parquet")
    assert (tmp_path / "out" / "day=1" / "part.parquet").read_bytes() == b"data"
    assert not staged.exists()


def test_the_old_sinks_atomic_write_still_works_and_warns(tmp_path: Path) -> None:
    from sygnify.processing import sinks

    with pytest.warns(DeprecationWarning, match="sygnify.io.files.atomic_write"):
        sinks.atomic_write(pafs.LocalFileSystem(), str(tmp_path / "x.bin"), lambda out: out.write(b"x"))
    assert (tmp_path / "x.bin").read_bytes() == b"x"
