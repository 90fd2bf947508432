"""Parts: units of source data that load themselves, so that workers read their own data.

A :class:`FilePart` is a file, or some row groups of a Parquet file, addressed by path:
a worker process (or a Dask/Ray worker) reads it itself, and a transient failure retries
just that part. A :class:`TablePart` carries its rows by value.

>>> import pyarrow as pa
>>> part = TablePart(0, "table[0:3]", pa.table({"x": [1, 2, 3]}), 3)
>>> [b.num_rows for b in part.batches(2)]
[2, 1]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pafs
import pyarrow.ipc as pa_ipc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from sygnify.errors import DataQualityError, NotFoundError, SygnifyError
from sygnify.io.formats import FileFormat
from sygnify.io.untrusted import check_file

__all__ = [
    "CSV_BLOCK",
    "BadRow",
    "FilePart",
    "Part",
    "TablePart",
    "ipc_batches",
    "open_input",
    "unreadable_as_error",
]

#: Bytes per block when reading CSV.
CSV_BLOCK = 1 << 20


@dataclass(frozen=True)
class BadRow:
    """A row that could not be parsed (e.g. a CSV line with the wrong number of fields)."""

    origin: str
    number: int | None
    text: str
    reason: str


class Part:
    """A unit of source data that can load itself (picklable; workers call ``batches``)."""

    index: int
    origin: str
    rows: int | None

    def batches(self, batch_rows: int, bad_rows: list[BadRow] | None = None) -> Iterator[pa.RecordBatch]:
        """The part's data in batches of at most ``batch_rows`` rows.

        Unparseable rows are appended to ``bad_rows`` when it is given, else raise.
        """
        raise NotImplementedError

    def scan(self) -> pl.LazyFrame | None:
        """The part as a Polars scan of its rows, when Polars can read it directly."""
        return None

    def chunk_spans(self, rows: int) -> list[tuple[str, int, int]]:
        """(label, first row, row count) of each chunk of at most ``rows`` rows of a part
        whose row count is known: the labels every mode gives a scanned part's chunks.

        >>> TablePart(3, "t", pa.table({"x": range(5)}), rows=5).chunk_spans(2)
        [('000003-0000', 0, 2), ('000003-0001', 2, 2), ('000003-0002', 4, 1)]
        """
        total = self.rows or 0
        return [
            (f"{self.index:06d}-{sub:04d}", offset, min(rows, total - offset))
            for sub, offset in enumerate(range(0, total, rows))
        ]


@dataclass(frozen=True)
class TablePart(Part):
    """In-memory data (a zero-copy slice); shipped by value to other processes."""

    index: int
    origin: str
    table: pa.Table
    rows: int | None = None

    def batches(self, batch_rows: int, bad_rows: list[BadRow] | None = None) -> Iterator[pa.RecordBatch]:
        yield from self.table.to_batches(max_chunksize=batch_rows)


@dataclass(frozen=True)
class FilePart(Part):
    """A file, or some row groups of a Parquet file, read by whoever runs the part."""

    index: int
    origin: str
    path: str
    format: FileFormat
    filesystem: pafs.FileSystem | None = None
    row_groups: tuple[int, ...] | None = None
    rows: int | None = None
    csv_columns: tuple[str, ...] | None = field(default=None, compare=False)
    #: Decode Parquet columns on Arrow's thread pool. Off under a memory budget: every
    #: pool thread keeps its own allocator cache, which costs more memory than a chunk.
    threads: bool = field(default=True, compare=False)
    #: The file row of the part's first row group (Parquet), for :meth:`scan`.
    first_row: int | None = field(default=None, compare=False)
    #: Read only these columns (Parquet; those the file lacks are left for the schema
    #: check to report). None reads every column.
    columns: tuple[str, ...] | None = field(default=None, compare=False)
    #: Decode a JSON lines or IPC file in a subprocess first (a reader crash becomes an error).
    isolate: bool = field(default=False, compare=False)

    def scan(self) -> pl.LazyFrame | None:
        """The part as a Polars scan of its rows (local Parquet only), else None.

        A scan lets Polars read only the columns the transform uses and fuse reading,
        the transform and a partial aggregation into one query per chunk.
        """
        local = self.filesystem is None or isinstance(self.filesystem, pafs.LocalFileSystem)
        if self.format != "parquet" or not local or self.first_row is None or self.rows is None:
            return None
        return pl.scan_parquet(self.path).slice(self.first_row, self.rows)

    def batches(self, batch_rows: int, bad_rows: list[BadRow] | None = None) -> Iterator[pa.RecordBatch]:
        with unreadable_as_error(self.path, self.origin):
            yield from self._batches(batch_rows, bad_rows)

    def _batches(self, batch_rows: int, bad_rows: list[BadRow] | None) -> Iterator[pa.RecordBatch]:
        if self.format == "parquet":
            parquet = pq.ParquetFile(self.path, filesystem=self.filesystem)
            rgs = list(self.row_groups) if self.row_groups is not None else None
            columns = None
            if self.columns is not None:
                columns = [name for name in self.columns if name in parquet.schema_arrow.names]
            yield from parquet.iter_batches(
                batch_size=batch_rows, row_groups=rgs, columns=columns, use_threads=self.threads
            )
        elif self.format == "ipc":
            # Checked first: every declared buffer present, every batch valid (a bit-flipped
            # file otherwise makes Polars allocate petabytes and abort).
            check_file(self.path, "ipc", self.filesystem, origin=self.origin, isolate=self.isolate)
            with open_input(self.path, self.filesystem) as stream:
                for batch in ipc_batches(stream.read()):
                    yield from pa.Table.from_batches([batch]).to_batches(max_chunksize=batch_rows)
        elif self.format == "json":
            check_file(self.path, "json", self.filesystem, origin=self.origin, isolate=self.isolate)
            with open_input(self.path, self.filesystem) as stream:
                yield from pa_json.read_json(stream).to_batches(max_chunksize=batch_rows)
        else:
            yield from self._csv(batch_rows, bad_rows)

    def _csv(self, batch_rows: int, bad_rows: list[BadRow] | None) -> Iterator[pa.RecordBatch]:
        def on_invalid(row: Any) -> str:
            if bad_rows is None:
                return "error"
            reason = f"expected {row.expected_columns} fields, got {row.actual_columns}"
            bad_rows.append(BadRow(self.origin, row.number, row.text, reason))
            return "skip"

        # Columns are read as text and typed per chunk by the handler, so one bad value
        # costs its row, not the whole file (pyarrow would fail the block). Where bad rows
        # are kept, text is read as bytes and checked row by row: invalid UTF-8 costs its
        # row too, not the block.
        text = pa.binary() if bad_rows is not None else pa.string()
        convert = pa_csv.ConvertOptions(
            column_types=dict.fromkeys(self.csv_columns, text) if self.csv_columns else None,
            strings_can_be_null=True,
        )
        with open_input(self.path, self.filesystem) as stream:
            reader = pa_csv.open_csv(
                stream,
                read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK),
                parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=convert,
            )
            seen = 0
            for batch in reader:
                table = pa.Table.from_batches([batch])
                if bad_rows is not None and self.csv_columns:
                    table = _valid_text(batch, self.origin, seen, bad_rows)
                    seen += batch.num_rows
                yield from table.to_batches(max_chunksize=batch_rows)


def _invalid_utf8(values: pa.Array, offset: int = 0) -> list[int]:
    """Indexes of the values of the binary array ``values`` that are not UTF-8: the whole
    array checked at once (SIMD), halves checked again only where that fails.

    >>> _invalid_utf8(pa.array([b"a", b"\\xff", b"b", None, b"\\xc3("], pa.binary()))
    [1, 4]
    """
    try:
        values.view(pa.string()).validate(full=True)
        return []
    except pa.ArrowInvalid:
        if len(values) == 1:
            return [offset]
    half = len(values) // 2
    return _invalid_utf8(values.slice(0, half), offset) + _invalid_utf8(values.slice(half), offset + half)


def _valid_text(batch: pa.RecordBatch, origin: str, first: int, bad_rows: list[BadRow]) -> pa.Table:
    """``batch``'s binary columns as text, less the rows whose bytes are not UTF-8 (each one a
    bad row naming its column and its line); ``first``: the file's rows before this batch.

    >>> bad: list[BadRow] = []
    >>> batch = pa.record_batch({"a": pa.array([b"ok", b"\\xff", None], pa.binary())})
    >>> _valid_text(batch, "t.csv", 0, bad).column(0).to_pylist(), [(b.number, b.reason) for b in bad]
    (['ok', None], [(3, "invalid UTF-8 in column 'a'")])
    """
    broken: dict[int, str] = {}
    for index, column_field in enumerate(batch.schema):
        if pa.types.is_binary(column_field.type):
            for row in _invalid_utf8(batch.column(index)):
                broken.setdefault(row, column_field.name)
    for row, column in sorted(broken.items()):
        values = [batch.column(i)[row].as_py() for i in range(batch.num_columns)]
        line = b",".join(value if isinstance(value, bytes) else b"" for value in values)
        reason = f"invalid UTF-8 in column {column!r}"
        bad_rows.append(BadRow(origin, first + row + 2, line.decode("utf-8", "replace"), reason))
    table = pa.Table.from_batches([batch])
    if broken:
        keep = np.ones(batch.num_rows, dtype=bool)
        keep[list(broken)] = False
        table = table.filter(pa.array(keep))
    schema = pa.schema(
        [pa.field(f.name, pa.string()) if pa.types.is_binary(f.type) else f for f in batch.schema]
    )
    return table.cast(schema)


@contextlib.contextmanager
def unreadable_as_error(path: str, origin: str | None = None) -> Iterator[None]:
    """Raise what reading ``path`` raised as a sygnify error naming the file: a missing file
    is a :class:`~sygnify.errors.NotFoundError`, one pyarrow cannot decode (zero bytes,
    truncated, corrupt) a :class:`~sygnify.errors.DataQualityError`.

    >>> with unreadable_as_error("x.parquet"):
    ...     raise pa.ArrowInvalid("Parquet file size is 0 bytes")
    Traceback (most recent call last):
    ...
    sygnify.errors.DataQualityError: cannot read x.parquet: Parquet file size is 0 bytes
    """
    where = origin or path
    try:
        yield
    except SygnifyError:
        raise
    except FileNotFoundError as exc:
        raise NotFoundError(f"{where}: {exc}", resource=path) from exc
    except (pa.ArrowException, OSError, UnicodeDecodeError, RecursionError) as exc:
        raise DataQualityError(f"cannot read {where}: {exc}", resource=path) from exc


def ipc_batches(data: pa.Buffer | bytes) -> Iterator[pa.RecordBatch]:
    """The record batches of an Arrow IPC file, or of an IPC stream.

    >>> import pyarrow as pa, pyarrow.ipc as ipc
    >>> sink = pa.BufferOutputStream()
    >>> with ipc.new_file(sink, pa.schema([("x", pa.int64())])) as out:
    ...     out.write_table(pa.table({"x": [1, 2, 3]}))
    >>> [b.num_rows for b in ipc_batches(sink.getvalue())]
    [3]
    """
    try:
        reader = pa_ipc.open_file(data)
    except pa.ArrowInvalid:
        yield from pa_ipc.open_stream(data)
        return
    for i in range(reader.num_record_batches):
        yield reader.get_batch(i)


def open_input(path: str, filesystem: pafs.FileSystem | None) -> Any:
    """A readable stream of ``path``, local or on ``filesystem``."""
    if filesystem is None:
        return pa.OSFile(path, "rb")
    return filesystem.open_input_stream(path)
