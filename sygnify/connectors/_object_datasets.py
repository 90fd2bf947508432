"""The dataset half of an object-store connector: read, stream, scan, query and write tables.

:class:`ObjectStoreConnector` adds Arrow/Polars/DuckDB on top of the object operations of
:class:`~sygnify.connectors._object_store.ObjectStore`. A source (an object, a prefix read
with hive partitions, or a glob) is listed once through the SDK, with retries; the listing
is handed to pyarrow as fragments with their sizes, so reading needs no further listing or
HEAD requests. Hive partition values become typed columns::

    >>> partitions = hive_partitions("sales/", ["sales/region=eu/year=2026/a.parquet"])
    >>> [field.name for field in partitions.fields], str(partitions.fields[1].type)
    (['region', 'year'], 'int32')

Where a store's own Arrow filesystem cannot be used (pyarrow's Azure filesystem mis-builds
SAS URLs on path-style endpoints, so the Azure connector avoids it whenever a SAS token is
the credential), :class:`ObjectStoreFileSystem` reads objects through the connector's SDK
instead: one ranged GET per read, each retried and translated.
"""

from __future__ import annotations

import abc
import io
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from sygnify._arrow import DEFAULT_BATCH_SIZE, rebatch, to_arrow_table
from sygnify.connectors._duckdb_sql import DatasetSQL, looks_like_sql
from sygnify.connectors._object_store import (
    _GLOB_CHARS,
    ConfigT,
    ObjectInfo,
    ObjectStore,
    _List,
    glob_pattern,
)
from sygnify.connectors.base import QueryParams, WriteMode, WriteResult
from sygnify.connectors.formats import (
    SUFFIX,
    FileFormat,
    detect_format,
    format_of_file,
    pyarrow_format,
    write_table,
)
from sygnify.connectors.pool import ClientPool
from sygnify.errors import (
    AuthenticationError,
    BucketNotFoundError,
    ConfigurationError,
    ConnectionFailedError,
    DataQualityError,
    ObjectNotFoundError,
    PermissionDeniedError,
    SchemaError,
    SygnifyError,
    ThrottledError,
)

__all__ = ["ObjectStoreConnector", "ObjectStoreFileSystem", "hive_partitions"]


@dataclass(frozen=True)
class _Resolved:
    bucket: str
    files: _List[ObjectInfo]
    fmt: FileFormat
    directory: str | None  # the prefix for hive partitions, for directory sources


@dataclass(frozen=True)
class Partitions:
    """Hive partitions of a listing: one filter expression per file, and the partition fields."""

    expressions: _List[ds.Expression]
    fields: _List[pa.Field]


def _is_data_key(key: str, fmt: FileFormat | None) -> bool:
    name = key.rsplit("/", 1)[-1]
    if not name or name.startswith((".", "_")):
        return False
    return fmt is not None or format_of_file(name) is not None


def _hive_value(raw: str) -> tuple[pa.DataType, Any]:
    try:
        return pa.int32(), int(raw)
    except ValueError:
        return pa.string(), raw


def hive_partitions(directory: str, keys: Sequence[str]) -> Partitions:
    """Partition values of ``keys`` below ``directory`` (``col=value/`` segments).

    A column whose every value is an integer is ``int32``, any other is ``string``.
    """
    values_per_file: _List[dict[str, str]] = []
    for key in keys:
        segments = key[len(directory) :].split("/")[:-1]
        values_per_file.append(
            dict(segment.split("=", 1) for segment in segments if "=" in segment and segment[0] != "=")
        )
    names = list(dict.fromkeys(name for values in values_per_file for name in values))
    types: dict[str, pa.DataType] = {}
    for name in names:
        kinds = {_hive_value(values[name])[0] for values in values_per_file if name in values}
        types[name] = pa.int32() if kinds == {pa.int32()} else pa.string()
    expressions = []
    for values in values_per_file:
        expression = ds.scalar(True)
        for name, raw in values.items():
            value: Any = int(raw) if types[name] == pa.int32() else raw
            expression = expression & (ds.field(name) == pa.scalar(value, types[name]))
        expressions.append(expression)
    return Partitions(expressions, [pa.field(name, types[name]) for name in names])


