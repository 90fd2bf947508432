"""Where a run's data comes from: files, connectors, Arrow/Polars/pandas data, iterators.

Every input becomes a :class:`Source` with up to three ways to read it:

- ``lazy()``: a Polars ``LazyFrame`` when the source is scannable (files, a connector's
  ``scan()``, in-memory frames), so streaming mode can hand the whole job to Polars;
- ``parts(rows)``: picklable :class:`~sygnify.processing.parts.Part` s (see that module):
  files are addressed by path and Parquet row groups, so a worker process or a Dask
  worker reads its part itself and a transient failure retries just that part;
- ``schema()`` / ``total_rows()`` / ``bytes_per_row()``: what is known before reading.

>>> import polars as pl
>>> source = as_source(pl.DataFrame({"x": [1, 2, 3]}))
>>> [p.origin for p in source.parts(2)], source.total_rows()
(['table[0:2]', 'table[2:3]'], 3)
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sygnify.connectors.protocols import Readable
from sygnify.errors import ConfigurationError, NotFoundError, SygnifyError
from sygnify.io.arrow import to_arrow_table
from sygnify.io.commits import LOG_DIR, CommitFilter, Log, dataset_root
from sygnify.io.files import (
    find_files,
    glob_matcher,
    glob_prefix,
    has_glob,
    is_data_file,
    resolve_filesystem,
)
from sygnify.io.formats import FileFormat, detect_format, format_of_file, polars_scan
from sygnify.io.partitions import (
    PARTITIONS_FILE,
    PartitionColumns,
    decoded_partitions,
    partition_schema,
    read_partitions_file,
    with_partition_columns,
)
from sygnify.io.untrusted import check_names
from sygnify.processing.parts import (
    CSV_BLOCK,
    BadRow,
    FilePart,
    Part,
    TablePart,
    open_input,
    unreadable_as_error,
)

__all__ = ["BadRow", "ConnectorSource", "FileSource", "Part", "Source", "as_source"]


class Source:
    """Base class of sources; see the module docstring."""

    origin: str = "source"

    def lazy(self) -> pl.LazyFrame | None:
        return None

    def parts(self, rows: int) -> Iterator[Part]:
        raise NotImplementedError

    def schema(self) -> pa.Schema | None:
        return None

    def total_rows(self) -> int | None:
        return None

    def bytes_per_row(self) -> float | None:
        return None

    def files(self) -> list[str] | None:
        return None


def _slices(table: pa.Table, rows: int, origin: str, start: int = 0) -> Iterator[TablePart]:
    for index, offset in enumerate(range(0, table.num_rows, rows), start):
        piece = table.slice(offset, rows)
        yield TablePart(index, f"{origin}[{offset}:{offset + piece.num_rows}]", piece, piece.num_rows)


class TableSource(Source):
    """Arrow tables, Polars/pandas frames: already in memory, sliced zero-copy."""

    origin = "table"

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def lazy(self) -> pl.LazyFrame:
        return pl.from_arrow(self.table).lazy()  # type: ignore[union-attr]

    def parts(self, rows: int) -> Iterator[Part]:
        yield from _slices(self.table, rows, self.origin)

    def schema(self) -> pa.Schema:
        return self.table.schema

    def total_rows(self) -> int:
        return int(self.table.num_rows)

    def bytes_per_row(self) -> float | None:
        return self.table.nbytes / self.table.num_rows if self.table.num_rows else None


class IteratorSource(Source):
    """A one-shot stream: an iterator of batches/tables/frames, a RecordBatchReader, a LazyFrame."""

    def __init__(self, stream: Iterable[Any] | pl.LazyFrame, origin: str = "stream") -> None:
        self.stream = stream
        self.origin = origin
        self._used = False

    def lazy(self) -> pl.LazyFrame | None:
        return self.stream if isinstance(self.stream, pl.LazyFrame) else None

    def _batches(self, rows: int) -> Iterator[pa.RecordBatch | pa.Table]:
        if isinstance(self.stream, pl.LazyFrame):
            for frame in self.stream.collect_batches(chunk_size=rows, engine="streaming"):
                yield frame.to_arrow()
            return
        for item in self.stream:
            if isinstance(item, pa.RecordBatch | pa.Table):
                yield item
            else:
                yield to_arrow_table(item)

    def parts(self, rows: int) -> Iterator[Part]:
        if self._used and not isinstance(self.stream, pl.LazyFrame):
            raise ConfigurationError("this iterator source was already consumed; pass a fresh iterator")
        self._used = True
        index = 0
        for item in self._batches(rows):
            table = item if isinstance(item, pa.Table) else pa.Table.from_batches([item])
            parts = list(_slices(table, rows, f"{self.origin}#{index}", index))
            yield from parts
            index += len(parts)


class ConnectorSource(Source):
    """A connector's dataset or query: ``scan()`` when it can, else ``stream()``.

    >>> import tempfile
    >>> from sygnify import CloudDataConnector
    >>> with CloudDataConnector() as hub:
    ...     lake = hub.connect("local", root=tempfile.mkdtemp())
    ...     _ = lake.write(pl.DataFrame({"x": [1, 2]}), "t/")
    ...     ConnectorSource(lake, "t/").lazy().collect()["x"].to_list()
    [1, 2]
    """

    def __init__(self, connector: Readable, source: str, **stream_options: Any) -> None:
        self.connector = connector
        self.source = source
        self.stream_options = stream_options
        self.origin = f"{getattr(connector, 'name', type(connector).__name__)}:{source}"

    def lazy(self) -> pl.LazyFrame | None:
        if self.stream_options:
            return None
        try:
            return self.connector.scan(self.source)
        except (SygnifyError, NotImplementedError, AttributeError):
            return None  # not scannable (e.g. SQL): stream() will report real errors

    def parts(self, rows: int) -> Iterator[Part]:
        stream = self.connector.stream(self.source, batch_size=rows, **self.stream_options)
        for index, batch in enumerate(stream):
            table = pa.Table.from_batches([batch])
            yield TablePart(index, f"{self.origin}#{index}", table, table.num_rows)


@dataclass(frozen=True)
class PartitionedFilePart(FilePart):
    """A file of a hive-partitioned directory: its rows plus its partition columns
    (name, Arrow type, value), which its path holds and :class:`FileSource` decoded."""

    partitions: PartitionColumns = field(default=(), compare=False)

    def _wanted(self) -> list[tuple[str, pa.DataType, Any]]:
        return [item for item in self.partitions if self.columns is None or item[0] in self.columns]

    def batches(self, batch_rows: int, bad_rows: list[BadRow] | None = None) -> Iterator[pa.RecordBatch]:
        wanted = self._wanted()
        for batch in super().batches(batch_rows, bad_rows):
            for name, type, value in wanted:
                if name not in batch.schema.names:
                    column = pa.array([value] * batch.num_rows, type)
                    batch = batch.append_column(pa.field(name, type), column)
            yield batch

    def scan(self) -> pl.LazyFrame | None:
        frame = super().scan()
        return None if frame is None else with_partition_columns(frame, tuple(self._wanted()))


def _mtime(entry: pafs.FileInfo) -> float | None:
    return entry.mtime.timestamp() if entry.mtime is not None else None


class FileSource(Source):
    """Files by path, directory or glob, local or on an object store (``s3://``, ``gs://``...).

    Cloud paths use ``pyarrow.fs`` (credentials from the environment, or pass
    ``filesystem=``); ``storage_options`` are handed to Polars' scanners.
    """

    def __init__(
        self,
        path: str | Path | Sequence[str | Path],
        *,
        format: str | None = None,
        filesystem: pafs.FileSystem | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.spec = [str(p) for p in path] if isinstance(path, list | tuple) else [str(path)]
        self.explicit_format = format
        self.filesystem = filesystem
        self.storage_options = storage_options
        #: Decode JSON lines and Arrow IPC files once in a subprocess before reading them
        #: (:func:`sygnify.io.untrusted.read_isolated`): a reader crash becomes a
        #: DataQualityError naming the file. Set by ``LargeDataHandler.process(isolate=)``.
        self.isolate = False
        self.origin = ", ".join(self.spec)
        self._files: list[str] | None = None
        # file -> the directory spec it was found under (where its hive partitions start)
        self._bases: dict[str, str] = {}
        self._partitions: dict[str, PartitionColumns] | None = None
        self._remote = filesystem is not None or any(
            "://" in s and not s.startswith("file://") for s in self.spec
        )

    @property
    def is_remote(self) -> bool:
        """Whether the files are on an object store (or a ``filesystem=`` was given)."""
        return self._remote

    def files(self) -> list[str]:
        """The matching data files, sorted (listed once, then cached)."""
        if self._files is None:
            found: list[str] = []
            for spec in self.spec:
                found += self._list(spec)
            if not found:
                raise NotFoundError(f"{self.origin!r} matches no data files", resource=self.origin)
            self._files = found
        return self._files

    def refresh(self) -> None:
        """Forget the cached listing (incremental mode lists again to find new files)."""
        self._files = None
        self._bases = {}
        self._partitions = None

    def _list(self, spec: str) -> list[str]:
        # One glob for every store (sygnify.io.files): the S3 connector's "a/*.parquet" and
        # "s3://b/a/*.parquet" here match the same keys.
        any_format = self.explicit_format is not None
        if not self._remote:
            local = spec.removeprefix("file://")
            found = find_files(local, any_format=any_format)
            if has_glob(local):  # hive partitions start at the literal directory, as the connectors'
                literal = glob_prefix(local)
                head = dataset_root(literal[: literal.rfind("/") + 1])
                if head:
                    self._bases.update(dict.fromkeys(found, head))
            elif os.path.isdir(local):
                self._bases.update(dict.fromkeys(found, local))
            return found
        filesystem, base = resolve_filesystem(spec, self.filesystem)
        self.filesystem = filesystem
        is_glob = has_glob(base)
        root = glob_prefix(base).rsplit("/", 1)[0] if is_glob else base.rstrip("/") or base
        if not is_glob and filesystem.get_file_info(root).type == pafs.FileType.File:
            return [root]
        entries = filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        listed = {entry.path: _mtime(entry) for entry in entries if entry.type == pafs.FileType.File}
        if is_glob:
            found = sorted(filter(glob_matcher(base, any_format=any_format), listed))
            self._bases.update(dict.fromkeys(found, dataset_root(root.rstrip("/") + "/").rstrip("/")))
        else:
            found = sorted(p for p in listed if is_data_file(p[len(root) :], any_format=any_format))
            self._bases.update(dict.fromkeys(found, root))
        # The commit logs of sygnify datasets (sygnify.io.commits), as the connectors honour them.
        logs = {}
        dataset = dataset_root(root.rstrip("/") + "/")
        if dataset.rstrip("/") != root.rstrip("/"):  # a partition directory: its dataset's log
            selector = pafs.FileSelector(f"{dataset}{LOG_DIR}", allow_not_found=True)
            logs[dataset] = Log.parse(
                (entry.base_name, _mtime(entry)) for entry in filesystem.get_file_info(selector)
            )
        keep = CommitFilter(listed.items(), logs=logs)
        return [path for path in found if keep(path, listed[path])]

    def _stored_partitions(self, base: str) -> pa.Schema | None:
        """The partition types a sygnify write stored at ``base``, if it did."""
        path = f"{base.rstrip('/')}/{PARTITIONS_FILE}"
        if not self._remote:
            return read_partitions_file(Path(path).read_bytes()) if os.path.isfile(path) else None
        assert self.filesystem is not None
        if self.filesystem.get_file_info(path).type != pafs.FileType.File:
            return None
        with self.filesystem.open_input_stream(path) as stream:
            return read_partitions_file(stream.read())

    def partitions(self) -> dict[str, PartitionColumns]:
        """Each file's hive partition columns (name, type, value), for files found under a
        directory or a glob (from its literal directory, above any ``k=v`` directories): typed
        and decoded by :mod:`sygnify.io.partitions`, as the connectors read them (files named
        one by one have none)."""
        if self._partitions is None:
            files = self.files()
            by_base: dict[str, list[str]] = {}
            for path in files:
                if path in self._bases:
                    by_base.setdefault(self._bases[path], []).append(path)
            found: dict[str, PartitionColumns] = {}
            for base, paths in by_base.items():
                relative = [path[len(base) :].lstrip("/") for path in paths]
                schema = partition_schema(relative, stored=self._stored_partitions(base))
                found.update(zip(paths, decoded_partitions(relative, schema)))
            self._partitions = found
        return self._partitions

    def only(self, files: Sequence[str]) -> FileSource:
        """This source narrowed to ``files`` (some of :meth:`files`), keeping their hive
        partition columns as the whole source types them."""
        self.partitions()  # typed over every file, before the narrowing
        narrowed = copy.copy(self)
        narrowed.keep(files)
        return narrowed

    def keep(self, files: Sequence[str]) -> None:
        """Narrow this source to ``files`` (some of :meth:`files`), in place."""
        self._files = list(files)
        self.origin = ", ".join(files)

    def format(self) -> FileFormat:
        if self.explicit_format is not None:
            return detect_format("", self.explicit_format)
        formats = {format_of_file(f) for f in self.files()}
        if len(formats) != 1 or None in formats:
            raise ConfigurationError(
                f"{self.origin!r} mixes file formats ({sorted(map(str, formats))}); pass format=",
                resource=self.origin,
            )
        return formats.pop()  # type: ignore[return-value]

    def scannable(self) -> bool:
        """Whether every part of this source is a Polars scan (local Parquet, see
        :meth:`FilePart.scan`), known without reading any file's metadata."""
        if self.format() != "parquet":  # lists the files first, which sets a remote filesystem
            return False
        return self.filesystem is None or isinstance(self.filesystem, pafs.LocalFileSystem)

    def lazy(self) -> pl.LazyFrame | None:
        if self._remote and self.storage_options is None:
            return None
        partitions = self.partitions()
        if not any(partitions.values()):
            return polars_scan(
                self.format(), self.files(), storage_options=self.storage_options, isolate=self.isolate
            )
        groups: dict[PartitionColumns, list[str]] = {}
        for path in self.files():
            groups.setdefault(partitions.get(path, ()), []).append(path)
        return pl.concat(
            [
                with_partition_columns(
                    polars_scan(
                        self.format(), paths, storage_options=self.storage_options, isolate=self.isolate
                    ),
                    values,
                )
                for values, paths in groups.items()
            ]
        )

    def _parquet(self, path: str) -> pq.ParquetFile:
        with unreadable_as_error(path):
            return pq.ParquetFile(path, filesystem=self.filesystem)

    def file_parts(self, path: str, rows: int, start: int = 0) -> list[Part]:
        """The parts of one file: Parquet row groups gathered up to ``rows`` rows."""
        fmt = self.format()
        fs = self.filesystem
        values = self.partitions().get(path, ())
        if fmt != "parquet":
            columns = tuple(self._file_schema().names) if fmt == "csv" else None
            if values:
                return [
                    PartitionedFilePart(
                        start,
                        path,
                        path,
                        fmt,
                        fs,
                        None,
                        None,
                        columns,
                        isolate=self.isolate,
                        partitions=values,
                    )
                ]
            return [FilePart(start, path, path, fmt, fs, None, None, columns, isolate=self.isolate)]
        meta = self._parquet(path).metadata
        parts: list[Part] = []
        group: list[int] = []
        group_rows = first_row = 0
        for rg in range(meta.num_row_groups):
            group.append(rg)
            group_rows += meta.row_group(rg).num_rows
            if group_rows >= rows or rg == meta.num_row_groups - 1:
                origin = f"{path}#rg{group[0]}-{group[-1]}"
                part = FilePart(start + len(parts), origin, path, fmt, fs, tuple(group), group_rows)
                if values:
                    part = PartitionedFilePart(
                        start + len(parts), origin, path, fmt, fs, tuple(group), group_rows, partitions=values
                    )
                parts.append(replace(part, first_row=first_row))
                first_row += group_rows
                group, group_rows = [], 0
        return parts

    def parts(self, rows: int) -> Iterator[Part]:
        index = 0
        for path in self.files():
            parts = self.file_parts(path, rows, index)
            index += len(parts)
            yield from parts

    def schema(self) -> pa.Schema:
        schema = self._file_schema()
        for name, type, _ in self.partitions().get(self.files()[0], ()):
            if name not in schema.names:
                schema = schema.append(pa.field(name, type))
        return schema

    def _file_schema(self) -> pa.Schema:
        first = self.files()[0]
        fmt = self.format()
        if fmt == "parquet":
            return self._parquet(first).schema_arrow
        with unreadable_as_error(first):
            if fmt == "csv":
                with open_input(first, self.filesystem) as stream:
                    schema = pa_csv.open_csv(
                        stream,
                        read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK),
                        parse_options=pa_csv.ParseOptions(invalid_row_handler=lambda row: "skip"),
                    ).schema
                check_names(schema.names, first)
                return schema
            batches = FilePart(0, first, first, fmt, self.filesystem, isolate=self.isolate).batches(1024)
            first_batch = next(iter(batches), None)
            return pa.schema([]) if first_batch is None else first_batch.schema

    def total_rows(self) -> int | None:
        if self.format() != "parquet":
            return None
        return int(sum(self._parquet(f).metadata.num_rows for f in self.files()))

    def bytes_per_row(self) -> float | None:
        if self.format() != "parquet":
            return None
        meta = self._parquet(self.files()[0]).metadata
        if meta.num_row_groups == 0 or meta.row_group(0).num_rows == 0:
            return None
        # Encoded (dictionary/RLE) sizes understate Arrow's in-memory size about twofold.
        return float(2.0 * meta.row_group(0).total_byte_size / meta.row_group(0).num_rows)


