"""File objects over stores: seekable ranged reads, and writes published all at once on close.

``open()`` of the object-store and local connectors hands these out. They know nothing of
any SDK: the connector passes in the call that reads one byte range (already retried) or
the call that uploads one stream (in parts, atomically).

:class:`RangedReader` is a seekable, buffered binary reader: each refill of its read-ahead
block is one ``read_range(start, length)`` call, so ``pyarrow.parquet.ParquetFile``,
``zipfile.ZipFile`` and ``io.TextIOWrapper`` read an object without downloading it::

    >>> data = b"hello, ranged world"
    >>> calls = []
    >>> def read_range(start, length):
    ...     calls.append((start, length))
    ...     return data[start : start + length]
    >>> reader = RangedReader(read_range, len(data), name="mem://x", block_size=8)
    >>> reader.seek(7), reader.read(6), calls
    (7, b'ranged', [(7, 8)])

:class:`UploadWriter` is a binary writer whose bytes become visible only when ``close()``
succeeds: it hands ``upload`` one stream (parts of ``part_size`` bytes, read as they are
written, from a background thread), and an exception inside ``with`` aborts it, so
nothing is published::

    >>> published = []
    >>> with UploadWriter(lambda stream: published.append(stream.read()), name="mem://y") as out:
    ...     _ = out.write(b"all ")
    ...     _ = out.write(b"at once")
    >>> published
    [b'all at once']
    >>> try:
    ...     with UploadWriter(lambda stream: published.append(stream.read()), name="mem://z") as out:
    ...         _ = out.write(b"half")
    ...         raise RuntimeError("the producer failed")
    ... except RuntimeError:
    ...     pass
    >>> published  # the aborted write published nothing
    [b'all at once']

Text goes through :func:`text_writer`, a ``TextIOWrapper`` that aborts the same way.
"""

from __future__ import annotations

import collections
import io
import threading
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any, cast

from sygnify.errors import ConnectionFailedError

__all__ = ["DEFAULT_BLOCK_SIZE", "RangedReader", "TextWriter", "UploadWriter", "text_writer"]

MiB = 1024 * 1024
#: Read-ahead of a :class:`RangedReader`: big enough that small reads (a Parquet footer, a
#: zip directory, lines of text) cost few requests, small enough that a seek wastes little.
DEFAULT_BLOCK_SIZE = 1 * MiB


