"""A read-only pyarrow filesystem over an object-store connector's own SDK calls.

Where a store's own Arrow filesystem cannot be used (pyarrow's Azure filesystem mis-builds
SAS URLs on path-style endpoints, so the Azure connector avoids it whenever a SAS token is
the credential), :class:`ObjectStoreFileSystem` reads objects through the connector's SDK
instead: one ranged GET per read, each retried and translated.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from sygnify.connectors._objectstore.store import ObjectStore
from sygnify.errors import ObjectNotFoundError

__all__ = ["ObjectStoreFileSystem"]


class _RangedObjectFile(io.RawIOBase):
    """A seekable, read-only view of one object: every read is one ranged GET (retried)."""

    def __init__(self, store: ObjectStore[Any], bucket: str, key: str) -> None:
        super().__init__()
        self._store, self._bucket, self._key = store, bucket, key
        self._resource = store.url(bucket, key)
        self._size: int | None = None
        self._position = 0

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = self._store.head(self._bucket, self._key, operation="open").size
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
        data = self._store.get_range(
            self._bucket, self._key, self._position, end - self._position, operation="read"
        )
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

    def get_file_info(self, paths: Sequence[str]) -> list[pafs.FileInfo]:
        infos = []
        for path in paths:
            bucket, key = self._split(path)
            if not key:
                infos.append(pafs.FileInfo(path, pafs.FileType.Directory))
                continue
            try:
                info = self.store.head(bucket, key)
            except ObjectNotFoundError:
                below = next(self.store.iter_objects(bucket, key.rstrip("/") + "/"), None)
                kind = pafs.FileType.NotFound if below is None else pafs.FileType.Directory
                infos.append(pafs.FileInfo(path, kind))
            else:
                infos.append(
                    pafs.FileInfo(path, pafs.FileType.File, size=info.size, mtime=info.last_modified)
                )
        return infos

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        bucket, key = self._split(selector.base_dir)
        prefix = key.rstrip("/") + "/" if key else ""
        files: list[pafs.FileInfo] = []
        directories: set[str] = set()
        for info in self.store.iter_objects(bucket, prefix):
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