class ObjectStoreConnector(ObjectStore[ConfigT]):
    """An object store with datasets: ``dataset``, ``stream``, ``scan``, ``query``, ``write``."""

    def __init__(self, config: ConfigT, *, name: str | None = None, pool: ClientPool | None = None):
        super().__init__(config, name=name, pool=pool)
        self._sql = DatasetSQL(config.tables, self._sql_dataset, threads=config.duckdb_threads)
        self._fs_lock = threading.Lock()
        self._sdk_fs: pafs.FileSystem | None = None

    @abc.abstractmethod
    def _arrow_filesystem(self) -> pafs.FileSystem:
        """A pyarrow filesystem for this account (paths are ``bucket/key``)."""

    @abc.abstractmethod
    def _polars_options(self) -> dict[str, Any]:
        """Keyword arguments for Polars cloud scans (``storage_options``, ``credential_provider``)."""

    # -- sources ------------------------------------------------------------------------------

    def _resolve(self, source: str, explicit: str | None) -> _Resolved:
        bucket, key, _ = self._locate(source)
        fmt_hint = detect_format(source, explicit) if explicit is not None else None
        directory: str | None = None
        if _GLOB_CHARS.search(key):
            literal = _GLOB_CHARS.split(key, maxsplit=1)[0]
            pattern = glob_pattern(key)
            files = [
                info
                for info in self._iter_objects(bucket, literal)
                if pattern.match(info.key) and _is_data_key(info.key, fmt_hint)
            ]
        elif key == "" or key.endswith("/") or format_of_file(key) is None:
            directory = key.rstrip("/") + "/" if key.strip("/") else ""
            files = [
                info for info in self._iter_objects(bucket, directory) if _is_data_key(info.key, fmt_hint)
            ]
        else:
            files = [self._call("open", self._head, bucket, key, resource=self._url(bucket, key))]
        if not files:
            raise ObjectNotFoundError(f"{source!r} matches no data objects", resource=source)
        if fmt_hint is not None:
            return _Resolved(bucket, files, fmt_hint, directory)
        formats = {format_of_file(info.key) for info in files}
        if len(formats) != 1 or None in formats:
            names = ", ".join(sorted(str(fmt) for fmt in formats))
            raise ConfigurationError(
                f"{source!r} mixes file formats ({names}); narrow the glob or pass format=", resource=source
            )
        return _Resolved(bucket, files, formats.pop(), directory)  # type: ignore[arg-type]

    # -- datasets -----------------------------------------------------------------------------

    def filesystem(self) -> pafs.FileSystem:
        """The pyarrow filesystem of this connection (paths are ``bucket/key``), built once."""
        with self._fs_lock:
            return self._arrow_filesystem()

    def _sdk_filesystem(self) -> pafs.FileSystem:
        """A read-only Arrow filesystem over this connection's own SDK calls (see the module doc)."""
        if self._sdk_fs is None:
            self._sdk_fs = pafs.PyFileSystem(ObjectStoreFileSystem(self))
        return self._sdk_fs

    def dataset(self, source: str, *, format: str | None = None) -> ds.Dataset:
        """A :class:`pyarrow.dataset.Dataset` over an object, prefix or glob.

        Listing happens once, through the SDK (with retries); object sizes are handed to
        pyarrow so reading needs no extra round trips. Directory sources get hive partitions.
        """
        return self._call("open dataset", self._open_dataset, source, format, resource=source)

    def _open_dataset(self, source: str, fmt: str | None) -> ds.Dataset:
        resolved = self._resolve(source, fmt)
        filesystem = self.filesystem()
        file_format = pyarrow_format(resolved.fmt)
        if resolved.directory is None:
            partitions = Partitions([ds.scalar(True)] * len(resolved.files), [])
        else:
            partitions = hive_partitions(resolved.directory, [info.key for info in resolved.files])
        fragments = [
            file_format.make_fragment(
                f"{resolved.bucket}/{info.key}",
                filesystem=filesystem,
                partition_expression=expression,
                file_size=info.size,
            )
            for info, expression in zip(resolved.files, partitions.expressions)
        ]
        physical = fragments[0].physical_schema
        schema = physical
        for partition_field in partitions.fields:
            if partition_field.name not in schema.names:
                schema = schema.append(partition_field)
        return ds.FileSystemDataset(fragments, schema, file_format, filesystem)

    def stream(
        self,
        source: str,
        *,
        params: QueryParams = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        columns: Sequence[str] | None = None,
        format: str | None = None,
        filter: ds.Expression | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Yield batches of exactly ``batch_size`` rows (the last may be shorter).

        ``source`` is SQL over the configured ``tables`` (starting with SELECT/WITH/FROM...)
        or an object, prefix or glob; ``columns`` and a pyarrow ``filter`` expression are
        pushed down into the scan.
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        self._ensure_open()
        if looks_like_sql(source):
            batches: Iterator[pa.RecordBatch] = self._sql.stream(source, params, batch_size)
        else:
            if params:
                raise ConfigurationError("params apply to SQL sources only", resource=source)
            dataset = self.dataset(source, format=format)
            batches = dataset.to_batches(
                columns=list(columns) if columns else None, filter=filter, batch_size=batch_size
            )
        yield from self._translate_stream(rebatch(batches, batch_size), source)

    def scan(self, source: str, *, format: str | None = None, **options: Any) -> pl.LazyFrame:
        """A Polars ``LazyFrame`` over an object, prefix (hive-partitioned) or glob.

        Polars reads the objects itself (native cloud reader: projection and predicate
        pushdown, parallel ranged reads) with this connection's credentials; the listing is
        done here, with retries. Errors inside the data surface on ``collect()``.
        """
        if options:
            raise ConfigurationError(f"unknown scan options: {', '.join(sorted(options))}", resource=source)

        def open_scan() -> pl.LazyFrame:
            resolved = self._resolve(source, format)
            urls = [self._url(resolved.bucket, info.key) for info in resolved.files]
            frame = self._polars_scan(resolved.fmt, urls, hive=resolved.directory is not None)
            frame.collect_schema()
            return frame

        return self._call("scan", open_scan, resource=source)

    def _polars_scan(self, fmt: FileFormat, urls: _List[str], *, hive: bool) -> pl.LazyFrame:
        options = self._polars_options()
        if fmt == "parquet":
            return pl.scan_parquet(urls, hive_partitioning=hive, **options)
        if fmt == "ipc":
            return pl.scan_ipc(urls, hive_partitioning=hive, **options)
        if fmt == "csv":
            return pl.scan_csv(urls, **options)
        return pl.scan_ndjson(urls, **options)

    def query(self, sql: str, params: QueryParams = None) -> pa.Table:
        """Run DuckDB SQL over the configured ``tables``; ``?`` or ``$name`` parameters.

        Each table is the Arrow dataset of its prefix or glob, opened for the query (so new
        objects show up); DuckDB pushes projections and filters into the scan. Values are
        always passed as parameters, never formatted into the SQL.
        """
        return self._call("query", self._sql.query, sql, params, resource=sql)

    def _sql_dataset(self, source: str) -> ds.Dataset:
        return self._open_dataset(source, None)

    # -- writes -------------------------------------------------------------------------------

    def write(
        self,
        data: Any,
        target: str,
        *,
        mode: WriteMode = "append",
        format: str | None = None,
        partition_by: Sequence[str] | None = None,
    ) -> WriteResult:
        """Write Arrow/Polars/pandas data (Parquet unless ``format`` or the extension says otherwise).

        A ``target`` with a file extension is one object, replaced whole (``append`` to an
        existing object is refused: write to a prefix). Any other target is a prefix
        dataset: ``append`` adds part objects, ``overwrite`` replaces what was there once the
        new parts are in; ``partition_by`` writes hive partitions (``col=value/``).
        """
        if mode not in ("append", "overwrite"):
            raise ConfigurationError(f"mode must be 'append' or 'overwrite', got {mode!r}", resource=target)
        self._ensure_open()
        table = to_arrow_table(data)
        bucket, key, as_url = self._locate(target)
        is_object = format_of_file(key) is not None and not key.endswith("/") and not partition_by
        with tempfile.TemporaryDirectory(prefix="sygnify-stage-") as staging:
            if is_object:
                fmt = detect_format(key, format)
                if mode == "append" and self.exists(self._url(bucket, key)):
                    raise ConfigurationError(
                        f"cannot append to the single object {target!r}; write to a prefix "
                        "(a target without extension) to append part objects, or use mode='overwrite'",
                        resource=target,
                    )
                local = Path(staging) / f"object{SUFFIX[fmt]}"
                self._write_local(table, local, fmt)
                with local.open("rb") as handle:
                    self._upload_stream(bucket, key, handle, None, None)
                return WriteResult(
                    target=target, rows=table.num_rows, paths=[self._display(bucket, key, as_url)]
                )
            fmt = detect_format(target, format or "parquet")
            prefix = key.rstrip("/") + "/" if key.strip("/") else ""
            previous = (
                [info.key for info in self._iter_objects(bucket, prefix)] if mode == "overwrite" else []
            )
            written = self._stage_dataset(table, Path(staging), fmt, partition_by, target)
            new_keys = []
            for relative in written:
                object_key = prefix + relative
                with (Path(staging) / relative).open("rb") as handle:
                    self._upload_stream(bucket, object_key, handle, None, None)
                new_keys.append(object_key)
        stale = sorted(set(previous) - set(new_keys))
        if stale:
            self.delete(*(self._url(bucket, stale_key) for stale_key in stale))
        return WriteResult(
            target=target,
            rows=table.num_rows,
            paths=sorted(self._display(bucket, k, as_url) for k in new_keys),
        )

    @staticmethod
    def _write_local(table: pa.Table, path: Path, fmt: FileFormat) -> None:
        write_table(table, str(path), fmt)

    def _stage_dataset(
        self, table: pa.Table, staging: Path, fmt: FileFormat, partition_by: Sequence[str] | None, target: str
    ) -> _List[str]:
        missing = [column for column in partition_by or [] if column not in table.column_names]
        if missing:
            raise SchemaError(f"partition columns not in the data: {', '.join(missing)}", resource=target)
        if partition_by and fmt == "json":
            raise ConfigurationError("partition_by needs format parquet, csv or ipc", resource=target)
        basename = f"part-{uuid.uuid4().hex}-{{i}}{SUFFIX[fmt]}"
        root = staging / "data"
        if fmt == "json":
            root.mkdir()
            write_table(table, str(root / basename.format(i=0)), "json")
        else:
            ds.write_dataset(
                table,
                root,
                format=fmt,
                basename_template=basename,
                partitioning=list(partition_by) if partition_by else None,
                partitioning_flavor="hive" if partition_by else None,
            )
        files = sorted(path for path in root.rglob("*") if path.is_file())
        for path in files:
            destination = staging / path.relative_to(root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), destination)
        shutil.rmtree(root, ignore_errors=True)
        return [path.relative_to(root).as_posix() for path in files]

    # -- lifecycle and errors -----------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._sql.close()
        super().close()

    def _translate_arrow_error(
        self, exc: Exception, message: str, resource: str | None
    ) -> SygnifyError | None:
        """Map pyarrow / Polars errors (from their own S3/Azure clients) by their text."""
        text = str(exc)
        upper = text.upper()
        if isinstance(exc, FileNotFoundError):
            return ObjectNotFoundError(message, resource=resource)
        if isinstance(exc, pa.ArrowInvalid) or "magic bytes" in text:
            return DataQualityError(message, resource=resource)
        if any(word in upper for word in ("NO_SUCH_BUCKET", "CONTAINERNOTFOUND", "BUCKET DOES NOT EXIST")):
            return BucketNotFoundError(message, resource=resource)
        if any(
            word in upper
            for word in ("INVALID_ACCESS_KEY", "SIGNATURE_DOES_NOT_MATCH", "AUTHENTICATIONFAILED")
        ):
            return AuthenticationError(message, resource=resource)
        if "ACCESS_DENIED" in upper or "AUTHORIZATION" in upper or "HTTP STATUS 403" in upper:
            return PermissionDeniedError(message, resource=resource)
        if any(
            word in upper for word in ("SLOW_DOWN", "SLOWDOWN", "SERVERBUSY", "THROTTL", "HTTP STATUS 503")
        ):
            return ThrottledError(message, resource=resource)
        if any(word in upper for word in ("NETWORK_CONNECTION", "CONNECTION", "TIMED OUT", "HTTP STATUS 5")):
            return ConnectionFailedError(message, resource=resource)
        if "RESOURCE_NOT_FOUND" in upper or "BLOBNOTFOUND" in upper or "NOT FOUND" in upper:
            return ObjectNotFoundError(message, resource=resource)
        if isinstance(exc, pa.ArrowTypeError | pl.exceptions.SchemaError | pl.exceptions.ColumnNotFoundError):
            return SchemaError(message, resource=resource)
        if isinstance(exc, pa.ArrowInvalid | pl.exceptions.ComputeError | OSError):
            return DataQualityError(message, resource=resource)
        return None

    def _translate_fallback(self, exc: Exception, message: str, resource: str | None) -> SygnifyError:
        return self._translate_arrow_error(exc, message, resource) or super()._translate_fallback(
            exc, message, resource
        )


