"""Where a run's output goes: Parquet (file or dataset), Arrow IPC, a connector, a callback.

Each chunk's output is written under a *label* (``"00000007"``): dataset sinks name part
files after it, so writing the same chunk twice replaces the file instead of duplicating
rows. That is what makes incremental runs exactly-once after a crash.

>>> import tempfile, pyarrow as pa
>>> sink = as_sink(tempfile.mkdtemp() + "/out/")
>>> paths = sink.write(pa.table({"x": [1, 2]}), "00000000")
>>> [p.rsplit("/", 1)[-1] for p in paths]
['part-00000000.parquet']
"""

from __future__ import annotations

import inspect
import io
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from sygnify.connectors.protocols import Writable
from sygnify.errors import ConfigurationError, SchemaError
from sygnify.io import files, formats
from sygnify.io.partitions import PARTITIONS_FILE

__all__ = ["CallbackSink", "ConnectorSink", "IPCSink", "ParquetSink", "Sink", "as_sink", "atomic_write"]


def atomic_write(filesystem: pafs.FileSystem, path: str, write: Callable[[Any], None]) -> None:
    """Deprecated: use :func:`sygnify.io.files.atomic_write` (``path, write, filesystem=...``)."""
    warnings.warn(
        "sygnify.processing.sinks.atomic_write moved to sygnify.io.files.atomic_write(path, write, "
        "filesystem=...); the old name goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    files.atomic_write(path, write, filesystem=filesystem)


class Sink:
    """Base class of sinks.

    ``idempotent``: rewriting a label replaces its output (safe for incremental runs).
    ``parallel_safe``: workers may write their own chunks (the sink pickles by value).
    """

    idempotent = False
    parallel_safe = False
    name = "sink"

    def write(self, table: pa.Table, label: str) -> list[str]:
        raise NotImplementedError

    def close(self) -> list[str]:
        return []

    def replace(self, table: pa.Table) -> list[str]:
        """Write a whole result (an aggregation), replacing what a previous run wrote."""
        return self.write(table, "00000000")


def _parquet_writer(table: pa.Table, compression: Any, path: str) -> Callable[[Any], None]:
    """Write ``table`` as one Parquet file: with Polars, whose writer encodes columns in
    parallel (~3x faster than ``pq.write_table`` on a 400k-row result), when the table is
    one Polars holds as is (a Polars result always is); else with pyarrow, so that the
    file keeps the table's exact Arrow types. A type Parquet cannot store is a
    ``SchemaError``."""
    # pyarrow also takes None or a codec per column: those stay with pyarrow.
    codec = polars_compression(compression)
    frame: pl.DataFrame | None = None
    if codec is not None:
        try:
            converted = pl.from_arrow(table)
            if isinstance(converted, pl.DataFrame) and converted.to_arrow().schema.equals(
                table.schema, check_metadata=True
            ):
                frame = converted
        except Exception:
            frame = None  # a type Polars lacks: pyarrow writes it

    def write(out: Any) -> None:
        try:
            if frame is None or codec is None:
                pq.write_table(table, out, compression=compression)
                return
            buffer = io.BytesIO()
            frame.write_parquet(buffer, compression=codec)
            out.write(buffer.getbuffer())
        except pa.ArrowNotImplementedError as exc:
            raise SchemaError(f"{path}: the data cannot be stored as Parquet: {exc}", resource=path) from exc

    return write


def polars_compression(compression: Any) -> Any:
    """Polars' name for pyarrow's Parquet ``compression`` (None when Polars has no such codec).

    >>> polars_compression("none"), polars_compression("ZSTD"), polars_compression(None)
    ('uncompressed', 'zstd', None)
    """
    return _POLARS_COMPRESSION.get(compression.lower()) if isinstance(compression, str) else None


#: pyarrow's compression names and Polars' for the codecs both write.
_POLARS_COMPRESSION: dict[str, Any] = {
    "zstd": "zstd",
    "snappy": "snappy",
    "lz4": "lz4",
    "gzip": "gzip",
    "brotli": "brotli",
    "none": "uncompressed",
}


class ParquetSink(Sink):
    """A Parquet file (``out.parquet``) or dataset directory (anything else), local or cloud.

    A dataset gets one ``part-<label>.parquet`` per chunk. With ``partition_by`` it gets
    one ``part-<label>-0.parquet`` per chunk and partition, written by
    :func:`sygnify.io.formats.write_parts` (the one hive encoding: nulls, escaped values,
    the partition types stored in ``_sygnify_partitions.json``); every file is written
    atomically, so rewriting a label replaces its parts. A single file is written by one
    ``ParquetWriter`` in chunk order.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        partition_by: Sequence[str] | None = None,
        filesystem: pafs.FileSystem | None = None,
        compression: str | None = "zstd",
    ) -> None:
        self.path = str(path)
        self.partition_by = list(partition_by) if partition_by else None
        self.compression = compression
        self.filesystem, self.target = files.resolve_filesystem(self.path, filesystem)
        self.single_file = self.path.endswith((".parquet", ".pq")) and not self.partition_by
        self.idempotent = not self.single_file
        self.parallel_safe = not self.single_file
        self.name = self.path
        self._writer: pq.ParquetWriter | None = None
        self._written: list[str] = []

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_writer"] = None
        return state

    def write(self, table: pa.Table, label: str) -> list[str]:
        try:
            return self._write(table, label)
        except pa.ArrowNotImplementedError as exc:  # an Arrow type Parquet has no counterpart for
            raise SchemaError(
                f"chunk {label} cannot be stored as Parquet in {self.path}: {exc}", resource=self.path
            ) from exc

    def _write(self, table: pa.Table, label: str) -> list[str]:
        if self.single_file:
            if self._writer is None:
                parent = os.path.dirname(self.target)
                if isinstance(self.filesystem, pafs.LocalFileSystem) and parent:
                    os.makedirs(parent, exist_ok=True)
                self._writer = pq.ParquetWriter(
                    self.target, table.schema, filesystem=self.filesystem, compression=self.compression
                )
                self._written = [self.target]
            try:
                self._writer.write_table(table)
            except ValueError as exc:
                raise SchemaError(
                    f"chunk {label} does not match the schema of {self.path}: {exc}", resource=self.path
                ) from exc
            return []
        if self.partition_by:
            missing = [c for c in self.partition_by if c not in table.column_names]
            if missing:
                raise SchemaError(f"partition columns not in the output: {missing}", resource=self.path)
            written = formats.write_parts(
                table,
                self.target,
                "parquet",
                self.partition_by,
                name=f"part-{label}-0.parquet",
                encode=lambda part, path: _parquet_writer(part, self.compression, path),
                put=lambda path, write: files.atomic_write(path, write, filesystem=self.filesystem),
            )
            return sorted(str(path) for path in written if path.name != PARTITIONS_FILE)
        path = f"{self.target.rstrip('/')}/part-{label}.parquet"
        files.atomic_write(path, _parquet_writer(table, self.compression, path), filesystem=self.filesystem)
        return [path]

    def replace(self, table: pa.Table) -> list[str]:
        if self.single_file:
            write = _parquet_writer(table, self.compression, self.path)
            files.atomic_write(self.target, write, filesystem=self.filesystem)
            return [self.target]
        return self.write(table, "00000000")

    def close(self) -> list[str]:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return list(self._written)


class IPCSink(Sink):
    """An Arrow IPC file (``.arrow``/``.ipc``/``.feather``), written in chunk order."""

    def __init__(self, path: str | Path, *, filesystem: pafs.FileSystem | None = None) -> None:
        self.path = str(path)
        self.name = self.path
        self.filesystem, self.target = files.resolve_filesystem(self.path, filesystem)
        self._stream: Any = None
        self._writer: Any = None

    def write(self, table: pa.Table, label: str) -> list[str]:
        if self._writer is None:
            parent = os.path.dirname(self.target)
            if isinstance(self.filesystem, pafs.LocalFileSystem) and parent:
                os.makedirs(parent, exist_ok=True)
            self._stream = self.filesystem.open_output_stream(self.target)
            self._writer = pa_ipc.new_file(self._stream, table.schema)
        try:
            self._writer.write_table(table)
        except ValueError as exc:
            raise SchemaError(f"chunk {label} does not match {self.path}: {exc}", resource=self.path) from exc
        return []

    def close(self) -> list[str]:
        if self._writer is None:
            return []
        self._writer.close()
        self._stream.close()
        self._writer = self._stream = None
        return [self.target]


class ConnectorSink(Sink):
    """A connector's ``write(data, target, mode=...)`` per chunk (``append``).

    ``write_ids=True`` passes each label as the write's ``write_id`` (local, S3 and Azure Blob
    datasets skip a ``write_id`` already committed), which makes the sink idempotent.
    """

    def __init__(
        self, connector: Writable, target: str, *, write_ids: bool = False, **write_options: Any
    ) -> None:
        self.connector = connector
        self.target = target
        self.write_options = write_options
        self.write_ids = write_ids
        self.idempotent = write_ids
        self.name = f"{getattr(connector, 'name', type(connector).__name__)}:{target}"

    def write(self, table: pa.Table, label: str) -> list[str]:
        options = {**self.write_options, "write_id": label} if self.write_ids else self.write_options
        return list(self.connector.write(table, self.target, **options).paths)

    def replace(self, table: pa.Table) -> list[str]:
        # An upsert by key replaces the rows it names already; anything else overwrites.
        merging = self.write_options.get("mode") == "merge"
        options = self.write_options if merging else {**self.write_options, "mode": "overwrite"}
        return list(self.connector.write(table, self.target, **options).paths)


class CallbackSink(Sink):
    """Calls ``fn(table)`` or ``fn(table, label)`` for every chunk's output."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "callback")
        try:
            self._with_label = len(inspect.signature(fn).parameters) >= 2
        except (TypeError, ValueError):
            self._with_label = False

    def write(self, table: pa.Table, label: str) -> list[str]:
        if self._with_label:
            self.fn(table, label)
        else:
            self.fn(table)
        return []


def as_sink(sink: Any) -> Sink:
    """Turn what the user passed as ``sink`` into a :class:`Sink`."""
    if isinstance(sink, Sink):
        return sink
    if isinstance(sink, str | Path):
        text = str(sink)
        if text.endswith((".arrow", ".ipc", ".feather")):
            return IPCSink(text)
        return ParquetSink(text)
    if isinstance(sink, tuple) and len(sink) == 2 and isinstance(sink[0], Writable):
        return ConnectorSink(sink[0], str(sink[1]))
    if callable(getattr(sink, "write", None)) and getattr(sink, "idempotent", None) is not None:
        return sink  # type: ignore[no-any-return]  # a sink of another layer (RedisStreamSink)
    if callable(sink):
        return CallbackSink(sink)
    raise ConfigurationError(
        f"cannot write to {type(sink).__name__}; pass a Parquet path/dataset directory, an .arrow "
        "path, (connector, target), a callable or a Sink"
    )
