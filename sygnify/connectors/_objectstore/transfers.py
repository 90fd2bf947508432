"""Bounded-memory transfers for object stores: uploads in parts, downloads in ranges.

:class:`~sygnify.connectors._objectstore.store.ObjectStore` moves objects of any size through
these helpers, so memory stays bounded by the part size and the parts in flight, never by
the object. They know nothing of any SDK: the store passes in the calls that move one part
or one range (each already retried on its own)::

    >>> import io
    >>> list(read_parts(io.BytesIO(b"abcdefg"), 3))
    [b'abc', b'def', b'g']
    >>> read_parts(io.BytesIO(b"ab"), 3)
    b'ab'
    >>> upload_parts(iter([b"a", b"b", b"c"]), lambda number, chunk: (number, chunk), max_in_flight=2)
    [(1, b'a'), (2, b'b'), (3, b'c')]
    >>> sink = io.BytesIO()
    >>> copy_ranges(lambda start, length: b"abcdefg"[start : start + length], 7, 3, sink, resource="x")
    7
    >>> sink.getvalue()
    b'abcdefg'
"""

from __future__ import annotations

import concurrent.futures
import itertools
from collections.abc import Callable, Iterator
from typing import IO, TypeVar

from sygnify.errors import ConnectionFailedError

__all__ = ["copy_ranges", "read_exactly", "read_parts", "upload_parts"]

T = TypeVar("T")


def _drain(items: list[bytes]) -> Iterator[bytes]:
    """Yield and forget ``items`` one by one (the list keeps no reference to what it yielded)."""
    while items:
        yield items.pop(0)


def read_exactly(reader: IO[bytes], size: int) -> bytes:
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


def read_parts(reader: IO[bytes], part_size: int) -> bytes | Iterator[bytes]:
    """All of ``reader`` if it is shorter than ``part_size``, else an iterator of its parts.

    Only the part being read is held: a part leaves this function's hands once yielded.
    """
    first = read_exactly(reader, part_size)
    if len(first) < part_size:
        return first
    # Hand the first part over instead of keeping a reference here for the whole upload.
    head = [first]
    del first
    return itertools.chain(_drain(head), iter(lambda: read_exactly(reader, part_size), b""))


def upload_parts(
    chunks: Iterator[bytes], upload_part: Callable[[int, bytes], T], *, max_in_flight: int
) -> list[T]:
    """Run ``upload_part(number, chunk)`` (numbers from 1) with at most ``max_in_flight`` at once.

    Returns the results in part order. Only the parts in flight are held in memory; the
    first failure cancels the parts not yet started and is raised.
    """
    results: dict[int, T] = {}
    with concurrent.futures.ThreadPoolExecutor(max_in_flight, thread_name_prefix="sygnify-upload") as workers:
        in_flight: dict[concurrent.futures.Future[T], int] = {}
        try:
            for number, chunk in enumerate(chunks, start=1):
                in_flight[workers.submit(upload_part, number, chunk)] = number
                del chunk
                if len(in_flight) >= max_in_flight:
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


def copy_ranges(
    read_range: Callable[[int, int], bytes], size: int, part_size: int, writer: IO[bytes], *, resource: str
) -> int:
    """Copy ``size`` bytes to ``writer`` by ``read_range(start, length)`` calls of ``part_size`` at most.

    Returns the bytes written; a range that comes back empty before the end is an error.
    """
    written = 0
    while written < size:
        chunk = read_range(written, min(part_size, size - written))
        if not chunk:
            raise ConnectionFailedError(
                f"download of {resource} ended early at byte {written}", resource=resource
            )
        writer.write(chunk)
        written += len(chunk)
    return written