class _RangedObjectFile(io.RawIOBase):
    """A seekable, read-only view of one object: every read is one ranged GET (retried)."""

    def __init__(self, store: ObjectStore[Any], bucket: str, key: str) -> None:
        super().__init__()
        self._store, self._bucket, self._key = store, bucket, key
        self._resource = store._url(bucket, key)
        self._size: int | None = None
        self._position = 0

    @property
    def size(self) -> int:
        if self._size is None:
            info = self._store._call(
                "open", self._store._head, self._bucket, self._key, resource=self._resource
            )
            self._size = info.size
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"cannot seek to a negative position in {self._resource}")
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._position + size)
        if end <= self._position:
            return b""
        data: bytes = self._store._call(
            "read", self._store._get_range, self._bucket, self._key, self._position, end - self._position,
            resource=self._resource,
        )  # fmt: skip
        self._position += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)


class ObjectStoreFileSystem(pafs.FileSystemHandler):  # type: ignore[misc]  # pyarrow ships no types
    """A read-only pyarrow filesystem (paths ``bucket/key``) over a connector's SDK calls.

    Use it through :class:`pyarrow.fs.PyFileSystem`. Listing, HEAD and ranged GETs go
    through the connector's retry policy, circuit breaker and error translation; writes
    are refused (write through the connector: ``write``, ``put``, ``upload``). Example
    (needs a store, so not run as a doctest)::

        filesystem = pafs.PyFileSystem(ObjectStoreFileSystem(store))
        pq.read_table("container/path/x.parquet", filesystem=filesystem, columns=["id"])
    """

    def __init__(self, store: ObjectStore[Any]) -> None:
        self.store = store

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectStoreFileSystem) and other.store is self.store

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return id(self.store)

    def get_type_name(self) -> str:
        return f"sygnify-{self.store.type_name}"

    def normalize_path(self, path: str) -> str:
        return path.strip("/")

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        bucket, _, key = path.strip("/").partition("/")
        return bucket, key

    def get_file_info(self, paths: Sequence[str]) -> _List[pafs.FileInfo]:
        infos = []
        for path in paths:
            bucket, key = self._split(path)
            if not key:
                infos.append(pafs.FileInfo(path, pafs.FileType.Directory))
                continue
            try:
                info = self.store._call(
                    "metadata", self.store._head, bucket, key, resource=self.store._url(bucket, key)
                )
            except ObjectNotFoundError:
                below = next(self.store._iter_objects(bucket, key.rstrip("/") + "/"), None)
                kind = pafs.FileType.NotFound if below is None else pafs.FileType.Directory
                infos.append(pafs.FileInfo(path, kind))
            else:
                infos.append(
                    pafs.FileInfo(path, pafs.FileType.File, size=info.size, mtime=info.last_modified)
                )
        return infos

    def get_file_info_selector(self, selector: pafs.FileSelector) -> _List[pafs.FileInfo]:
        bucket, key = self._split(selector.base_dir)
        prefix = key.rstrip("/") + "/" if key else ""
        files: _List[pafs.FileInfo] = []
        directories: set[str] = set()
        for info in self.store._iter_objects(bucket, prefix):
            parts = info.key[len(prefix) :].split("/")
            depth = len(parts) if selector.recursive else 1
            directories.update(prefix + "/".join(parts[:i]) for i in range(1, min(depth, len(parts) - 1) + 1))
            if selector.recursive or len(parts) == 1:
                files.append(pafs.FileInfo(f"{bucket}/{info.key}", pafs.FileType.File, size=info.size))
        if not files and not directories and not selector.allow_not_found:
            raise FileNotFoundError(f"{selector.base_dir} has no objects")
        return [pafs.FileInfo(f"{bucket}/{d}", pafs.FileType.Directory) for d in sorted(directories)] + files

    def open_input_file(self, path: str) -> pa.NativeFile:
        return pa.PythonFile(_RangedObjectFile(self.store, *self._split(path)), mode="r")

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.open_input_file(path)

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "this Arrow filesystem only reads; write through the connector (write, put, upload)"
        )

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _read_only
    delete_file = move = copy_file = open_output_stream = open_append_stream = _read_only
