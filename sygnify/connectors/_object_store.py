"""What the S3 and Azure Blob connectors share: objects, globs, datasets, SQL, writes.

A concrete connector supplies a handful of primitives (list one page, head, ranged get,
put, delete, multipart upload, an Arrow filesystem, Polars storage options, error
translation); everything else is here, once. Every primitive call goes through
``BaseConnector._call``: the retry policy (transient errors only), the circuit breaker and
SDK-error translation.

Sources name objects as URLs (``s3://bucket/path/*.parquet``, ``az://container/path/``) or
as keys relative to the connection's default bucket/container. A key ending in ``/`` (or
without a file extension) is a prefix "directory", read with hive partitions; a key with
``*``, ``?`` or ``[...]`` is a glob where ``*`` stays within one path segment and ``**``
crosses them::

    >>> pattern = glob_pattern("sales/**/2026-*.parquet")
    >>> bool(pattern.match("sales/eu/x/2026-01.parquet")), bool(pattern.match("sales/2025-01.parquet"))
    (True, False)
"""

from __future__ import annotations

import abc
import concurrent.futures
import io
import itertools
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, ClassVar, TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from pydantic import BaseModel, Field, SecretStr

from sygnify._arrow import DEFAULT_BATCH_SIZE, rebatch, to_arrow_table
from sygnify.config import ConnectorConfig, config_fingerprint
from sygnify.connectors._duckdb_sql import DatasetSQL, looks_like_sql
from sygnify.connectors.base import BaseConnector, QueryParams, WriteMode, WriteResult
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
    NotFoundError,
    ObjectNotFoundError,
    PermissionDeniedError,
    SchemaError,
    SygnifyError,
    ThrottledError,
)

__all__ = [
    "BucketNotFoundError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStoreConfig",
    "ObjectStoreConnector",
    "glob_pattern",
]

MiB = 1024 * 1024
_List = list  # the connector's list() method shadows the builtin in its class body
_GLOB_CHARS = re.compile(r"[*?\[]")
T = TypeVar("T")
ConfigT = TypeVar("ConfigT", bound="ObjectStoreConfig")


