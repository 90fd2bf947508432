"""File formats shared by the file and object-store connectors: detect, scan, read, write."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal, TypeAlias, get_args

import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from sygnify.config import parse_size
from sygnify.errors import ConfigurationError
from sygnify.io.partitions import (
    NULL_PARTITION,
    PARTITIONS_FILE,
    PartitionColumns,
    decoded_partitions,
    partitions_file_text,
    polars_hive_schema,
    split_partitions,
    with_partition_columns,
)
from sygnify.io.untrusted import check_files, check_names, has_blank_lines, without_blank_lines

__all__ = [
    "FileFormat",
    "FilePutter",
    "PartEncoder",
    "WriteOptions",
    "detect_format",
    "polars_scan",
    "pyarrow_format",
    "split_by_size",
    "write_parts",
    "write_table",
]

FileFormat: TypeAlias = Literal["parquet", "csv", "json", "ipc"]

EXTENSIONS: dict[str, FileFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".arrow": "ipc",
    ".ipc": "ipc",
    ".feather": "ipc",
}
#: The file extension written for each format.
SUFFIX: dict[FileFormat, str] = {"parquet": ".parquet", "csv": ".csv", "json": ".jsonl", "ipc": ".arrow"}


def detect_format(path: str, explicit: str | None = None) -> FileFormat:
    """The format named by ``explicit``, else by the file extension of ``path``.

    >>> detect_format("data/2024/*.parquet"), detect_format("events.jsonl")
    ('parquet', 'json')
    """
    if explicit is not None:
        if explicit not in get_args(FileFormat):
            raise ConfigurationError(
                f"unknown file format {explicit!r}; use one of {', '.join(get_args(FileFormat))}"
            )
        return explicit  # type: ignore[return-value]
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    raise ConfigurationError(
        f"cannot tell the file format of {path!r} from its extension; pass format= "
        f"(one of {', '.join(get_args(FileFormat))})",
        resource=path,
    )


def format_of_file(path: str) -> FileFormat | None:
    """The format of a data file by its extension, or None for files that are not data."""
    return EXTENSIONS.get(PurePosixPath(path).suffix.lower())


def pyarrow_format(fmt: FileFormat) -> ds.FileFormat:
    """The pyarrow dataset format object for ``fmt``."""
    if fmt == "parquet":
        return ds.ParquetFileFormat()
    if fmt == "csv":
        return ds.CsvFileFormat()
    if fmt == "json":
        return ds.JsonFileFormat()
    return ds.IpcFileFormat()


def polars_scan(
    fmt: FileFormat,
    files: Sequence[str],
    *,
    hive_partitioning: bool = False,
    hive_schema: pa.Schema | None = None,
    hive_paths: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    isolate: bool = False,
    **options: Any,
) -> pl.LazyFrame:
    """A Polars lazy scan over ``files`` (native readers: projection/predicate pushdown).

    Local JSON lines and Arrow IPC files pass :func:`sygnify.io.untrusted.check_files` first
    (``isolate``: decoded once in a subprocess too); local CSV files with empty lines or
    bare-CR line ends are read as pyarrow and DuckDB read them; JSON integers beyond int64
    come out as Float64.

    ``hive_schema`` is the partition columns' schema (:func:`sygnify.io.partitions.partition_schema`),
    so Polars types them as every other reader does. Polars reads CSV and JSON lines without
    hive partitioning: given ``hive_paths`` (the files' paths relative to the dataset root),
    their partition columns are added per partition instead. ``options`` go to the Polars
    scanner (``credential_provider``)."""
    sources = list(files)
    local = [path for path in sources if "://" not in path]
    if fmt in ("json", "ipc"):
        check_files(local, fmt, isolate=isolate)
    partitioned = hive_partitioning and hive_schema is not None and len(hive_schema) > 0
    if fmt in ("csv", "json") and partitioned and hive_paths is not None:
        assert hive_schema is not None
        groups: dict[PartitionColumns, list[str]] = {}
        for path, columns in zip(sources, decoded_partitions(hive_paths, hive_schema)):
            groups.setdefault(columns, []).append(path)
        scans = [
            with_partition_columns(
                polars_scan(fmt, group, storage_options=storage_options, isolate=isolate, **options), part
            )
            for part, group in groups.items()
        ]
        return pl.concat(scans)
    hive: dict[str, Any] = {"hive_partitioning": hive_partitioning}
    if partitioned:
        assert hive_schema is not None
        hive["hive_schema"] = polars_hive_schema(hive_schema)
    if fmt == "parquet":
        return pl.scan_parquet(sources, **hive, storage_options=storage_options, **options)
    if fmt == "ipc":
        return pl.scan_ipc(sources, **hive, storage_options=storage_options, **options)
    if fmt == "csv":
        blank = [path in local and has_blank_lines(path) for path in sources]
        if any(blank):
            frame = _csv_without_blank_lines(sources, blank, storage_options, options)
        else:
            frame = pl.scan_csv(sources, storage_options=storage_options, **options)
        check_names(frame.collect_schema().names(), sources[0] if len(sources) == 1 else ", ".join(sources))
        return frame
    return _without_int128(pl.scan_ndjson(sources, storage_options=storage_options, **options))


def _without_int128(frame: pl.LazyFrame) -> pl.LazyFrame:
    """``frame`` with Int128 columns (JSON integers beyond int64) as Float64, as pyarrow's
    JSON reader types them: Polars cannot hand Int128 to Arrow.

    >>> import io
    >>> scan = pl.scan_ndjson(io.BytesIO(b'{"a": 123456789012345678901234567890}\\n'))
    >>> _without_int128(scan).collect_schema()["a"]
    Float64
    """
    wide = [name for name, dtype in frame.collect_schema().items() if dtype == pl.Int128]
    return frame.with_columns(pl.col(wide).cast(pl.Float64)) if wide else frame


def _csv_without_blank_lines(
    sources: list[str], blank: list[bool], storage_options: dict[str, Any] | None, options: dict[str, Any]
) -> pl.LazyFrame:
    """A scan of CSV ``sources`` in which the files flagged in ``blank`` are read less their
    empty lines (Polars reads each as a row of nulls; pyarrow and DuckDB skip them), with the
    schema a scan of all of them infers."""
    options = dict(options)
    paths_column = options.pop("include_file_paths", None)
    schema = (
        options.get("schema")
        or pl.scan_csv(sources, storage_options=storage_options, **options).collect_schema()
    )
    for inferred in ("schema_overrides", "infer_schema", "infer_schema_length"):
        options.pop(inferred, None)
    options["schema"] = schema
    scans = []
    for path, cleaned in zip(sources, blank):
        if cleaned:
            with open(path, "rb") as handle:
                frame = pl.scan_csv(without_blank_lines(handle.read()), **options)
        else:
            frame = pl.scan_csv(path, storage_options=storage_options, **options)
        if paths_column is not None:
            frame = frame.with_columns(pl.lit(path).alias(paths_column))
        scans.append(frame)
    return pl.concat(scans, how="vertical")


#: Parquet codecs pyarrow writes (``None``: pyarrow's default, snappy).
PARQUET_CODECS = ("none", "snappy", "gzip", "brotli", "lz4", "zstd")


@dataclass(frozen=True)
class WriteOptions:
    """How files are written: ``compression`` (Parquet codec, or ``gzip`` for CSV/JSON lines...),
    ``row_group_size`` (rows per Parquet row group / IPC record batch) and ``max_file_size``
    (bytes per part file: larger data goes in several parts).

    >>> WriteOptions.of(compression="zstd", max_file_size="64MiB")
    WriteOptions(compression='zstd', row_group_size=None, max_file_size=67108864)
    """

    compression: str | None = None
    row_group_size: int | None = None
    max_file_size: int | None = None

    @classmethod
    def of(
        cls,
        *,
        compression: str | None = None,
        row_group_size: int | None = None,
        max_file_size: int | str | None = None,
    ) -> WriteOptions:
        """Checked options (a :class:`~sygnify.errors.ConfigurationError` for a bad value)."""
        if compression is not None and compression.lower() not in PARQUET_CODECS:
            raise ConfigurationError(
                f"unknown compression {compression!r}; use one of {', '.join(PARQUET_CODECS)}",
                resource="compression",
            )
        if row_group_size is not None and (isinstance(row_group_size, bool) or row_group_size < 1):
            raise ConfigurationError(
                f"row_group_size must be >= 1 rows, got {row_group_size!r}", resource="row_group_size"
            )
        size = None if max_file_size is None else parse_size(max_file_size, what="max_file_size")
        return cls(None if compression is None else compression.lower(), row_group_size, size)


def write_table(
    table: pa.Table, sink: str | BinaryIO, fmt: FileFormat, options: WriteOptions | None = None
) -> None:
    """Write ``table`` to a path or binary file object in ``fmt``, shaped by ``options``
    (compression and row-group size apply to Parquet and IPC)."""
    opts = options or WriteOptions()
    if opts.compression not in (None, "none") and fmt in ("csv", "json"):
        raise ConfigurationError(
            f"compression applies to parquet and ipc files, not {fmt}", resource="compression"
        )
    if fmt == "parquet":
        pq.write_table(
            table,
            sink,
            compression=opts.compression or "snappy",
            row_group_size=opts.row_group_size,
        )
    elif fmt == "csv":
        pa_csv.write_csv(table, sink)
    elif fmt == "ipc":
        codec = None if opts.compression in (None, "none") else opts.compression
        if codec not in (None, "lz4", "zstd"):
            raise ConfigurationError(
                f"IPC files compress with lz4 or zstd, not {codec}", resource="compression"
            )
        ipc_options = pa_ipc.IpcWriteOptions(compression="lz4" if codec == "lz4" else codec)
        with pa_ipc.new_file(sink, table.schema, options=ipc_options) as writer:
            writer.write_table(table, max_chunksize=opts.row_group_size)
    else:
        buffer = io.BytesIO()
        pl.from_arrow(table).write_ndjson(buffer)  # type: ignore[union-attr]
        if isinstance(sink, str):
            with open(sink, "wb") as handle:
                handle.write(buffer.getvalue())
        else:
            sink.write(buffer.getvalue())


def split_by_size(table: pa.Table, max_bytes: int | None) -> list[pa.Table]:
    """``table`` in consecutive slices of at most about ``max_bytes`` of Arrow data each
    (encoded files are usually smaller); one slice, however small, keeps the schema.

    >>> [t.num_rows for t in split_by_size(pa.table({"v": list(range(1000))}), 2000)]
    [250, 250, 250, 250]
    """
    if max_bytes is None or table.num_rows <= 1 or table.nbytes <= max_bytes:
        return [table]
    per_row = table.nbytes / table.num_rows
    rows = max(1, int(max_bytes // per_row))
    return [table.slice(start, rows) for start in range(0, table.num_rows, rows)]


#: Writes one part's bytes to a stream: ``encode(part, path)`` gives it (:func:`write_parts`).
PartEncoder: TypeAlias = Callable[[pa.Table, str], Callable[[BinaryIO], None]]
#: Puts a file at a path: ``put(path, write)`` calls ``write(stream)`` (:func:`write_parts`).
FilePutter: TypeAlias = Callable[[str, Callable[[BinaryIO], None]], None]


def _put_local(path: str, write: Callable[[BinaryIO], None]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        write(handle)


def write_parts(
    table: pa.Table,
    directory: str | os.PathLike[str],
    fmt: FileFormat,
    partition_by: Sequence[str] | None,
    *,
    name: str | Callable[[int], str] | None = None,
    encode: PartEncoder | None = None,
    put: FilePutter | None = None,
    options: WriteOptions | None = None,
) -> list[Path]:
    """Write ``table`` as new part files under ``directory`` and return the files written.

    With ``partition_by`` the parts go in hive partitions (``col=value/``, values encoded by
    :func:`sygnify.io.partitions.encode_value`, without those columns in the files) and
    :data:`~sygnify.io.partitions.PARTITIONS_FILE` at ``directory`` holds the partition
    columns' types, so reads restore them; it is the last path returned. A table without
    rows still writes one part, empty, with the data columns' schema, in the null
    partition (``col=__HIVE_DEFAULT_PARTITION__/``): the dataset then reads back as 0 rows
    with every column, and the empty part adds no rows to later appends. pyarrow has no JSON
    writer for datasets, so JSON lines go out as one part file (callers refuse partitioned
    JSON).

    Parts are named by ``name``: a function of the part's number within its partition
    (several when ``options.max_file_size`` splits a partition), or one name (default
    ``part-<uuid>-0<suffix>``: new files, never a replaced one; a split adds ``-<n>``).
    ``encode(part, path)`` gives the function that writes a part's bytes (default
    :func:`write_table` in ``fmt`` with ``options``); ``put(path, write)`` puts a file
    (default: a local file, its directories made). Sinks pass both to write through a
    pyarrow filesystem, atomically.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> table = pa.table({"cat": ["a/b", None], "v": [1, 2]})
    >>> [p.relative_to(root).as_posix() for p in write_parts(table, root, "csv", ["cat"], name="p.csv")]
    ['cat=a%2Fb/p.csv', 'cat=__HIVE_DEFAULT_PARTITION__/p.csv', '_sygnify_partitions.json']
    >>> empty = write_parts(table.slice(0, 0), root / "empty", "parquet", ["cat"], name="p.parquet")
    >>> [p.relative_to(root / "empty").as_posix() for p in empty]
    ['cat=__HIVE_DEFAULT_PARTITION__/p.parquet', '_sygnify_partitions.json']
    """
    opts = options or WriteOptions()
    fixed = name or f"part-{uuid.uuid4().hex}-0{SUFFIX[fmt]}"

    def part_name(index: int) -> str:
        if callable(fixed):
            return fixed(index)
        if index == 0:
            return fixed
        stem, dot, suffix = fixed.partition(".")
        return f"{stem}-{index}{dot}{suffix}"

    encoder = encode or (lambda part, _path: lambda out: write_table(part, out, fmt, opts))
    putter = put or _put_local
    root = os.fspath(directory).rstrip("/")
    if put is None:
        Path(root or ".").mkdir(parents=True, exist_ok=True)

    def join(*names: str) -> str:  # "" is the root of the caller's put(): paths relative to it
        return "/".join(name for name in (root, *names) if name)

    if not partition_by:
        written: list[Path] = []
        for index, piece in enumerate(split_by_size(table, opts.max_file_size)):
            path = join(part_name(index))
            putter(path, encoder(piece, path))
            written.append(Path(path))
        return written
    parts = list(split_partitions(table, partition_by))
    if not parts:  # no rows: one empty part keeps the data columns' schema
        null_path = "/".join(f"{column}={NULL_PARTITION}" for column in partition_by)
        parts = [(null_path, table.drop_columns(list(partition_by)))]
    written = []
    for relative, part in parts:
        for index, piece in enumerate(split_by_size(part, opts.max_file_size)):
            path = join(relative, part_name(index))
            putter(path, encoder(piece, path))
            written.append(Path(path))
    schema = pa.schema([table.schema.field(column) for column in partition_by])
    text = partitions_file_text(schema).encode("utf-8")
    types = join(PARTITIONS_FILE)

    def write_types(out: BinaryIO) -> None:
        out.write(text)

    putter(types, write_types)
    return [*written, Path(types)]
