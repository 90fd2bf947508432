"""A read-only pyarrow filesystem over an object-store connector's own SDK calls.

Where a store's own Arrow filesystem cannot be used (pyarrow's Azure filesystem retries
inside its C++ SDK, unbounded by the connection's policy, and mis-builds SAS URLs on
path-style endpoints), :class:`ObjectStoreFileSystem` reads objects through the connector's
SDK instead. Files read through :meth:`~sygnify.io.fileobjects.RangedReader.read_at` (the
reader ``open()`` hands out) with a read-ahead of one ``part_size``: each refill is one
ranged GET, retried and translated, so the column chunks of a row group that pyarrow asks
for one after the other cost one request rather than one each, and no byte is copied on
its way to pyarrow. Opening a file asks for its size (HEAD) unless the filesystem was made
:meth:`~ObjectStoreFileSystem.with_sizes` of a listing.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from sygnify.connectors._objectstore.store import ObjectStore
from sygnify.errors import ObjectNotFoundError
from sygnify.io.fileobjects import RangedReader

__all__ = ["ObjectStoreFileSystem"]


class _ArrowReads:
    """What ``pyarrow.PythonFile`` calls (seek, tell, read) over :meth:`RangedReader.read_at`.

    ``read`` hands pyarrow a view of the downloaded range, which pyarrow wraps without a
    copy; a ``BufferedReader`` would copy every byte in and out of its buffer.
    """

    def __init__(self, reader: RangedReader) -> None:
        self._reader = reader
        self._position = 0

    @property
    def closed(self) -> bool:
        return bool(self._reader.closed)

    def close(self) -> None:
        self._reader.close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._reader.size}[whence]
        if base + offset < 0:
            raise ValueError(f"cannot seek to a negative position in {self._reader.name}")
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1) -> memoryview:
        length = self._reader.size - self._position if size is None or size < 0 else size
        data = self._reader.read_at(self._position, length)
        self._position += data.nbytes
        return data


class ObjectStoreFileSystem(pafs.FileSystemHandler):  # type: ignore[misc]  # pyarrow ships no types
    """A read-only pyarrow filesystem (paths ``bucket/key``) over a connector's SDK calls.

    Use it through :class:`pyarrow.fs.PyFileSystem`. Listing, HEAD and ranged GETs go
    through the connector's retry policy, circuit breaker and error translation; writes
    are refused (write through the connector: ``write``, ``put``, ``upload``). Example
    (needs a store, so not run as a doctest)::

        filesystem = pafs.PyFileSystem(ObjectStoreFileSystem(store))
        pq.read_table("container/path/x.parquet", filesystem=filesystem, columns=["id"])
    """

    def __init__(self, store: ObjectStore[Any], sizes: Mapping[str, int] | None = None) -> None:
        self.store = store
        self._sizes = dict(sizes or {})

    def with_sizes(self, sizes: Mapping[str, int]) -> pafs.PyFileSystem:
        """This filesystem, opening the objects in ``sizes`` (``bucket/key`` to bytes) without a HEAD.

        pyarrow hands a Python filesystem only the path of a fragment, never the
        ``file_size`` it was made with, so every open would otherwise ask the store for the
        size first. A dataset built from one listing passes that listing's sizes here, for
        its fragments only: the sizes live as long as the dataset, as pyarrow's own would.
        """
        return pafs.PyFileSystem(ObjectStoreFileSystem(self.store, {**self._sizes, **sizes}))

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
        bucket, key = self._split(path)
        size = self._sizes.get(f"{bucket}/{key}")
        if size is None:
            size = self.store.head(bucket, key, operation="open").size

        def read_range(start: int, length: int) -> bytes:
            return self.store.get_range(bucket, key, start, length, operation="read")

        # One part of read-ahead: pyarrow's coalesced column-chunk reads of a row group come
        # one after the other, so they cost one request, not one each.
        reader = RangedReader(
            read_range, size, name=self.store.url(bucket, key), block_size=self.store.config.part_size
        )
        return pa.PythonFile(_ArrowReads(reader), mode="r")

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.open_input_file(path)

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "this Arrow filesystem only reads; write through the connector (write, put, upload)"
        )

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _read_only
    delete_file = move = copy_file = open_output_stream = open_append_stream = _read_only