@dataclass(frozen=True)
class ObjectInfo:
    """One object's metadata: key, size in bytes, ETag, last change, content type, user metadata."""

    bucket: str
    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class ObjectStoreConfig(ConnectorConfig):
    """Options every object-store connector accepts."""

    tables: dict[str, str] = Field(
        default_factory=dict,
        description="SQL table names mapped to prefixes or globs, e.g. {'tx': 'tx/*.parquet'}.",
    )
    part_size: int = Field(8 * MiB, ge=1 * MiB, le=4000 * MiB, description="Multipart/block size in bytes.")
    max_concurrency: int = Field(
        4, ge=1, le=64, description="Parts uploaded in parallel (memory: parts x size)."
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a connection.")
    read_timeout: float = Field(60.0, gt=0, description="Seconds to wait for a response.")
    verify_tls: bool = Field(True, description="Verify TLS certificates (leave on outside tests).")
    duckdb_threads: int | None = Field(None, ge=1, description="DuckDB threads for query().")
    list_page_size: int = Field(1000, ge=1, le=1000, description="Objects per list request.")


def glob_pattern(pattern: str) -> re.Pattern[str]:
    """A regex for a key glob: ``*``/``?`` within a segment, ``**`` across segments, ``[...]`` sets."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            inner = pattern[i + 1 : end]
            out.append(
                "[" + ("^" + re.escape(inner[1:]) if inner.startswith("!") else re.escape(inner)) + "]"
            )
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _is_data_key(key: str, fmt: FileFormat | None) -> bool:
    name = PurePosixPath(key).name
    if not name or name.startswith((".", "_")):
        return False
    return fmt is not None or format_of_file(name) is not None


def _read_exactly(reader: IO[bytes], size: int) -> bytes:
    """Read ``size`` bytes (fewer only at end of stream) from a possibly short-reading stream."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = reader.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _hive_value(raw: str) -> tuple[pa.DataType, Any]:
    try:
        return pa.int32(), int(raw)
    except ValueError:
        return pa.string(), raw


@dataclass(frozen=True)
class _Resolved:
    bucket: str
    files: list[ObjectInfo]
    fmt: FileFormat
    directory: str | None  # the prefix for hive partitions, for directory sources


class ObjectStoreConnector(BaseConnector[ConfigT]):
    """The shared half of an object-store connector (see the module docstring)."""

    schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ConfigT, *, name: str | None = None, pool: ClientPool | None = None):
        super().__init__(config, name=name, pool=pool)
        self._pool_key = config_fingerprint(config, exclude=frozenset({"retry", "breaker", "tables"}))
        self._clients: Any = self._pool.acquire(self._pool_key, self._open_clients, self._close_clients)
        self._sql = DatasetSQL(config.tables, self._sql_dataset, threads=config.duckdb_threads)
        self._fs_lock = threading.Lock()

    # -- what a concrete store provides ---------------------------------------------------

    @property
    @abc.abstractmethod
    def default_bucket(self) -> str | None:
        """The bucket/container that relative keys refer to."""

    @abc.abstractmethod
    def _open_clients(self) -> Any:
        """Build the pooled SDK client(s) for this configuration."""

    @abc.abstractmethod
    def _close_clients(self, clients: Any) -> None: ...

    @abc.abstractmethod
    def _list_page(self, bucket: str, prefix: str, token: str | None) -> tuple[list[ObjectInfo], str | None]:
        """One page of objects under ``prefix`` and the token of the next page (None: last)."""

    @abc.abstractmethod
    def _head(self, bucket: str, key: str) -> ObjectInfo: ...

    @abc.abstractmethod
    def _get_range(self, bucket: str, key: str, start: int, length: int | None) -> bytes: ...

    @abc.abstractmethod
    def _put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str | None, metadata: Mapping[str, str] | None
    ) -> None: ...

    @abc.abstractmethod
    def _upload_chunks(
        self,
        bucket: str,
        key: str,
        chunks: Iterator[bytes],
        content_type: str | None,
        metadata: Mapping[str, str] | None,
    ) -> None:
        """Multipart/block upload of ``chunks`` (each part retried on its own)."""

    @abc.abstractmethod
    def _delete_keys(self, bucket: str, keys: Sequence[str]) -> None:
        """Delete ``keys`` (at most 1000); missing ones are not an error."""

    @abc.abstractmethod
    def _create_bucket(self, bucket: str) -> None: ...

    @abc.abstractmethod
    def _arrow_filesystem(self) -> pafs.FileSystem:
        """A pyarrow filesystem for this account (paths are ``bucket/key``)."""

    @abc.abstractmethod
    def _polars_options(self) -> dict[str, Any]:
        """Keyword arguments for Polars cloud scans (``storage_options``, ``credential_provider``)."""

    # -- locations --------------------------------------------------------------------------

    def _locate(self, source: str) -> tuple[str, str, bool]:
        """``(bucket, key, is_url)`` of a URL or a key relative to the default bucket."""
        scheme, sep, rest = source.partition("://")
        if sep:
            if scheme.lower() not in self.schemes:
                raise ConfigurationError(
                    f"{source!r} is not a {self.type_name} URL; use {self.schemes[0]}://BUCKET/KEY",
                    resource=source,
                )
            bucket, _, key = rest.partition("/")
            if not bucket:
                raise ConfigurationError(f"{source!r} names no bucket/container", resource=source)
            return bucket, key, True
        if self.default_bucket is None:
            raise ConfigurationError(
                f"{source!r} is a relative key but the connection has no default bucket/container; "
                f"set it in the config or pass a full URL ({self.schemes[0]}://BUCKET/KEY)",
                resource=source,
            )
        return self.default_bucket, source.lstrip("/"), False

    def _url(self, bucket: str, key: str) -> str:
        return f"{self.schemes[0]}://{bucket}/{key}"

    def _display(self, bucket: str, key: str, as_url: bool) -> str:
        return self._url(bucket, key) if as_url else key

    # -- objects ------------------------------------------------------------------------------

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, page by page (each page fetched with retries).

        ::

            for info in store.list_objects("raw/2026/"):
                print(info.key, info.size)
        """
        bucket, key, _ = self._locate(prefix)
        return self._iter_objects(bucket, key)

    def _iter_objects(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        token: str | None = None
        resource = self._url(bucket, prefix)
        while True:
            page, token = self._call("list", self._list_page, bucket, prefix, token, resource=resource)
            yield from page
            if token is None:
                return

    def list(self, prefix: str = "") -> _List[str]:
        """Keys under ``prefix`` (full URLs if ``prefix`` is a URL), sorted."""
        bucket, key, as_url = self._locate(prefix)
        return sorted(self._display(bucket, info.key, as_url) for info in self._iter_objects(bucket, key))

    def metadata(self, key: str) -> ObjectInfo:
        """Size, ETag, last-modified time, content type and user metadata of one object."""
        bucket, object_key, _ = self._locate(key)
        return self._call("metadata", self._head, bucket, object_key, resource=self._url(bucket, object_key))

    def exists(self, key: str) -> bool:
        """Whether the object exists (a missing bucket is still an error)."""
        try:
            self.metadata(key)
        except BucketNotFoundError:
            raise
        except ObjectNotFoundError:
            return False
        return True

    def get(self, key: str, *, start: int = 0, end: int | None = None) -> bytes:
        """The object's bytes, or the byte range ``[start, end)``.

        For large objects use :meth:`download`, which streams to a file.
        """
        bucket, object_key, _ = self._locate(key)
        if start < 0 or (end is not None and end < start):
            raise ConfigurationError(f"bad byte range [{start}, {end})", resource=key)
        length = None if end is None else end - start
        if length == 0:
            return b""
        return self._call(
            "get", self._get_range, bucket, object_key, start, length, resource=self._url(bucket, object_key)
        )

    def put(
        self,
        key: str,
        data: bytes | IO[bytes],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store ``data`` (bytes or a binary file object) under ``key``; large data goes in parts."""
        reader = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
        return self.upload(reader, key, content_type=content_type, metadata=metadata)

    def upload(
        self,
        source: str | os.PathLike[str] | IO[bytes],
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Upload a local file or binary stream, in parts of ``part_size`` bytes when larger.

        Memory stays bounded by ``part_size * (max_concurrency + 1)`` whatever the file size;
        each part is retried on its own, and a failed upload leaves no partial object.
        """
        bucket, object_key, _ = self._locate(key)
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            if not path.is_file():
                raise NotFoundError(f"local file {str(path)!r} does not exist", resource=str(path))
            with path.open("rb") as handle:
                self._upload_stream(bucket, object_key, handle, content_type, metadata)
        else:
            self._upload_stream(bucket, object_key, source, content_type, metadata)
        return self.metadata(self._url(bucket, object_key))

    def _upload_stream(
        self,
        bucket: str,
        key: str,
        reader: IO[bytes],
        content_type: str | None,
        metadata: Mapping[str, str] | None,
    ) -> None:
        part_size = self.config.part_size
        first = _read_exactly(reader, part_size)
        resource = self._url(bucket, key)
        if len(first) < part_size:
            self._call("put", self._put_bytes, bucket, key, first, content_type, metadata, resource=resource)
            return
        chunks = itertools.chain([first], iter(lambda: _read_exactly(reader, part_size), b""))
        self._upload_chunks(bucket, key, chunks, content_type, metadata)

    def _upload_parts(self, chunks: Iterator[bytes], upload_part: Callable[[int, bytes], T]) -> _List[T]:
        """Run ``upload_part(number, chunk)`` (numbers from 1) with at most ``max_concurrency`` in flight.

        Returns the results in part order. Only the parts in flight are held in memory.
        """
        limit = self.config.max_concurrency
        results: dict[int, T] = {}
        with concurrent.futures.ThreadPoolExecutor(limit, thread_name_prefix="sygnify-upload") as workers:
            in_flight: dict[concurrent.futures.Future[T], int] = {}
            try:
                for number, chunk in enumerate(chunks, start=1):
                    in_flight[workers.submit(upload_part, number, chunk)] = number
                    del chunk
                    if len(in_flight) >= limit:
                        done, _ = concurrent.futures.wait(
                            in_flight, return_when=concurrent.futures.FIRST_COMPLETED
                        )
                        for future in done:
                            results[in_flight.pop(future)] = future.result()
                for future in concurrent.futures.as_completed(list(in_flight)):
                    results[in_flight.pop(future)] = future.result()
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        return [results[number] for number in sorted(results)]

    def download(self, key: str, destination: str | os.PathLike[str] | IO[bytes]) -> int:
        """Stream an object to a local file or binary stream in ranged reads; returns bytes written.

        Memory stays bounded by ``part_size``; each range is retried on its own.
        """
        info = self.metadata(key)
        if isinstance(destination, str | os.PathLike):
            path = Path(destination)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
            try:
                with partial.open("wb") as handle:
                    written = self._download_to(info, handle)
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
            return written
        return self._download_to(info, destination)

    def _download_to(self, info: ObjectInfo, writer: IO[bytes]) -> int:
        resource = self._url(info.bucket, info.key)
        written = 0
        while written < info.size:
            length = min(self.config.part_size, info.size - written)
            chunk = self._call(
                "download", self._get_range, info.bucket, info.key, written, length, resource=resource
            )
            if not chunk:
                raise ConnectionFailedError(
                    f"download of {resource} ended early at byte {written}", resource=resource
                )
            writer.write(chunk)
            written += len(chunk)
        return written

    def delete(self, *keys: str) -> None:
        """Delete objects (in batches of 1000); deleting a missing object is not an error."""
        by_bucket: dict[str, list[str]] = {}
        for key in keys:
            bucket, object_key, _ = self._locate(key)
            by_bucket.setdefault(bucket, []).append(object_key)
        for bucket, object_keys in by_bucket.items():
            for start in range(0, len(object_keys), 1000):
                batch = object_keys[start : start + 1000]
                self._call("delete", self._delete_keys, bucket, batch, resource=self._url(bucket, batch[0]))

    # -- datasets -----------------------------------------------------------------------------

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

    def filesystem(self) -> pafs.FileSystem:
        """The pyarrow filesystem of this connection (paths are ``bucket/key``), built once."""
        with self._fs_lock:
            return self._arrow_filesystem()

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
        partitions = self._partitions(resolved)
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

    def _partitions(self, resolved: _Resolved) -> _Partitions:
        if resolved.directory is None:
            return _Partitions([ds.scalar(True)] * len(resolved.files), [])
        values_per_file: _List[dict[str, str]] = []
        for info in resolved.files:
            relative = info.key[len(resolved.directory) :]
            segments = relative.split("/")[:-1]
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
        return _Partitions(expressions, [pa.field(name, types[name]) for name in names])

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
        yield from self._translated(rebatch(batches, batch_size), source)

    def _translated(self, batches: Iterator[pa.RecordBatch], source: str) -> Iterator[pa.RecordBatch]:
        # Errors that surface mid-stream are translated but not retried: a restart would
        # repeat rows the caller already has.
        try:
            yield from batches
        except SygnifyError:
            raise
        except Exception as exc:
            raise self._translate(exc, operation="stream", resource=source) from exc

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

    # -- lifecycle ------------------------------------------------------------------------------

    def create_bucket(self, bucket: str | None = None, *, exist_ok: bool = True) -> None:
        """Create the bucket/container (default: the connection's); ``exist_ok`` accepts an existing one."""
        name = bucket or self.default_bucket
        if name is None:
            raise ConfigurationError("no bucket/container named and no default configured")
        try:
            self._call("create bucket", self._create_bucket, name, resource=self._url(name, ""))
        except _AlreadyExistsError:
            if not exist_ok:
                raise ConfigurationError(f"{self._url(name, '')} already exists", resource=name) from None

    def close(self) -> None:
        if not self._closed:
            self._sql.close()
            self._pool.release(self._pool_key)
        super().close()

    # -- errors ---------------------------------------------------------------------------------

    def _secrets(self) -> _List[str]:
        found: _List[str] = []

        def walk(model: BaseModel) -> None:
            for name in type(model).model_fields:
                value = getattr(model, name)
                if isinstance(value, SecretStr) and value.get_secret_value():
                    found.append(value.get_secret_value())
                elif isinstance(value, BaseModel):
                    walk(value)

        walk(self.config)
        return found

    def _scrub(self, text: str) -> str:
        """``text`` with every configured secret (and SAS signatures) masked."""
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return re.sub(r"(sig=)[^&\s'\"]+", r"\1***", text)

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
        translated = self._translate_arrow_error(exc, message, resource)
        if translated is not None:
            return translated
        if isinstance(exc, TimeoutError | ConnectionError):
            return ConnectionFailedError(message, resource=resource)
        return SygnifyError(message, resource=resource)


@dataclass(frozen=True)
class _Partitions:
    expressions: _List[ds.Expression]
    fields: _List[pa.Field]


class _AlreadyExistsError(SygnifyError):
    """Internal: create_bucket found the bucket already there (not retried, not a failure)."""
