"""The object half of what the S3 and Azure Blob connectors share: the object API over SDK primitives.

A concrete store supplies a handful of SDK primitives (list one page, head, ranged get,
put, delete, multipart upload, error translation); :class:`ObjectStore` builds the object
API on them (list, get, put, metadata, streamed multipart upload and ranged download).
Datasets, SQL and writes of tables live one layer up, in
:mod:`sygnify.connectors._objectstore.datasets`. Every primitive call goes through
``BaseConnector._call``: the retry policy (transient errors only), the circuit breaker and
SDK-error translation.

How sources name objects (URLs, relative keys, prefixes, globs) lives in
:mod:`sygnify.connectors._objectstore.keys`, and the bounded-memory machinery of part uploads and
ranged downloads in :mod:`sygnify.connectors._objectstore.transfers`. Listing and metadata
describe each object with an :class:`ObjectInfo`::

    >>> info = ObjectInfo(bucket="lake", key="raw/x.parquet", size=1024)
    >>> info.key, info.size, dict(info.metadata)
    ('raw/x.parquet', 1024, {})
"""

from __future__ import annotations

import abc
import builtins
import io
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, ClassVar, Literal, TypeVar, overload

from pydantic import BaseModel, Field, SecretStr

from sygnify.config import ConnectorConfig
from sygnify.connectors._objectstore.keys import locate
from sygnify.connectors._objectstore.transfers import copy_ranges, read_parts, upload_parts
from sygnify.connectors.base import BaseConnector
from sygnify.connectors.pool import ClientPool
from sygnify.errors import (
    BucketNotFoundError,
    ConfigurationError,
    ConnectionFailedError,
    NotFoundError,
    ObjectNotFoundError,
    PathEscapeError,
    SygnifyError,
)
from sygnify.io.fileobjects import DEFAULT_BLOCK_SIZE, RangedReader, TextWriter, UploadWriter, text_writer
from sygnify.io.files import atomic_write

__all__ = [
    "BucketExistsError",
    "BucketNotFoundError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStore",
    "ObjectStoreConfig",
]

MiB = 1024 * 1024
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
    union_by_name: bool = Field(
        False,
        description="SQL tables read the union of their objects' columns (by name, missing ones null) "
        "instead of refusing schema drift.",
    )
    allow_missing_columns: bool = Field(
        False, description="SQL table objects may lack columns of the first object (read as null)."
    )


