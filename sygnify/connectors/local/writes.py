"""Writes of the ``local`` connector: all or nothing, never a half-written file in view.

A single file is written to a temporary name beside it and renamed over the target (the
one atomic write of :mod:`sygnify.io.files`: fsync of the file, rename, fsync of the
directory), so a crash leaves the old file or the new one, never a torn one. A directory
dataset (plain part files or hive partitions) gets its part files, each written that way,
then one commit file (:mod:`sygnify.io.commits`): readers see the whole write or none of
it::

    >>> import tempfile
    >>> from pathlib import Path
    >>> import pyarrow as pa
    >>> root = Path(tempfile.mkdtemp()).resolve()
    >>> table = pa.table({"day": ["d1", "d2"], "amount": [5, 7]})
    >>> write_dataset(root, table, root / "tx", "tx/", "overwrite", "parquet", ["day"]).paths[0]
    'tx/day=d1/part-00000-....parquet'
    >>> write_file(root, table, root / "tx.csv", "tx.csv", "append", None).paths
    ['tx.csv']
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from sygnify.connectors.base import WriteMode, WriteResult
from sygnify.connectors.local.paths import relative_to_root
from sygnify.errors import ConfigurationError
from sygnify.io.commits import write_committed
from sygnify.io.files import atomic_write
from sygnify.io.formats import FileFormat, WriteOptions, detect_format, write_table
from sygnify.io.partitions import PARTITIONS_FILE

__all__ = ["write_dataset", "write_file"]


def write_file(
    root: Path,
    table: pa.Table,
    path: Path,
    target: str,
    mode: WriteMode,
    format: str | None,
    options: WriteOptions | None = None,
) -> WriteResult:
    """Replace the single file ``path`` (``target`` under ``root``) with ``table`` atomically."""
    if path.exists() and mode == "append":
        raise ConfigurationError(
            f"cannot append to the single file {target!r}; write to a directory "
            "(a target without extension) to append part files, or use mode='overwrite'",
            resource=target,
        )
    fmt = detect_format(target, format)
    atomic_write(path, lambda out: write_table(table, out, fmt, options))
    return WriteResult(target=target, rows=table.num_rows, paths=[relative_to_root(root, path)])


def write_dataset(
    root: Path,
    table: pa.Table,
    directory: Path,
    target: str,
    mode: WriteMode,
    fmt: FileFormat,
    partition_by: Sequence[str] | None,
    *,
    write_id: str | None = None,
    options: WriteOptions | None = None,
) -> WriteResult:
    """Add ``table`` to the directory dataset ``directory`` as new part files (or replace it).

    ``partition_by`` writes hive partitions (``col=value/``). The parts and then one commit
    file are written (:mod:`sygnify.io.commits`): readers see all of the write or none of
    it, and ``overwrite`` hides the old contents only once the new ones are complete.
    """
    done = write_committed(
        DirectoryFiles(directory),
        table,
        fmt,
        partition_by,
        mode=mode,
        write_id=write_id,
        options=options,
        target=target,
    )
    final_paths = [
        relative_to_root(root, directory / path)
        for path in done.files
        if path.rsplit("/", 1)[-1] != PARTITIONS_FILE  # the partition types, not a part
    ]
    return WriteResult(target=target, rows=done.rows, paths=sorted(final_paths))


class DirectoryFiles:
    """The files of one local dataset directory, for :func:`sygnify.io.commits.commit`
    (each written by the one atomic write: temporary sibling, fsync, rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, path: str, write: Callable[[BinaryIO], None]) -> None:
        atomic_write(self.directory / path, write)

    def list(self) -> list[tuple[str, float | None]]:
        if not self.directory.is_dir():
            return []
        found: list[tuple[str, float | None]] = []
        for directory, _, names in os.walk(self.directory):
            base = Path(directory)
            for name in names:
                path = base / name
                with contextlib.suppress(FileNotFoundError):  # removed while listing
                    found.append((path.relative_to(self.directory).as_posix(), path.stat().st_mtime))
        return found

    def read(self, path: str) -> bytes:
        return (self.directory / path).read_bytes()

    def delete(self, paths: Sequence[str]) -> None:
        parents: set[Path] = set()
        for path in paths:
            (self.directory / path).unlink(missing_ok=True)
            parents.add((self.directory / path).parent)
        # Partition directories left empty go too (deepest first; never the dataset itself).
        for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            while parent != self.directory and parent.is_relative_to(self.directory):
                try:
                    parent.rmdir()
                except OSError:  # not empty
                    break
                parent = parent.parent
