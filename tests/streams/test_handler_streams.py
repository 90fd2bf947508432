"""``LargeDataHandler.process`` on live stream sources: windows, checkpoints, sinks, errors, stop.

The same runtime as ``RealTimeML.stream`` (``processing/stream_run.py``), with a transform
instead of a model, against the real servers (Redis, NATS JetStream, Mosquitto, tansu Kafka).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from sygnify.errors import ConfigurationError, DataQualityError
from sygnify.processing import Aggregate, LargeDataHandler
from sygnify.streams.windows import Tumbling
from tests.services import require
from tests.streams.backends import REDIS_URL, Backend, port_open

SCHEMA = pa.schema([("id", pa.int64()), ("k", pa.int64()), ("ts", pa.float64())])
WINDOW = 1.0


def event(i: int) -> bytes:
    return json.dumps({"id": i, "k": i % 3, "ts": i * 0.01}).encode()


def expected_windows(ids: range) -> Counter[tuple[int, float, int, int]]:
    groups: dict[tuple[int, float], list[int]] = {}
    for i in ids:
        groups.setdefault((i % 3, (i * 0.01 // WINDOW) * WINDOW), []).append(i)
    return Counter((k, start, len(members), sum(members)) for (k, start), members in groups.items())


def held(backend: Backend) -> dict[str, Any]:
    # NATS: messages held by open windows must not be redelivered while the test runs
    return {"ack_wait": 30.0} if backend.kind == "nats" else {}


@pytest.fixture
def redis_backend() -> Any:
    require(port_open(6379), "redis on 127.0.0.1:6379")
    backend = Backend("redis")
    backend.prepare()
    try:
        yield backend
    finally:
        backend.cleanup()


def pending(backend: Backend) -> int:
    return int(redis.Redis.from_url(REDIS_URL).xpending(backend.name, "g")["pending"])


def test_windowed_aggregation_of_a_stream_on_every_source_matches_brute_force(
    backend: Backend, tmp_path: Path
) -> None:
    total = 3000
    source = backend.open(schema=SCHEMA, **held(backend))  # MQTT: the session exists before events
    backend.produce([event(i) for i in range(total)], partition=0)
    with source:
        result = LargeDataHandler(progress=False).process(
            source,
            transform=Aggregate(by="k", n=("id", "count"), total=("id", "sum")),
            window=Tumbling(WINDOW),
            time="ts",
            close_after=0.5,
            idle_timeout=3.0,
            checkpoint=tmp_path / "state.json",
            sink=str(tmp_path / "out") + "/",
        )
    got = Counter(
        (r["k"], r["window_start"], r["n"], r["total"])
        for r in pq.read_table(tmp_path / "out").select(["k", "window_start", "n", "total"]).to_pylist()
    )
    assert got == expected_windows(range(total))
    assert result.rows_in == total
    assert result.rows_out == len(got)
    assert result.output is None
    assert result.paths
    if backend.kind == "redis":
        assert pending(backend) == 0, "every batch was acknowledged"


def test_steps_before_the_aggregate_run_on_each_batch(redis_backend: Backend) -> None:
    total = 600
    backend = redis_backend
    source = backend.open(schema=SCHEMA)
    backend.produce([event(i) for i in range(total)])
    with source:
        result = LargeDataHandler(progress=False).process(
            source,
            transform=[
                lambda lf: lf.filter(pl.col("id") % 2 == 0),
                Aggregate(by="k", n=("id", "count"), total=("id", "sum")),
            ],
            window=Tumbling(WINDOW),
            time="ts",
            idle_timeout=1.0,
        )
    assert result.output is not None
    got = Counter(result.output.select("k", "window_start", "n", "total").iter_rows())
    assert got == expected_windows(range(0, total, 2))
    assert pending(backend) == 0


def test_a_row_local_transform_streams_micro_batches_and_acknowledges_them(redis_backend: Backend) -> None:
    backend = redis_backend
    source = backend.open(schema=SCHEMA)
    backend.produce([event(i) for i in range(1000)])
    with source:
        result = LargeDataHandler(progress=False).process(
            source,
            transform=[(pl.col("id") * 10).alias("id10")],
            max_latency=0.02,
            idle_timeout=0.5,
        )
    assert result.output is not None
    assert sorted(result.output["id10"].to_list()) == [i * 10 for i in range(1000)]
    assert result.rows_in == result.rows_out == 1000
    assert pending(backend) == 0


def _numbers(lf: pl.LazyFrame) -> pl.LazyFrame:
    return lf.with_columns(pl.col("s").str.to_integer().alias("n"))


def test_records_the_transform_fails_on_go_to_the_sources_dead_letters_and_the_rest_goes_on(
    redis_backend: Backend,
) -> None:
    backend = redis_backend
    source = backend.open()
    payloads = [json.dumps({"s": str(i) if i != 37 else "x37"}).encode() for i in range(100)]
    backend.produce(payloads)
    with source:
        result = LargeDataHandler(progress=False).process(
            source, transform=_numbers, on_error="dead_letter", idle_timeout=0.5
        )
    assert result.output is not None
    assert sorted(result.output["n"].to_list()) == [i for i in range(100) if i != 37]
    assert result.dead_letters == 1
    assert result.errors[0].action == "dead_letter"
    dead = backend.dead_letters(1)
    assert [json.loads(payload) for payload, _ in dead] == [{"s": "x37"}]
    assert "transform failed: ComputeError: strict integer parsing" in dead[0][1]
    assert pending(backend) == 0


def test_dead_letter_directory_and_skip_and_raise(redis_backend: Backend, tmp_path: Path) -> None:
    backend = redis_backend
    payloads = [json.dumps({"s": str(i) if i % 50 != 7 else "bad"}).encode() for i in range(200)]
    backend.produce(payloads)
    with backend.open() as source:
        result = LargeDataHandler(progress=False).process(
            source,
            transform=_numbers,
            on_error="dead_letter",
            dead_letter=tmp_path / "dead",
            idle_timeout=0.5,
        )
    assert result.dead_letters == 4
    assert result.output is not None
    assert len(result.output) == 196
    dead = pl.read_parquet(result.dead_letter_paths)
    assert sorted(dead["s"].to_list()) == ["bad"] * 4
    assert all("transform failed: ComputeError: strict integer parsing" in r for r in dead["_error"])
    assert backend.dead_letters(0, timeout=0) == [], "a directory took them, not the source"

    backend.produce(payloads)
    with backend.open() as source:
        skipped = LargeDataHandler(progress=False).process(
            source, transform=_numbers, on_error="skip", idle_timeout=0.5
        )
    assert skipped.dead_letters == 4
    assert skipped.output is not None
    assert len(skipped.output) == 196
    assert {e.action for e in skipped.errors} == {"skipped"}

    backend.produce(payloads[:10])
    with backend.open() as source, pytest.raises(DataQualityError, match="transform failed: ComputeError"):
        LargeDataHandler(progress=False).process(source, transform=_numbers, idle_timeout=0.5)
    assert pending(backend) == 10, "a failed batch is not acknowledged: it is redelivered"


def test_stop_ends_a_stream_run_within_a_second_and_commits_what_was_processed(
    redis_backend: Backend,
) -> None:
    backend = redis_backend
    handler = LargeDataHandler(progress=False)
    stop_at: list[float] = []

    def stop_soon() -> None:
        backend.produce([event(i) for i in range(500)])
        time.sleep(1.0)
        stop_at.append(time.monotonic())
        handler.stop()

    with backend.open(schema=SCHEMA) as source:
        stopper = threading.Thread(target=stop_soon)
        stopper.start()
        result = handler.process(source, transform=[pl.col("id") + 1])  # no idle_timeout: runs until stopped
        ended = time.monotonic()
        stopper.join()
    assert ended - stop_at[0] < 1.0
    assert result.rows_out == 500
    assert pending(backend) == 0


def test_stream_options_are_checked(redis_backend: Backend, tmp_path: Path) -> None:
    handler = LargeDataHandler(progress=False)
    with redis_backend.open() as source:
        with pytest.raises(ConfigurationError, match="needs window="):
            handler.process(source, transform=Aggregate(by="k", n=("id", "count")))
        with pytest.raises(ConfigurationError, match="must end in an Aggregate"):
            handler.process(source, transform=[pl.col("id") + 1], window=Tumbling(1), time="ts")
        with pytest.raises(ConfigurationError, match="mode='streaming'"):
            handler.process(source, mode="chunked")
        with pytest.raises(ConfigurationError, match="give window= too"):
            handler.process(source, time="ts")
        with pytest.raises(ConfigurationError, match="schema= of a stream"):
            handler.process(source, schema=SCHEMA)
    with pytest.raises(ConfigurationError, match="apply to stream sources"):
        handler.process(pl.DataFrame({"ts": [1.0]}), window=Tumbling(1), time="ts")
