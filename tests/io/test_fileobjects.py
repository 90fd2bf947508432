"""RangedReader and UploadWriter: the file objects behind the connectors' open()."""

from __future__ import annotations

import gc
import io
from typing import IO

import pytest

from sygnify.errors import ConnectionFailedError, TransientError
from sygnify.io.fileobjects import RangedReader, UploadWriter, text_writer


def test_small_reads_are_served_from_one_block_and_big_reads_are_one_range() -> None:
    data = bytes(range(256)) * 64
    calls: list[tuple[int, int]] = []

    def read_range(start: int, length: int) -> bytes:
        calls.append((start, length))
        return data[start : start + length]

    reader = RangedReader(read_range, len(data), name="mem://x", block_size=1024)
    assert [reader.read(10) for _ in range(3)] == [data[0:10], data[10:20], data[20:30]]
    assert calls == [(0, 1024)]
    reader.seek(4096)
    assert reader.read(5000) == data[4096:9096]
    assert calls[1:] == [(4096, 4096), (8192, 1024)]  # whole blocks directly, then one read-ahead
    assert reader.read(100) == data[9096:9196]
    assert len(calls) == 3
    reader.seek(0)
    assert reader.read() == data
    assert reader.read() == b""
    assert reader.tell() == len(data)


def test_a_range_that_ends_early_is_an_error_not_an_end_of_file() -> None:
    reader = RangedReader(lambda start, length: b"", 100, name="mem://shrunk")
    with pytest.raises(ConnectionFailedError, match="ended early"):
        reader.read(10)


def test_a_large_write_streams_with_a_bounded_backlog() -> None:
    part = 1000
    written = 0
    backlog: list[int] = []  # bytes written but not yet taken by the upload, at each part it takes

    def upload(stream: IO[bytes]) -> None:
        taken = 0
        while chunk := stream.read(part):
            taken += len(chunk)
            backlog.append(written - taken)

    with UploadWriter(upload, name="mem://big", part_size=part) as writer:
        for _ in range(3000):
            writer.write(b"x" * 333)
            written += 333
    assert len(backlog) == 999  # the upload ran while the writer was writing
    assert max(backlog) <= 3 * part  # the buffer, one queued part and the one being handed over


def test_an_upload_failure_surfaces_from_write_or_close() -> None:
    def upload(stream: IO[bytes]) -> None:
        stream.read(10)
        raise TransientError("store went away")

    writer = UploadWriter(upload, name="mem://failing", part_size=10)

    def write_all() -> None:
        with writer:
            for _ in range(100):
                writer.write(b"0123456789")

    with pytest.raises(TransientError, match="went away"):
        write_all()
    assert writer.closed


def test_a_writer_dropped_without_close_publishes_nothing() -> None:
    published: list[bytes] = []
    for size in (5, 50):  # buffered only, and with the upload thread running
        writer = UploadWriter(
            lambda stream: published.append(stream.read()), name="mem://dropped", part_size=10
        )
        writer.write(b"y" * size)
        del writer
        gc.collect()
    text = text_writer(
        UploadWriter(lambda s: published.append(s.read()), name="t"), encoding=None, newline=None
    )
    text.write("dropped")
    del text
    gc.collect()
    assert published == []


def test_writers_refuse_writes_after_close() -> None:
    writer = UploadWriter(lambda stream: stream.read(), name="mem://closed")
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"late")
    assert isinstance(writer, io.BufferedIOBase)
