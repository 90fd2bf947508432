"""Writes of the object-store connectors: one object replaced whole, or a dataset committed at once.

A single object is encoded to a local temporary file and uploaded in one PUT (or one
multipart upload, completed only when every part is in): readers see the old object or
the new one. A dataset write puts its part objects and then one commit object
(:mod:`sygnify.io.commits`), so sygnify's readers see all of it or none of it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from sygnify.connectors._objectstore.store import ObjectStore
from sygnify.connectors.base import WriteMode, WriteResult
from sygnify.errors import ConfigurationError
from sygnify.io.commits import write_committed
from sygnify.io.formats import SUFFIX, WriteOptions, detect_format, format_of_file, write_table
from sygnify.io.partitions import PARTITIONS_FILE

__all__ = ["write_to_store"]


def write_to_store(
    store: ObjectStore[Any],
    table: pa.Table,
    target: str,
    *,
    mode: WriteMode,
    format: str | None,
    partition_by: Sequence[str] | None,
    write_id: str | None,
    options: WriteOptions,
) -> WriteResult:
    """Write ``table`` to ``target`` of ``store`` (see ``ObjectStoreConnector.write``)."""
    if mode not in ("append", "overwrite"):
        raise ConfigurationError(f"mode must be 'append' or 'overwrite', got {mode!r}", resource=target)
    bucket, key, as_url = store.locate(target)
    is_object = format_of_file(key) is not None and not key.endswith("/") and not partition_by
    if is_object:
        return _write_object(store, table, target, bucket, key, as_url, mode, format, options)
    fmt = detect_format(target, format or "parquet")
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    done = write_committed(
        StoreFiles(store, bucket, prefix),
        table,
        fmt,
        partition_by,
        mode=mode,
        write_id=write_id,
        options=options,
        target=target,
        max_in_flight=store.config.max_concurrency,
    )
    parts = [path for path in done.files if path.rsplit("/", 1)[-1] != PARTITIONS_FILE]
    return WriteResult(
        target=target, rows=done.rows, paths=sorted(store.display(bucket, prefix + p, as_url) for p in parts)
    )


def _write_object(
    store: ObjectStore[Any],
    table: pa.Table,
    target: str,
    bucket: str,
    key: str,
    as_url: bool,
    mode: WriteMode,
    format: str | None,
    options: WriteOptions,
) -> WriteResult:
    fmt = detect_format(key, format)
    if mode == "append" and store.exists(store.url(bucket, key)):
        raise ConfigurationError(
            f"cannot append to the single object {target!r}; write to a prefix "
            "(a target without extension) to append part objects, or use mode='overwrite'",
            resource=target,
        )
    with tempfile.TemporaryDirectory(prefix="sygnify-stage-") as staging:
        local = Path(staging) / f"object{SUFFIX[fmt]}"
        write_table(table, str(local), fmt, options)
        with local.open("rb") as handle:
            store.put_stream(bucket, key, handle)
    return WriteResult(target=target, rows=table.num_rows, paths=[store.display(bucket, key, as_url)])


class StoreFiles:
    """The files of one dataset prefix of an object store, for :func:`sygnify.io.commits.commit`.

    Each file is one PUT (or one completed multipart upload): all of it or nothing.
    """

    def __init__(self, store: ObjectStore[Any], bucket: str, prefix: str) -> None:
        self.store, self.bucket, self.prefix = store, bucket, prefix

    def put(self, path: str, write: Callable[[BinaryIO], None]) -> None:
        # Encoded to a local temporary file first: memory stays bounded by the part size.
        with tempfile.TemporaryFile(prefix="sygnify-part-") as handle:
            write(handle)
            handle.seek(0)
            self.store.put_stream(self.bucket, self.prefix + path.lstrip("/"), handle)

    def list(self) -> list[tuple[str, float | None]]:
        return [
            (info.key[len(self.prefix) :], info.last_modified.timestamp() if info.last_modified else None)
            for info in self.store.iter_objects(self.bucket, self.prefix)
        ]

    def read(self, path: str) -> bytes:
        return self.store.get_range(self.bucket, self.prefix + path, 0, None, operation="write")

    def delete(self, paths: Sequence[str]) -> None:
        if paths:
            self.store.delete_keys(self.bucket, [self.prefix + path for path in paths])