class _Ranges(io.RawIOBase):
    """The unbuffered half of :class:`RangedReader`: every read is one ``read_range`` call."""

    def __init__(self, read_range: Callable[[int, int], bytes], size: int, name: str, chunk: int) -> None:
        super().__init__()
        self._read_range, self._size, self.name, self._chunk = read_range, size, name, chunk
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        bases = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}
        if whence not in bases:
            raise ValueError(f"invalid whence {whence!r}")
        if bases[whence] + offset < 0:
            raise ValueError(f"cannot seek to a negative position in {self.name}")
        self._position = bases[whence] + offset
        return self._position

    def fetch(self, start: int, length: int) -> bytes:
        """One ``read_range(start, length)`` call; empty before the end is an error, not the end."""
        data = self._read_range(start, length)
        if not data:
            # The object is shorter than it was when opened: never pass that off as its end.
            raise ConnectionFailedError(
                f"read of {self.name} ended early at byte {start} of {self._size} "
                "(was the object replaced while open?)",
                resource=self.name,
            )
        return data

    def _fetch(self, length: int) -> bytes:
        data = self.fetch(self._position, length)
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        length = min(len(target), self._size - self._position)
        if length <= 0:
            return 0
        data = self._fetch(length)
        target[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        # RawIOBase would read in 8 KiB requests; read the rest in read-ahead-sized ranges.
        chunks = []
        while self._position < self._size:
            chunks.append(self._fetch(min(self._chunk, self._size - self._position)))
        return b"".join(chunks)


class RangedReader(io.BufferedReader):
    """A seekable binary reader of ``size`` bytes over ``read_range(start, length)`` calls.

    Reads are buffered in blocks of ``block_size`` bytes (one call each); a read larger
    than the block fetches its whole blocks in one call and reads ahead for the rest.
    :meth:`read_at` reads without a position, from any thread, without copying (what
    pyarrow's filesystem over the SDK reads through). A range that comes back empty before
    ``size`` is a :class:`~sygnify.errors.ConnectionFailedError`, never a silent end of file.
    """

    def __init__(
        self,
        read_range: Callable[[int, int], bytes],
        size: int,
        *,
        name: str,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self._ranges = _Ranges(read_range, size, name, block_size)
        super().__init__(self._ranges, buffer_size=block_size)
        self._object_size = size
        self._block_size = block_size
        # read_at's read-ahead: the last block it fetched, kept as read_range returned it.
        self._block_lock = threading.Lock()
        self._block: tuple[int, memoryview] = (0, memoryview(b""))
        # Concurrent read_at calls in the range of a block being fetched wait for it (one GET).
        self._block_ready = threading.Condition(self._block_lock)
        self._fetching: tuple[int, int] | None = None

    @property
    def size(self) -> int:
        """The object's size in bytes."""
        return self._object_size

    def read_at(self, position: int, length: int) -> memoryview:
        """Up to ``length`` bytes from ``position`` (fewer only at the end), as a read-only view.

        Unlike ``read()`` it leaves the read position alone and may be called from several
        threads at once. Its read-ahead is its own block of ``block_size`` bytes (at least
        ``length``): bytes already in it cost no request, others one ``read_range`` call,
        and nothing is copied (the view is of what ``read_range`` returned)::

            >>> data = b"abcdefghijklmnopqrstuvwxyz"
            >>> calls = []
            >>> def read_range(start, length):
            ...     calls.append((start, length))
            ...     return data[start : start + length]
            >>> reader = RangedReader(read_range, len(data), name="mem://z", block_size=16)
            >>> bytes(reader.read_at(4, 3)), bytes(reader.read_at(10, 2)), bytes(reader.read_at(24, 9))
            (b'efg', b'kl', b'yz')
            >>> calls  # the second read came from the first one's block
            [(4, 16), (24, 2)]
        """
        if position < 0 or length < 0:
            raise ValueError(f"read_at needs a position and length >= 0, got {position}, {length}")
        end = min(position + length, self._object_size)
        if end <= position:
            return memoryview(b"")
        wanted = min(max(length, self._block_size), self._object_size - position)
        with self._block_ready:
            while True:
                start, block = self._block
                if start <= position and end <= start + block.nbytes:
                    return block[position - start : end - start]
                # A block being fetched that will hold these bytes: wait for it, not a second GET.
                pending = self._fetching
                if pending is None or not (pending[0] <= position and end <= pending[1]):
                    break
                self._block_ready.wait()
            mine = (position, position + wanted)
            self._fetching = mine
        fetched: memoryview | None = None
        try:
            fetched = memoryview(self._ranges.fetch(position, wanted)).toreadonly()
        finally:
            with self._block_ready:
                if fetched is not None:
                    self._block = (position, fetched)
                if self._fetching == mine:
                    self._fetching = None
                self._block_ready.notify_all()
        block = fetched
        if block.nbytes >= end - position:
            return block[: end - position]
        # A store that answered with less than asked: read on (each call checked on its own).
        parts, done = [bytes(block)], position + block.nbytes
        while done < end:
            parts.append(self._ranges.fetch(done, end - done))
            done += len(parts[-1])
        return memoryview(b"".join(parts)[: end - position]).toreadonly()

    def close(self) -> None:
        if "_block_lock" in vars(self):  # not when __init__ refused its arguments
            with self._block_lock:
                self._block = (0, memoryview(b""))
        super().close()


class _Aborted(Exception):
    """Raised into an upload when its writer was aborted, so the upload publishes nothing."""


class _Pipe(io.RawIOBase):
    """Chunks handed from the writer's thread to the upload's; at most ``capacity`` waiting."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._offset = 0  # bytes of the first chunk already read
        self._capacity = capacity
        self._ready = threading.Condition()
        self._finished = False
        self._aborted = False
        self.failure: BaseException | None = None

    def readable(self) -> bool:
        return True

    def push(self, chunk: bytes) -> None:
        """Queue ``chunk``, waiting while the pipe is full; raises the upload's failure, if any."""
        with self._ready:
            while len(self._chunks) >= self._capacity and self.failure is None:
                self._ready.wait()
            if self.failure is not None:
                raise self.failure
            self._chunks.append(chunk)
            self._ready.notify_all()

    def finish(self) -> None:
        with self._ready:
            self._finished = True
            self._ready.notify_all()

    def abort(self) -> None:
        with self._ready:
            self._aborted = True
            self._chunks.clear()
            self._ready.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self._ready:
            self.failure = exc
            self._ready.notify_all()

    def _next(self, size: int) -> bytes:
        with self._ready:
            while not self._chunks and not self._finished and not self._aborted:
                self._ready.wait()
            if self._aborted:
                raise _Aborted("the writer was aborted")
            if not self._chunks:
                return b""
            head = self._chunks[0]
            if size < 0 or size >= len(head) - self._offset:
                data = head[self._offset :] if self._offset else head
                self._chunks.popleft()
                self._offset = 0
            else:
                data = head[self._offset : self._offset + size]
                self._offset += size
            self._ready.notify_all()
            return data

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            return self._next(size)
        return b"".join(iter(lambda: self._next(-1), b""))

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        data = self._next(len(target))
        target[: len(data)] = data
        return len(data)


class UploadWriter(io.BufferedIOBase):
    """A binary writer that publishes its bytes through ``upload(stream)`` on ``close()`` only.

    Bytes written are buffered up to ``part_size``; an object that fits is uploaded from
    ``close()`` in one call. A larger one starts ``upload`` on a background thread with a
    stream that yields the parts as they are written, so memory stays bounded by a few
    parts whatever the size. ``upload`` must publish only once the stream ends (a multipart
    upload completed, a temporary file renamed): :meth:`abort` (an exception inside ``with``,
    or a writer dropped without ``close()``) makes the stream raise, so nothing is published.
    An upload failure is raised from the next ``write()`` or from ``close()``.
    """

    def __init__(
        self,
        upload: Callable[[IO[bytes]], object],
        *,
        name: str,
        part_size: int = 8 * MiB,
        queued_parts: int = 1,
    ) -> None:
        super().__init__()
        self.name = name
        self._upload = upload
        self._part_size = part_size
        self._queued_parts = queued_parts
        self._buffer = bytearray()
        self._pipe: _Pipe | None = None
        self._thread: threading.Thread | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError(f"write to closed file {self.name}")
        view = memoryview(data).cast("B")
        self._buffer += view
        while len(self._buffer) >= self._part_size:
            chunk = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            self._send(chunk)
        return len(view)

    def _send(self, chunk: bytes) -> None:
        if self._pipe is None:
            pipe = self._pipe = _Pipe(self._queued_parts)
            self._thread = threading.Thread(
                target=self._run, args=(pipe,), name=f"sygnify-upload {self.name}", daemon=True
            )
            self._thread.start()
        self._pipe.push(chunk)

    def _run(self, pipe: _Pipe) -> None:
        try:
            self._upload(cast(IO[bytes], pipe))
        except BaseException as exc:  # handed to the writer's thread, which raises it
            pipe.fail(exc)

    def close(self) -> None:
        """Publish what was written (and wait for it); raises if the upload failed."""
        if self.closed:
            return
        try:
            if self._pipe is None:
                self._upload(io.BytesIO(bytes(self._buffer)))
            else:
                if self._buffer:
                    self._pipe.push(bytes(self._buffer))
                self._pipe.finish()
                assert self._thread is not None
                self._thread.join()
                if self._pipe.failure is not None:
                    raise self._pipe.failure
        finally:
            self._buffer = bytearray()
            super().close()

    def abort(self) -> None:
        """Close without publishing anything (a no-op once closed)."""
        if self.closed:
            return
        self._buffer = bytearray()
        if self._pipe is not None:
            self._pipe.abort()
            assert self._thread is not None
            self._thread.join()
        super().close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # A writer dropped without close() is abandoned, not published (unlike a local file).
        if "_pipe" in vars(self) and not self.closed:
            self.abort()


class TextWriter(io.TextIOWrapper):
    """A text writer over an :class:`UploadWriter`: an exception inside ``with`` aborts it."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        self.close()

    def abort(self) -> None:
        """Close without publishing anything (``close()`` of an aborted writer does nothing)."""
        writer = self.buffer
        assert isinstance(writer, UploadWriter)
        writer.abort()

    def __del__(self) -> None:
        if not self.closed:
            self.abort()


def text_writer(writer: UploadWriter, *, encoding: str | None, newline: str | None) -> TextWriter:
    """``writer`` as text (UTF-8 unless ``encoding`` says otherwise)."""
    return TextWriter(writer, encoding=encoding or "utf-8", newline=newline, write_through=True)