def as_source(data: Any) -> Source:
    """Turn whatever the user passed as ``source`` into a :class:`Source`."""
    if isinstance(data, Source):
        return data
    if isinstance(data, str | Path):
        return FileSource(data)
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Readable):
        return ConnectorSource(data[0], str(data[1]))
    if isinstance(data, list) and data and all(isinstance(p, str | Path) for p in data):
        return FileSource(data)
    if isinstance(data, pl.LazyFrame):
        return IteratorSource(data, "lazyframe")
    if isinstance(data, pa.RecordBatchReader):
        return IteratorSource(data, "reader")
    if isinstance(data, pa.Table | pa.RecordBatch | pl.DataFrame) or (
        type(data).__module__.startswith("pandas") and hasattr(data, "to_parquet")
    ):
        return TableSource(to_arrow_table(data))
    if isinstance(data, Iterable):
        return IteratorSource(data, "iterator")
    raise ConfigurationError(
        f"cannot read from {type(data).__name__}; pass a path/glob, (connector, source), an Arrow "
        "table/reader, a Polars or pandas frame, or an iterator of batches"
    )


def __getattr__(name: str) -> Any:
    # ``StreamSource`` was this module's iterator source, named like the stream-source protocol
    # of ``sygnify.streams``; the old name resolves, with a warning, for one release.
    if name == "StreamSource":
        import warnings

        warnings.warn(
            "sygnify.processing.sources.StreamSource is now IteratorSource "
            "(sygnify.streams.StreamSource is the stream-source protocol)",
            DeprecationWarning,
            stacklevel=2,
        )
        return IteratorSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
