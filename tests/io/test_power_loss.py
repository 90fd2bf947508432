"""A power loss at any moment of a local write leaves the old data or the new, never a torn file.

A SIGKILL keeps what the kernel has (the page cache survives); a power loss keeps only what
was fsynced. :class:`PowerLoss` is a model of that: it watches the file-system calls of a
write below one directory and, at every ``fsync``, records what became durable (a file's
bytes, or a directory's entries). The state a power loss after step ``n`` leaves is then
the state before the write, overlaid with what the fsyncs up to step ``n`` made durable:
file contents never fsynced are lost (read back empty), and so are directory entries
(created, renamed, deleted names; new directories) whose directory was not fsynced since.

The one atomic write (:func:`sygnify.io.files.atomic_write`) and local dataset writes are
checked at every such step: the target holds the old bytes or the new (readers of a dataset
see the old rows or all the new), and once the write has returned, the new data is durable.
A write with the file fsync left out fails the same check (the model catches it).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import sygnify.io.files as files
from sygnify import CloudDataConnector
from sygnify.io.files import atomic_write
from tests.io.test_killpoints import ROWS, batch

Listing = dict[str, tuple[int, bool]]  # name -> (inode, is a directory)


def _listing(directory: str) -> Listing:
    entries: Listing = {}
    with os.scandir(directory) as found:
        for entry in found:
            info = entry.stat(follow_symlinks=False)
            entries[entry.name] = (info.st_ino, stat.S_ISDIR(info.st_mode))
    return entries


class PowerLoss:
    """Records what fsyncs made durable below ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self.directories: dict[str, Listing] = {}
        self.contents: dict[int, bytes] = {}
        for directory, _, names in os.walk(self.root):  # before the write: all durable
            self.directories[directory] = _listing(directory)
            for name in names:
                path = os.path.join(directory, name)
                self.contents[os.stat(path).st_ino] = Path(path).read_bytes()
        #: (step, what became durable): ("dir", path, listing) or ("file", inode, bytes)
        self.events: list[tuple[str, Any, Any]] = []
        self.steps = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_fsync, real_replace, real_open = os.fsync, os.replace, os.open

        def fsync(fd: Any) -> None:
            number = fd if isinstance(fd, int) else fd.fileno()
            path = os.readlink(f"/proc/self/fd/{number}")
            if path.startswith(self.root):
                self.steps += 1
                if os.path.isdir(path):
                    self.events.append(("dir", path, _listing(path)))
                else:
                    self.events.append(("file", os.stat(path).st_ino, Path(path).read_bytes()))
            real_fsync(fd)

        def step(call: Callable[..., Any]) -> Callable[..., Any]:
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.steps += 1
                self.events.append(("step", None, None))
                return call(*args, **kwargs)

            return counted

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", step(real_replace))
        monkeypatch.setattr(os, "open", step(real_open))

    def crash_points(self) -> range:
        """Every moment a power loss can hit: before the first step ... after the last."""
        return range(len(self.events) + 1)

    def restore(self, upto: int, destination: Path) -> None:
        """Write into ``destination`` what a power loss after ``upto`` events leaves."""
        directories = dict(self.directories)
        contents = dict(self.contents)
        for kind, key, value in self.events[:upto]:
            if kind == "dir":
                directories[key] = value
            elif kind == "file":
                contents[key] = value

        def build(source: str, target: Path) -> None:
            target.mkdir(exist_ok=True)
            # A directory never fsynced since it was made has no durable entries.
            for name, (inode, is_dir) in directories.get(source, {}).items():
                if is_dir:
                    build(os.path.join(source, name), target / name)
                else:
                    (target / name).write_bytes(contents.get(inode, b""))

        build(self.root, destination)


def test_the_atomic_write_replaces_a_file_durably_at_every_crash_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "disk"
    (root / "a").mkdir(parents=True)
    (root / "a" / "state.json").write_bytes(b"old" * 1000)
    disk = PowerLoss(root)
    disk.install(monkeypatch)
    atomic_write(root / "a" / "state.json", lambda out: out.write(b"new" * 2000))
    monkeypatch.undo()
    outcomes = set()
    for upto in disk.crash_points():
        after = tmp_path / f"after-{upto}"
        disk.restore(upto, after)
        outcomes.add((after / "a" / "state.json").read_bytes()[:3])
        assert (after / "a" / "state.json").read_bytes() in (b"old" * 1000, b"new" * 2000), upto
    assert (after / "a" / "state.json").read_bytes() == b"new" * 2000  # durable once returned
    assert outcomes == {b"old", b"new"}


def test_the_atomic_write_into_new_directories_is_durable_once_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "disk"
    root.mkdir()
    disk = PowerLoss(root)
    disk.install(monkeypatch)
    atomic_write(root / "x" / "y" / "state.json", lambda out: out.write(b"{}"))
    monkeypatch.undo()
    disk.restore(len(disk.events), tmp_path / "after")
    assert (tmp_path / "after" / "x" / "y" / "state.json").read_bytes() == b"{}"


def test_without_the_file_fsync_the_model_sees_a_torn_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: leave out the fsync of the file before its rename, and a power loss
    right after the rename and the directory's fsync finds the new name with no data."""
    root = tmp_path / "disk"
    root.mkdir()
    (root / "state.json").write_bytes(b"old")
    disk = PowerLoss(root)
    disk.install(monkeypatch)
    real = files._fsync
    monkeypatch.setattr(files, "_fsync", lambda path: real(path) if os.path.isdir(path or ".") else None)
    atomic_write(root / "state.json", lambda out: out.write(b"new"))
    monkeypatch.undo()
    seen = set()
    for upto in disk.crash_points():
        disk.restore(upto, tmp_path / f"after-{upto}")
        seen.add((tmp_path / f"after-{upto}" / "state.json").read_bytes())
    assert b"" in seen  # torn: the rename is durable, the data is not


def _rows(root: Path) -> dict[int, int]:
    lake = CloudDataConnector().connect("local", root=root)
    try:
        table = pa.Table.from_batches(list(lake.stream("ds/")))
    except Exception:  # a dataset that does not exist yet reads as nothing
        return {}
    counts: dict[int, int] = {}
    for number in table.column("batch").to_pylist():
        counts[number] = counts.get(number, 0) + 1
    return counts


@pytest.mark.parametrize("partition_by", [None, ["region"]], ids=["plain", "partitioned"])
@pytest.mark.parametrize("mode", ["overwrite", "append", "new"])
def test_a_dataset_write_survives_a_power_loss_at_every_step_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, partition_by: list[str] | None
) -> None:
    root = tmp_path / "disk"
    root.mkdir()
    lake = CloudDataConnector().connect("local", root=root)
    before: dict[int, int] = {}
    if mode != "new":
        lake.write(batch(1), "ds/", partition_by=partition_by)
        before = {1: ROWS}
    disk = PowerLoss(root)
    disk.install(monkeypatch)
    lake.write(batch(2), "ds/", mode="append" if mode == "append" else "overwrite", partition_by=partition_by)
    monkeypatch.undo()
    after = {**before, 2: ROWS} if mode == "append" else {2: ROWS}
    seen = []
    for upto in disk.crash_points():
        restored = tmp_path / f"after-{upto}"
        disk.restore(upto, restored)
        rows = _rows(restored)
        assert rows in (before, after), f"a power loss after event {upto} leaves {rows}"
        seen.append(rows)
    assert seen[-1] == after  # durable once the write returned
    assert seen[0] == before