class ObjectStore(BaseConnector[ConfigT]):
    """The object operations of an object-store connector (see the module docstring)."""

    schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ConfigT, *, name: str | None = None, pool: ClientPool | None = None):
        super().__init__(config, name=name, pool=pool)
        self._clients: Any = self._shared(self._open_clients, self._close_clients, exclude={"tables"})

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

    # -- locations --------------------------------------------------------------------------

    def locate(self, source: str) -> tuple[str, str, bool]:
        """``(bucket, key, is_url)`` of a URL or a key relative to the default bucket.

        A key with a ``.`` or ``..`` segment is refused (:class:`~sygnify.errors.PathEscapeError`)
        before any request: stores and proxies normalise such keys differently (Azure
        resolves ``a/../b`` to ``b``, S3 keeps it literally), so it would not name one object.
        """
        bucket, key, is_url = locate(
            source, schemes=self.schemes, type_name=self.type_name, default_bucket=self.default_bucket
        )
        if any(segment in (".", "..") for segment in key.split("/")):
            raise PathEscapeError(
                f"{source!r} has a '.' or '..' segment; name the object by its plain key "
                "(e.g. 'a/b.txt', not 'a/../b.txt')",
                resource=source,
            )
        return bucket, key, is_url

    def url(self, bucket: str, key: str) -> str:
        """The URL of ``key`` in ``bucket`` (``s3://bucket/key``, ``az://container/key``)."""
        return f"{self.schemes[0]}://{bucket}/{key}"

    def _display(self, bucket: str, key: str, as_url: bool) -> str:
        return self.url(bucket, key) if as_url else key

    # -- the seam for helpers (datasets, sources, the SDK filesystem): bucket and key apart,
    # -- every call retried and translated ---------------------------------------------------

    def iter_objects(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Objects of ``bucket`` whose key starts with ``prefix``, page by page."""
        token: str | None = None
        resource = self.url(bucket, prefix)
        while True:
            page, token = self._call("list", self._list_page, bucket, prefix, token, resource=resource)
            yield from page
            if token is None:
                return

    def head(self, bucket: str, key: str, *, operation: str = "metadata") -> ObjectInfo:
        """The metadata of one object (``operation`` names the call in errors and events)."""
        return self._call(operation, self._head, bucket, key, resource=self.url(bucket, key))

    def get_range(
        self, bucket: str, key: str, start: int, length: int | None, *, operation: str = "get"
    ) -> bytes:
        """``length`` bytes of one object from ``start`` (to its end for ``None``)."""
        return self._call(
            operation, self._get_range, bucket, key, start, length, resource=self.url(bucket, key)
        )

    def put_stream(self, bucket: str, key: str, reader: IO[bytes]) -> None:
        """Upload ``reader`` to ``key`` of ``bucket`` (in parts when larger than ``part_size``)."""
        self._upload_stream(bucket, key, reader, None, None)

    def delete_keys(self, bucket: str, keys: Sequence[str], *, operation: str = "delete") -> None:
        """Delete ``keys`` of ``bucket`` (in batches of 1000); missing ones are not an error."""
        for start in range(0, len(keys), 1000):
            batch = list(keys[start : start + 1000])
            self._call(operation, self._delete_keys, bucket, batch, resource=self.url(bucket, batch[0]))

    def display(self, bucket: str, key: str, as_url: bool) -> str:
        """How results name ``key``: its URL when the caller named a URL, else the key."""
        return self._display(bucket, key, as_url)

    # -- objects ------------------------------------------------------------------------------

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, page by page (each page fetched with retries).

        ::

            for info in store.list_objects("raw/2026/"):
                print(info.key, info.size)
        """
        bucket, key, _ = self.locate(prefix)
        return self.iter_objects(bucket, key)

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys under ``prefix`` (full URLs if ``prefix`` is a URL), sorted."""
        bucket, key, as_url = self.locate(prefix)
        return sorted(self._display(bucket, info.key, as_url) for info in self.iter_objects(bucket, key))

    def metadata(self, key: str) -> ObjectInfo:
        """Size, ETag, last-modified time, content type and user metadata of one object."""
        bucket, object_key, _ = self.locate(key)
        return self.head(bucket, object_key)

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
        bucket, object_key, _ = self.locate(key)
        if start < 0 or (end is not None and end < start):
            raise ConfigurationError(f"bad byte range [{start}, {end})", resource=key)
        length = None if end is None else end - start
        if length == 0:
            return b""
        return self.get_range(bucket, object_key, start, length)

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
        bucket, object_key, _ = self.locate(key)
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            if not path.is_file():
                raise NotFoundError(f"local file {str(path)!r} does not exist", resource=str(path))
            with path.open("rb") as handle:
                self._upload_stream(bucket, object_key, handle, content_type, metadata)
        else:
            self._upload_stream(bucket, object_key, source, content_type, metadata)
        return self.head(bucket, object_key)

    def _upload_stream(
        self,
        bucket: str,
        key: str,
        reader: IO[bytes],
        content_type: str | None,
        metadata: Mapping[str, str] | None,
    ) -> None:
        parts = read_parts(reader, self.config.part_size)
        if not isinstance(parts, Iterator):  # all of it fitted in one part
            resource = self.url(bucket, key)
            self._call("put", self._put_bytes, bucket, key, parts, content_type, metadata, resource=resource)
            return
        self._upload_chunks(bucket, key, parts, content_type, metadata)

    def _upload_parts(
        self, chunks: Iterator[bytes], upload_part: Callable[[int, bytes], T]
    ) -> builtins.list[T]:
        """Run ``upload_part(number, chunk)`` (numbers from 1) with at most ``max_concurrency`` in flight.

        Returns the results in part order. Only the parts in flight are held in memory.
        """
        return upload_parts(chunks, upload_part, max_in_flight=self.config.max_concurrency)

    def download(self, key: str, destination: str | os.PathLike[str] | IO[bytes]) -> int:
        """Stream an object to a local file or binary stream in ranged reads; returns bytes written.

        Memory stays bounded by ``part_size``; each range is retried on its own.
        """
        info = self.metadata(key)
        if isinstance(destination, str | os.PathLike):
            return atomic_write(destination, lambda handle: self._download_to(info, handle))
        return self._download_to(info, destination)

    def _download_to(self, info: ObjectInfo, writer: IO[bytes]) -> int:
        def read_range(start: int, length: int) -> bytes:
            return self.get_range(info.bucket, info.key, start, length, operation="download")

        resource = self.url(info.bucket, info.key)
        return copy_ranges(read_range, info.size, self.config.part_size, writer, resource=resource)

    def delete(self, *keys: str) -> None:
        """Delete objects (in batches of 1000); deleting a missing object is not an error."""
        by_bucket: dict[str, list[str]] = {}
        for key in keys:
            bucket, object_key, _ = self.locate(key)
            by_bucket.setdefault(bucket, []).append(object_key)
        for bucket, object_keys in by_bucket.items():
            self.delete_keys(bucket, object_keys)

    # -- file objects, server-side copies, presigned URLs ----------------------------------------

    #: The largest object one request copies (S3's CopyObject limit); larger ones go in parts.
    single_copy_limit: ClassVar[int] = 5 * 1024 * MiB

    @abc.abstractmethod
    def _copy_object(self, source: ObjectInfo, bucket: str, key: str) -> None:
        """Copy ``source`` to ``key`` of ``bucket`` on the server, keeping its content type and
        metadata; each SDK request goes through ``_call`` on its own (the caller does not wrap it)."""

    @abc.abstractmethod
    def _presign(self, bucket: str, key: str, seconds: int, method: str) -> str:
        """A URL that lets a plain HTTP client ``method`` (GET or PUT) the object for ``seconds``;
        a request it needs (an Azure user delegation key) goes through ``_call``."""

    def _object_key(self, name: str, *, operation: str) -> tuple[str, str]:
        """``(bucket, key)`` of one object; a prefix (empty, or ending in ``/``) is refused."""
        bucket, key, _ = self.locate(name)
        if not key or key.endswith("/"):
            raise ConfigurationError(
                f"{operation}() needs one object's key, got the prefix {name!r}", resource=name
            )
        return bucket, key

    @overload
    def open(
        self, key: str, mode: Literal["rb"] = "rb", *, block_size: int | None = None
    ) -> RangedReader: ...

    @overload
    def open(self, key: str, mode: Literal["wb"], *, block_size: int | None = None) -> UploadWriter: ...

    @overload
    def open(
        self,
        key: str,
        mode: Literal["r", "rt"],
        *,
        block_size: int | None = None,
        encoding: str | None = None,
        newline: str | None = None,
    ) -> io.TextIOWrapper: ...

    @overload
    def open(
        self,
        key: str,
        mode: Literal["w", "wt"],
        *,
        block_size: int | None = None,
        encoding: str | None = None,
        newline: str | None = None,
    ) -> TextWriter: ...

    def open(
        self,
        key: str,
        mode: str = "rb",
        *,
        block_size: int | None = None,
        encoding: str | None = None,
        newline: str | None = None,
    ) -> IO[Any] | RangedReader | UploadWriter | io.TextIOWrapper:
        """A file object over one object: ``"rb"``/``"r"`` read it, ``"wb"``/``"w"`` replace it.

        A reader is seekable and reads by ranged GETs (each retried), ``block_size`` bytes of
        read-ahead at a time (default 1 MiB), so ``pyarrow.parquet.ParquetFile``,
        ``zipfile.ZipFile`` or ``io.TextIOWrapper`` read only the bytes they need; a missing
        object is an :class:`~sygnify.errors.ObjectNotFoundError` here. A writer uploads in
        parts of ``part_size`` (memory stays bounded) and publishes the object only when
        ``close()`` succeeds: an exception inside ``with`` aborts it, leaving no object and
        the old one, if any, untouched. Text modes use ``encoding`` (UTF-8 by default).
        Example (needs a store, so not run as a doctest)::

            with lake.open("raw/events.csv", "w") as out:
                out.write("id,kind\\n1,click\\n")
            with lake.open("raw/x.parquet") as handle:
                footer = pyarrow.parquet.ParquetFile(handle).metadata
        """
        bucket, object_key = self._object_key(key, operation="open")
        resource = self.url(bucket, object_key)
        if mode in ("rb", "r", "rt"):
            info = self.head(bucket, object_key, operation="open")

            def read_range(start: int, length: int) -> bytes:
                return self.get_range(bucket, object_key, start, length, operation="read")

            reader = RangedReader(
                read_range, info.size, name=resource, block_size=block_size or DEFAULT_BLOCK_SIZE
            )
            if mode == "rb":
                return reader
            return io.TextIOWrapper(reader, encoding=encoding or "utf-8", newline=newline)
        if mode in ("wb", "w", "wt"):
            writer = UploadWriter(
                lambda stream: self.put_stream(bucket, object_key, stream),
                name=resource,
                part_size=self.config.part_size,
            )
            return writer if mode == "wb" else text_writer(writer, encoding=encoding, newline=newline)
        raise ConfigurationError(f"open() mode must be 'rb', 'wb', 'r' or 'w', got {mode!r}", resource=key)

    def copy(self, source: str, destination: str) -> ObjectInfo:
        """Copy one object on the server (no bytes pass through here); returns the copy's metadata.

        Both are keys or URLs; across buckets/containers of one account too. Content type and
        metadata are kept. A missing source is an :class:`~sygnify.errors.ObjectNotFoundError`;
        copying an object onto itself changes nothing. Example (needs a store)::

            lake.copy("raw/x.parquet", "s3://archive/2026/x.parquet")
        """
        bucket, key = self._object_key(source, operation="copy")
        target_bucket, target_key = self._object_key(destination, operation="copy")
        info = self.head(bucket, key, operation="copy")
        if (bucket, key) != (target_bucket, target_key):
            self._copy_object(info, target_bucket, target_key)
        return self.head(target_bucket, target_key, operation="copy")

    def move(self, source: str, destination: str) -> ObjectInfo:
        """Copy one object on the server, then delete the source; returns the copy's metadata.

        Not atomic: a failure after the copy leaves both objects (run it again to finish).
        Moving an object onto itself changes nothing.
        """
        info = self.copy(source, destination)
        bucket, key = self._object_key(source, operation="move")
        if (bucket, key) != (info.bucket, info.key):
            self.delete_keys(bucket, [key], operation="move")
        return info

    def presigned_url(
        self, key: str, *, expires: int | float | timedelta = 3600, method: Literal["GET", "PUT"] = "GET"
    ) -> str:
        """A URL that lets anyone holding it ``GET`` (download) or ``PUT`` (upload) one object.

        It is signed with the connection's credentials and works with any HTTP client for
        ``expires`` (seconds or a ``timedelta``; 1 s to 7 days); after that the store refuses
        it. No request is made on S3 (SigV4 query signing) nor on Azure with an account key
        (a service SAS); an Entra identity asks Azure for a user delegation key first. Azure
        needs the header ``x-ms-blob-type: BlockBlob`` on a PUT. Example (needs a store)::

            url = lake.presigned_url("exports/report.csv", expires=600)
            urllib.request.urlopen(url).read()
        """
        bucket, object_key = self._object_key(key, operation="presigned_url")
        seconds = expires.total_seconds() if isinstance(expires, timedelta) else float(expires)
        if not 1 <= seconds <= 7 * 24 * 3600:
            raise ConfigurationError(
                f"expires must be between 1 second and 7 days, got {seconds:g} s", resource=key
            )
        verb = str(method).upper()
        if verb not in ("GET", "PUT"):
            raise ConfigurationError(f"method must be 'GET' or 'PUT', got {method!r}", resource=key)
        return self._presign(bucket, object_key, int(seconds), verb)

    # -- lifecycle ------------------------------------------------------------------------------

    def create_bucket(self, bucket: str | None = None, *, exist_ok: bool = True) -> None:
        """Create the bucket/container (default: the connection's); ``exist_ok`` accepts an existing one."""
        name = bucket or self.default_bucket
        if name is None:
            raise ConfigurationError("no bucket/container named and no default configured")
        try:
            self._call("create bucket", self._create_bucket, name, resource=self.url(name, ""))
        except BucketExistsError:
            if not exist_ok:
                raise ConfigurationError(
                    f"{self.url(name, '')} already exists; pass exist_ok=True to accept it", resource=name
                ) from None

    # -- errors ---------------------------------------------------------------------------------

    def _secrets(self) -> builtins.list[str]:
        found: builtins.list[str] = []

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

    def _translate_fallback(self, exc: Exception, message: str, resource: str | None) -> SygnifyError:
        """The translation of errors no connector-specific rule matched."""
        if isinstance(exc, TimeoutError | ConnectionError):
            return ConnectionFailedError(message, resource=resource)
        return SygnifyError(message, resource=resource)


class BucketExistsError(SygnifyError):
    """A store's ``_create_bucket`` found the bucket already there; :meth:`ObjectStore.create_bucket`
    turns it into success (``exist_ok``) or a :class:`~sygnify.errors.ConfigurationError`."""
