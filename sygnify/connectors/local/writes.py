"""Writes of the ``local`` connector: all or nothing, never a half-written file in view.

A single file is written to a temporary name beside it and renamed over the target; a
directory dataset (plain part files or hive partitions) is written to a staging directory
next to it and its files moved in only once all of them are complete. Both go through the
one atomic write of :mod:`sygnify.io.files` (fsync of the file, rename, fsync of the
directory), so a crash leaves the old file or the new one, never a torn one::

    >>> import tempfile
    >>> from pathlib import Path
    >>> import pyarrow as pa
    >>> root = Path(tempfile.mkdtemp()).resolve()
    >>> table = pa.table({"day": ["d1", "d2"], "amount": [5, 7]})
    >>> write_dataset(root, table, root / "tx", "tx/", "overwrite", "parquet", ["day"]).paths[0]
    'tx/day=d1/part-...-0.parquet'
    >>> write_file(root, table, root / "tx.csv", "tx.csv", "append", None).paths
    ['tx.csv']
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from sygnify.connectors.base import WriteMode, WriteResult
from sygnify.connectors.local.paths import TEMP_PREFIX, relative_to_root
from sygnify.errors import ConfigurationError, SchemaError
from sygnify.io.files import atomic_write, publish
from sygnify.io.formats import FileFormat, detect_format, write_parts, write_table
from sygnify.io.partitions import PARTITIONS_FILE

__all__ = ["write_dataset", "write_file"]


def write_file(
    root: Path, table: pa.Table, path: Path, target: str, mode: WriteMode, format: str | None
) -> WriteResult:
    """Replace the single file ``path`` (``target`` under ``root``) with ``table`` atomically."""
    if path.exists() and mode == "append":
        raise ConfigurationError(
            f"cannot append to the single file {target!r}; write to a directory "
            "(a target without extension) to append part files, or use mode='overwrite'",
            resource=target,
        )
    fmt = detect_format(target, format)
    atomic_write(path, lambda out: write_table(table, out, fmt))
    return WriteResult(target=target, rows=table.num_rows, paths=[relative_to_root(root, path)])


def write_dataset(
    root: Path,
    table: pa.Table,
    directory: Path,
    target: str,
    mode: WriteMode,
    fmt: FileFormat,
    partition_by: Sequence[str] | None,
) -> WriteResult:
    """Add ``table`` to the directory dataset ``directory`` as new part files (or replace it).

    ``partition_by`` writes hive partitions (``col=value/``); ``overwrite`` removes the
    directory's old contents only once the new files are staged.
    """
    missing = [column for column in partition_by or [] if column not in table.column_names]
    if partition_by and fmt == "json":
        raise ConfigurationError("partition_by needs format parquet, csv or ipc", resource=target)
    if missing:
        raise SchemaError(f"partition columns not in the data: {', '.join(missing)}", resource=target)
    staging = directory.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        written = write_parts(table, staging, fmt, partition_by)
        if mode == "overwrite" and directory.exists():
            shutil.rmtree(directory)
        final_paths = []
        for staged in written:
            relative = staged.relative_to(staging)
            destination = directory / relative
            publish(staged, destination)
            if destination.name != PARTITIONS_FILE:  # the partition types, not a part
                final_paths.append(relative_to_root(root, destination))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return WriteResult(target=target, rows=table.num_rows, paths=sorted(final_paths))
