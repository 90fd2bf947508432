"""File formats shared by the file and object-store connectors: detect, scan, read, write."""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal, TypeAlias, get_args

import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from sygnify.errors import ConfigurationError

__all__ = [
    "FileFormat",
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
    storage_options: dict[str, Any] | None = None,
) -> pl.LazyFrame:
    """A Polars lazy scan over ``files`` (native readers: projection/predicate pushdown)."""
    sources = list(files)
    if fmt == "parquet":
        return pl.scan_parquet(sources, hive_partitioning=hive_partitioning, storage_options=storage_options)
    if fmt == "ipc":
        return pl.scan_ipc(sources, hive_partitioning=hive_partitioning, storage_options=storage_options)
    if fmt == "csv":
        return pl.scan_csv(sources, storage_options=storage_options)
    return pl.scan_ndjson(sources, storage_options=storage_options)


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


def write_parts(
    table: pa.Table, directory: Path, fmt: FileFormat, partition_by: Sequence[str] | None
) -> list[Path]:
    """Write ``table`` as new part files under the local ``directory`` (hive partitions with
    ``partition_by``) and return the files written. pyarrow's ``write_dataset`` has no
    JSON writer, so JSON lines go out as one part file (callers refuse partitioned JSON)."""
    basename = f"part-{uuid.uuid4().hex}-{{i}}{SUFFIX[fmt]}"
    if fmt == "json":
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / basename.format(i=0)
        write_table(table, str(path), "json")
        return [path]
    written: list[Path] = []
    ds.write_dataset(
        table,
        directory,
        format=fmt,
        basename_template=basename,
        partitioning=list(partition_by) if partition_by else None,
        partitioning_flavor="hive" if partition_by else None,
        file_visitor=lambda written_file: written.append(Path(written_file.path)),
    )
    return written
