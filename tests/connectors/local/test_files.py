"""open(), copy() and move() of the local connector, confined to its root (issue #13)."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.local import LocalConnector
from sygnify.errors import ConfigurationError, NotFoundError, PathEscapeError
from sygnify.testing.connectors import sample_table


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[LocalConnector]:
    with CloudDataConnector(environ={}) as connector:
        connection = connector.connect("local", root=tmp_path / "root")
        assert isinstance(connection, LocalConnector)
        yield connection


def visible(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def test_open_reads_and_writes_files_for_parquet_zip_and_text(lake: LocalConnector) -> None:
    with lake.open("data/t.parquet", "wb") as out:
        pq.write_table(sample_table(500), out)
    with lake.open("data/t.parquet") as handle:
        assert pq.ParquetFile(handle).read().equals(sample_table(500))
    with lake.open("data/t.zip", "wb") as out, zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a.txt", "alpha")
    with lake.open("data/t.zip") as handle, zipfile.ZipFile(handle) as archive:
        assert archive.read("a.txt") == b"alpha"
    with lake.open("notes/n.txt", "w") as text:
        text.write("zoë\nada\n")
    with lake.open("notes/n.txt", "r") as text:
        assert text.readlines() == ["zoë\n", "ada\n"]
    assert lake.list("notes/") == ["notes/n.txt"]


def test_a_large_write_is_invisible_until_close(lake: LocalConnector) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)  # beyond the writer's buffer: written from a thread
    with lake.open("big.bin", "wb") as out:
        out.write(payload)
        assert lake.list() == []  # only a hidden temporary exists
    assert lake.resolve("big.bin").read_bytes() == payload


def test_exception_inside_with_keeps_the_old_file_and_leaves_no_temporary(lake: LocalConnector) -> None:
    lake.resolve("").joinpath("kept.txt").write_text("old")

    def fail_binary(size: int) -> None:
        with lake.open("kept.txt", "wb") as out:
            out.write(b"n" * size)
            raise RuntimeError("producer failed")

    def fail_text() -> None:
        with lake.open("new.txt", "w") as text:
            text.write("never")
            raise KeyError("boom")

    for size in (3, 3 * 1024 * 1024):
        with pytest.raises(RuntimeError):
            fail_binary(size)
    with pytest.raises(KeyError):
        fail_text()
    assert visible(lake.root) == ["kept.txt"]
    assert lake.resolve("kept.txt").read_text() == "old"


def test_copy_and_move_stay_under_root(lake: LocalConnector, tmp_path: Path) -> None:
    lake.resolve("").joinpath("a.txt").write_bytes(b"payload")
    assert lake.copy("a.txt", "copies/b.txt") == "copies/b.txt"
    assert lake.move("copies/b.txt", "moved/c.txt") == "moved/c.txt"
    assert visible(lake.root) == ["a.txt", "moved/c.txt"]
    assert lake.resolve("moved/c.txt").read_bytes() == b"payload"
    assert lake.move("a.txt", "a.txt") == "a.txt"  # onto itself: nothing changes
    assert lake.resolve("a.txt").read_bytes() == b"payload"
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    for call in (
        lambda: lake.copy("a.txt", "../outside.txt"),
        lambda: lake.move("../outside.txt", "stolen.txt"),
        lambda: lake.open("../outside.txt"),
        lambda: lake.open("../planted.txt", "wb"),
    ):
        with pytest.raises(PathEscapeError):
            call()
    assert outside.read_text() == "secret"
    assert not (tmp_path / "planted.txt").exists()
    with pytest.raises(NotFoundError):
        lake.copy("missing.txt", "x.txt")
    with pytest.raises(NotFoundError):
        lake.open("missing.txt")
    with pytest.raises(ConfigurationError, match="directory"):
        lake.copy("a.txt", "moved/")
    with pytest.raises(ConfigurationError, match="mode"):
        lake.open("a.txt", "ab")  # type: ignore[call-overload]


def test_presigned_urls_are_not_offered(lake: LocalConnector) -> None:
    assert not hasattr(lake, "presigned_url")
    with pytest.raises(AttributeError):
        lake.presigned_url("a.txt")
