"""File formats shared by the file and object-store connectors: detect, scan, read, write."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal, TypeAlias, get_args

import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

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

__all__ = [
    "FileFormat",
    "FilePutter",
    "PartEncoder",
    "detect_format",
    "polars_scan",
    "pyarrow_format",
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
    **options: Any,
) -> pl.LazyFrame:
    """A Polars lazy scan over ``files`` (native readers: projection/predicate pushdown).

    ``hive_schema`` is the partition columns' schema (:func:`sygnify.io.partitions.partition_schema`),
    so Polars types them as every other reader does. Polars reads CSV and JSON lines without
    hive partitioning: given ``hive_paths`` (the files' paths relative to the dataset root),
    their partition columns are added per partition instead. ``options`` go to the Polars
    scanner (``credential_provider``)."""
    sources = list(files)
    partitioned = hive_partitioning and hive_schema is not None and len(hive_schema) > 0
    if fmt in ("csv", "json") and partitioned and hive_paths is not None:
        assert hive_schema is not None
        groups: dict[PartitionColumns, list[str]] = {}
        for path, columns in zip(sources, decoded_partitions(hive_paths, hive_schema)):
            groups.setdefault(columns, []).append(path)
        scans = [
            with_partition_columns(polars_scan(fmt, group, storage_options=storage_options, **options), part)
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
        return pl.scan_csv(sources, storage_options=storage_options, **options)
    return pl.scan_ndjson(sources, storage_options=storage_options, **options)


def write_table(table: pa.Table, sink: str | BinaryIO, fmt: FileFormat) -> None:
    """Write ``table`` to a path or binary file object in ``fmt``."""
    if fmt == "parquet":
        pq.write_table(table, sink)
    elif fmt == "csv":
        pa_csv.write_csv(table, sink)
    elif fmt == "ipc":
        with pa_ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    else:
        buffer = io.BytesIO()
        pl.from_arrow(table).write_ndjson(buffer)  # type: ignore[union-attr]
        if isinstance(sink, str):
            with open(sink, "wb") as handle:
                handle.write(buffer.getvalue())
        else:
            sink.write(buffer.getvalue())


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
    name: str | None = None,
    encode: PartEncoder | None = None,
    put: FilePutter | None = None,
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

    Every part is named ``name`` (default ``part-<uuid>-0<suffix>``: new files, never a
    replaced one). ``encode(part, path)`` gives the function that writes a part's bytes
    (default :func:`write_table` in ``fmt``); ``put(path, write)`` puts a file (default: a
    local file, its directories made). Sinks pass both to write through a pyarrow
    filesystem, atomically.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> table = pa.table({"cat": ["a/b", None], "v": [1, 2]})
    >>> [p.relative_to(root).as_posix() for p in write_parts(table, root, "csv", ["cat"], name="p.csv")]
    ['cat=a%2Fb/p.csv', 'cat=__HIVE_DEFAULT_PARTITION__/p.csv', '_sygnify_partitions.json']
    >>> empty = write_parts(table.slice(0, 0), root / "empty", "parquet", ["cat"], name="p.parquet")
    >>> [p.relative_to(root / "empty").as_posix() for p in empty]
    ['cat=__HIVE_DEFAULT_PARTITION__/p.parquet', '_sygnify_partitions.json']
    """
    basename = name or f"part-{uuid.uuid4().hex}-0{SUFFIX[fmt]}"
    encoder = encode or (lambda part, _path: lambda out: write_table(part, out, fmt))
    putter = put or _put_local
    root = os.fspath(directory).rstrip("/")
    if put is None:
        Path(root).mkdir(parents=True, exist_ok=True)
    if not partition_by:
        path = f"{root}/{basename}"
        putter(path, encoder(table, path))
        return [Path(path)]
    parts = list(split_partitions(table, partition_by))
    if not parts:  # no rows: one empty part keeps the data columns' schema
        null_path = "/".join(f"{column}={NULL_PARTITION}" for column in partition_by)
        parts = [(null_path, table.drop_columns(list(partition_by)))]
    written: list[Path] = []
    for relative, part in parts:
        path = f"{root}/{relative}/{basename}"
        putter(path, encoder(part, path))
        written.append(Path(path))
    schema = pa.schema([table.schema.field(column) for column in partition_by])
    text = partitions_file_text(schema).encode("utf-8")
    types = f"{root}/{PARTITIONS_FILE}"

    def write_types(out: BinaryIO) -> None:
        out.write(text)

    putter(types, write_types)
    return [*written, Path(types)]
