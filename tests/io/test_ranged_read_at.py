"""RangedReader.read_at: positional, thread-safe, zero-copy reads (what the SDK Arrow filesystem uses)."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sygnify.errors import ConnectionFailedError
from sygnify.io.fileobjects import RangedReader

DATA = bytes(random.Random(0).getrandbits(8) for _ in range(100_000))


def counting_reader(
    block_size: int, *, short: int | None = None
) -> tuple[RangedReader, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []
    lock = threading.Lock()

    def read_range(start: int, length: int) -> bytes:
        with lock:
            calls.append((start, length))
        return DATA[start : start + min(length, short or length)]

    return RangedReader(read_range, len(DATA), name="mem://data", block_size=block_size), calls


def test_read_at_serves_reads_inside_its_block_without_a_request_and_keeps_the_position() -> None:
    reader, calls = counting_reader(4096)
    assert reader.read(10) == DATA[:10]
    before = len(calls)
    assert bytes(reader.read_at(50_000, 100)) == DATA[50_000:50_100]
    assert bytes(reader.read_at(50_100, 3000)) == DATA[50_100:53_100]  # inside the same block
    assert calls[before:] == [(50_000, 4096)]
    assert reader.read(5) == DATA[10:15]  # read_at left the read position alone
    assert bytes(reader.read_at(99_990, 100)) == DATA[99_990:]  # fewer only at the end
    assert reader.read_at(len(DATA), 10).nbytes == 0


def test_read_at_larger_than_the_block_is_one_request() -> None:
    reader, calls = counting_reader(1024)
    assert bytes(reader.read_at(7, 60_000)) == DATA[7:60_007]
    assert calls == [(7, 60_000)]


def test_read_at_from_many_threads_returns_the_exact_bytes() -> None:
    reader, calls = counting_reader(8192)
    rng = random.Random(1)
    ranges = [(rng.randrange(len(DATA)), rng.randrange(1, 20_000)) for _ in range(400)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda r: bytes(reader.read_at(*r)), ranges))
    assert results == [DATA[start : start + length] for start, length in ranges]
    assert len(calls) <= len(ranges)


def test_read_at_completes_a_short_range_and_refuses_an_object_that_shrank() -> None:
    reader, calls = counting_reader(1024, short=300)
    assert bytes(reader.read_at(0, 1000)) == DATA[:1000]
    assert len(calls) == 4  # 300 + 300 + 300 + 100: each call checked on its own
    shrunk = RangedReader(lambda start, length: b"", 100, name="mem://shrunk")
    with pytest.raises(ConnectionFailedError, match="ended early at byte 0 of 100"):
        shrunk.read_at(0, 10)
    with pytest.raises(ValueError, match="read_at needs"):
        reader.read_at(-1, 10)
