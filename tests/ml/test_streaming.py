from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from sygnify.errors import ConfigurationError
from sygnify.ml import RealTimeML, Session, Sliding, Tumbling
from sygnify.processing import Aggregate, LargeDataHandler
from sygnify.streams.base import SourceBatch, StreamSource
from sygnify.streams.windows import WindowState
from tests.ml.conftest import FakeClock


class MemorySource:
    """An in-memory StreamSource: hands out queued batches, records acks."""

    def __init__(self, batches: list[pa.RecordBatch]) -> None:
        self.batches = list(batches)
        self.acked: list[int] = []
        self.reads: list[float] = []
        self.closed = False

    def read(self, *, max_records: int = 1000, timeout: float = 1.0) -> SourceBatch | None:
        self.reads.append(timeout)
        if not self.batches:
            return None
        index = len(self.acked) + (len(self.reads) - 1) * 0  # position unused; acks carry their own id
        batch = self.batches.pop(0)
        seq = int(batch.column("seq")[0].as_py())
        del index
        return SourceBatch(batch, ack=lambda: self.acked.append(seq))

    def close(self) -> None:
        self.closed = True

    def __iter__(self) -> Iterator[SourceBatch]:
        while (batch := self.read()) is not None:
            yield batch


def _batches(sizes: list[int]) -> list[pa.RecordBatch]:
    out, n = [], 0
    for seq, size in enumerate(sizes):
        out.append(pa.record_batch({"seq": [seq] * size, "x": [float(n + i) for i in range(size)]}))
        n += size
    return out


@pytest.fixture
def inc(ml: RealTimeML) -> RealTimeML:
    ml.register("inc", backend="callable", fn=lambda X: X[:, 0] + 1, features=["x"], extra_features="ignore")
    return ml


def test_memory_source_is_a_stream_source() -> None:
    assert isinstance(MemorySource([]), StreamSource)


def test_batch_mode_acks_only_after_predictions_were_consumed(inc: RealTimeML) -> None:
    source = MemorySource(_batches([3, 3, 2]))
    seen_by_callback: list[int] = []
    inc.on("prediction", lambda table: seen_by_callback.append(table.num_rows))
    stream = inc.stream(source, model="inc", mode="batch", batch_size=4, idle_timeout=0)
    iterator = iter(stream)
    first = next(iterator)
    assert first.num_rows == 4
    assert first.column("prediction").to_pylist() == [1.0, 2.0, 3.0, 4.0]
    assert source.acked == []  # not acknowledged while the consumer holds the batch
    second = next(iterator)
    assert second.num_rows == 4
    assert source.acked == [0]  # batch 0 (rows 0-2) was fully in the first output
    with pytest.raises(StopIteration):
        next(iterator)
    assert source.acked == [0, 1, 2]
    assert seen_by_callback == [4, 4]


def test_a_consumer_that_stops_early_leaves_batches_unacknowledged(inc: RealTimeML) -> None:
    source = MemorySource(_batches([2, 2, 2]))
    for _ in inc.stream(source, model="inc", mode="batch", batch_size=2, idle_timeout=0):
        break
    assert source.acked == []


def test_streaming_mode_flushes_on_max_latency(inc: RealTimeML) -> None:
    clock = FakeClock()
    ml = RealTimeML(clock=clock)
    ml.register("inc", backend="callable", fn=lambda X: X[:, 0] + 1, features=["x"])
    stream = ml.stream(iter([]), model="inc", mode="streaming", max_latency=0.01)
    processor = stream.processor
    assert processor.feed({"x": 1.0}) == []
    assert processor.due_in() == pytest.approx(0.01)
    clock.now = 0.02
    [(table, _acks)] = processor.tick()
    assert table.column("prediction").to_pylist() == [2.0]
    assert processor.due_in() is None


def test_streaming_mode_grows_its_micro_batches_while_fast(inc: RealTimeML) -> None:
    events = [{"x": float(i)} for i in range(2000)]
    sizes = [t.num_rows for t in inc.stream(events, model="inc", max_latency=10.0, max_batch_size=256)]
    assert sum(sizes) == 2000
    assert sizes[0] == 32
    assert max(sizes) == 256


def test_source_reads_wait_no_longer_than_the_latency_budget(inc: RealTimeML) -> None:
    source = MemorySource(_batches([1]))
    list(inc.stream(source, model="inc", max_latency=0.05, idle_timeout=0, poll_timeout=1.0))
    assert source.reads[0] == 1.0
    assert source.reads[1] <= 0.05
    assert source.acked == [0]


def test_polars_frames_and_record_batches_as_items(inc: RealTimeML) -> None:
    items: list[Any] = [pl.DataFrame({"x": [1.0, 2.0]}), pa.record_batch({"x": [3.0]}), [{"x": 4.0}]]
    out = list(inc.stream(items, model="inc", mode="batch", batch_size=10))
    assert out[0].column("prediction").to_pylist() == [2.0, 3.0, 4.0, 5.0]
    assert out[0].column("x").to_pylist() == [1.0, 2.0, 3.0, 4.0]


def test_async_iteration_over_an_async_source(inc: RealTimeML) -> None:
    async def events() -> AsyncIterator[dict[str, float]]:
        for i in range(5):
            yield {"x": float(i)}

    async def run() -> list[float]:
        results = []
        async for table in inc.stream(events(), model="inc", mode="batch", batch_size=2):
            results.extend(table.column("prediction").to_pylist())
        return results

    assert asyncio.run(run()) == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_async_iteration_over_a_stream_source(inc: RealTimeML) -> None:
    source = MemorySource(_batches([2, 1]))

    async def run() -> int:
        return sum(
            [
                t.num_rows
                async for t in inc.stream(source, model="inc", mode="batch", batch_size=2, idle_timeout=0)
            ]
        )

    assert asyncio.run(run()) == 3
    assert source.acked == [0, 1]


def _events() -> pa.Table:
    return pa.table(
        {
            "user": ["a", "a", "b", "a", "b", "a"],
            "t": [1.0, 4.0, 8.0, 12.0, 25.0, 31.0],
            "amount": [10.0, 20.0, 5.0, 7.0, 1.0, 3.0],
        }
    )


def test_windowing_mode_scores_each_closed_window(ml: RealTimeML) -> None:
    ml.register("sum", backend="callable", fn=lambda X: X[:, 0] * 0 + X[:, 0].sum(), features=["amount"])
    batches = [_events().slice(i, 1) for i in range(6)]
    out = list(ml.stream(batches, model="sum", mode="windowing", window=Tumbling(10), time="t", key="user"))
    rows = pa.concat_tables(out).select(["user", "window_start", "window_end", "amount", "prediction"])
    assert rows.to_pylist()[:3] == [
        {"user": "a", "window_start": 0.0, "window_end": 10.0, "amount": 10.0, "prediction": 30.0},
        {"user": "a", "window_start": 0.0, "window_end": 10.0, "amount": 20.0, "prediction": 30.0},
        {"user": "b", "window_start": 0.0, "window_end": 10.0, "amount": 5.0, "prediction": 5.0},
    ]
    assert rows.num_rows == 6


#: aggregation mode over 10-second tumbling windows of ``_events()``' event time
PER_10S: dict[str, Any] = {"mode": "aggregation", "window": Tumbling(10), "time": "t"}


def _event_source() -> MemorySource:
    source = MemorySource([])
    source.batches = [
        pa.record_batch({"seq": [i] * 1, **{k: [v] for k, v in row.items()}})
        for i, row in enumerate(_events().to_pylist())
    ]
    return source


def test_aggregation_mode_predicts_on_window_features(ml: RealTimeML) -> None:
    ml.register("agg", backend="callable", fn=lambda X: X[:, 0] * X[:, 1], features=["total", "n"])
    source = _event_source()
    stream = ml.stream(
        source,
        model="agg",
        mode="aggregation",
        window=Tumbling(10),
        time="t",
        aggregate=Aggregate(by="user", total=("amount", "sum"), n=("amount", "count")),
        idle_timeout=0,
    )
    result = pa.concat_tables(list(stream)).to_pylist()
    assert result[0] == {
        "user": "a",
        "window_start": 0.0,
        "window_end": 10.0,
        "total": 30.0,
        "n": 2,
        "prediction": 60.0,
        "model": "agg",
        "model_version": "1",
        "latency_ms": result[0]["latency_ms"],
    }
    assert [(r["user"], r["window_start"]) for r in result] == [
        ("a", 0.0),
        ("b", 0.0),
        ("a", 10.0),
        ("b", 20.0),
        ("a", 30.0),
    ]
    assert source.acked == [0, 1, 2, 3, 4, 5]


def test_the_old_aggregations_spelling_gives_the_same_numbers_with_a_warning(ml: RealTimeML) -> None:
    ml.register("agg", backend="callable", fn=lambda X: X[:, 0] * X[:, 1], features=["total", "n"])
    options = {**PER_10S, "idle_timeout": 0}
    with pytest.warns(DeprecationWarning, match=r"aggregate=sygnify\.processing\.Aggregate"):
        old = ml.stream(
            _event_source(),
            model="agg",
            key="user",
            aggregations={"total": ("amount", "sum"), "n": ("amount", "count")},
            **options,
        )
    new = ml.stream(
        _event_source(),
        model="agg",
        aggregate=Aggregate(by="user", total=("amount", "sum"), n=("amount", "count")),
        **options,
    )
    old_rows = pa.concat_tables(list(old)).drop_columns(["latency_ms"])
    new_rows = pa.concat_tables(list(new)).drop_columns(["latency_ms"])
    assert old_rows.schema.field("n").type == pa.float64()  # the old spelling kept its Float64 outputs
    assert old_rows.to_pylist() == new_rows.to_pylist()


def test_the_old_spelling_keeps_what_aggregate_cannot_express(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=lambda X: X[:, 0], features=["mid"], extra_features="ignore")
    for aggregations in (
        {"mid": ("amount", "median"), "last": ("amount", "last")},
        {"mid": pl.col("amount").median(), "last": pl.col("amount").last(), "who": pl.col("user").first()},
    ):
        with pytest.warns(DeprecationWarning, match="aggregations=.* is deprecated"):
            stream = ml.stream(_events(), model="m", key="user", aggregations=aggregations, **PER_10S)
        rows = pa.concat_tables(list(stream)).select(["user", "window_start", "mid", "last"]).to_pylist()
        assert rows[0] == {"user": "a", "window_start": 0.0, "mid": 15.0, "last": 20.0}
        assert len(rows) == 5


def test_the_stream_and_the_handler_give_the_same_aggregates(ml: RealTimeML) -> None:
    rng = np.random.default_rng(3)
    data = pl.DataFrame(
        {
            "user": rng.choice(["a", "b", "c", "d"], 400).tolist(),
            "t": np.sort(rng.uniform(0, 99, 400)),
            "amount": rng.normal(50, 20, 400).round(2),
            "item": rng.integers(0, 30, 400),
        }
    )
    spec = Aggregate(
        by="user",
        total=("amount", "sum"),
        avg=("amount", "mean"),
        sd=("amount", "std"),
        var=("amount", "var"),
        lo=("amount", "min"),
        hi=("amount", "max"),
        n=("amount", "count"),
        rows=("amount", "len"),
        items=("item", "n_unique"),
        approx_items=("item", "approx_n_unique"),
    )
    ml.register("m", backend="callable", fn=lambda X: X[:, 0], features=["total"], extra_features="ignore")
    batches = [data.slice(offset, 37) for offset in range(0, data.height, 37)]
    # one 100-second window holds every event: one row per user, as the handler gives
    stream = ml.stream(batches, model="m", mode="aggregation", window=Tumbling(100), time="t", aggregate=spec)
    streamed = pl.from_arrow(pa.concat_tables(list(stream)))
    assert isinstance(streamed, pl.DataFrame)
    handled = LargeDataHandler(chunk_size=50, progress=False).process(data, transform=spec, mode="chunked")
    assert handled.chunks > 1
    expected = handled.output
    assert isinstance(expected, pl.DataFrame)
    outputs = ["user", *spec.aggs]
    assert streamed.select(outputs).schema == expected.select(outputs).schema
    for name in outputs:
        got, want = streamed[name].to_list(), expected[name].to_list()
        assert got == pytest.approx(want, rel=1e-12) if streamed[name].dtype == pl.Float64 else got == want


def test_aggregation_without_keys_is_one_row_per_window(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=lambda X: X[:, 0], features=["total"], extra_features="ignore")
    spec = Aggregate(total=("amount", "sum"), users=("user", "n_unique"))
    stream = ml.stream(_events(), model="m", aggregate=spec, **PER_10S)
    rows = pa.concat_tables(list(stream)).select(["window_start", "total", "users", "prediction"]).to_pylist()
    assert rows == [
        {"window_start": 0.0, "total": 35.0, "users": 2, "prediction": 35.0},
        {"window_start": 10.0, "total": 7.0, "users": 1, "prediction": 7.0},
        {"window_start": 20.0, "total": 1.0, "users": 1, "prediction": 1.0},
        {"window_start": 30.0, "total": 3.0, "users": 1, "prediction": 3.0},
    ]


def test_aggregation_keys_come_from_aggregate_or_key_not_both_different(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=lambda X: X[:, 0], features=["total"])
    spec = Aggregate(total=("amount", "sum"))
    by_key = pa.concat_tables(list(ml.stream(_events(), model="m", key="user", aggregate=spec, **PER_10S)))
    assert by_key.column("user").to_pylist() == ["a", "b", "a", "b", "a"]
    with pytest.raises(ConfigurationError, match="disagree"):
        ml.stream(
            _events(), model="m", key="t", aggregate=Aggregate(by="user", total=("amount", "sum")), **PER_10S
        )
    with pytest.raises(ConfigurationError, match="not both"):
        ml.stream(_events(), model="m", aggregate=spec, aggregations={"total": ("amount", "sum")}, **PER_10S)
    with pytest.raises(ConfigurationError, match="only"):
        ml.stream(_events(), model="m", mode="windowing", window=Tumbling(10), time="t", aggregate=spec)


def test_window_acks_wait_for_the_window_to_close(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=lambda X: X[:, 0], features=["amount"], extra_features="ignore")
    source = MemorySource(
        [
            pa.record_batch({"seq": [0], "t": [1.0], "amount": [1.0]}),
            pa.record_batch({"seq": [1], "t": [15.0], "amount": [2.0]}),
        ]
    )
    iterator = iter(
        ml.stream(source, model="m", mode="windowing", window=Tumbling(10), time="t", idle_timeout=0)
    )
    first = next(iterator)
    assert first.column("amount").to_pylist() == [1.0]
    assert source.acked == []
    assert next(iterator).column("amount").to_pylist() == [2.0]
    assert source.acked == [0]
    assert list(iterator) == []
    assert source.acked == [0, 1]


def test_late_events_are_dropped_and_reported(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=lambda X: X[:, 0], features=["amount"])
    late: list[Any] = []
    ml.on("late", late.append)
    events = [{"t": 1.0, "amount": 1.0}, {"t": 12.0, "amount": 2.0}, {"t": 2.0, "amount": 3.0}]
    stream = ml.stream(events, model="m", mode="windowing", window=Tumbling(10), time="t")
    out = pa.concat_tables(list(stream))
    assert out.column("amount").to_pylist() == [1.0, 2.0]
    assert stream.late_rows == 1
    assert [(e["model"], e["rows"], e["records"].to_pylist()) for e in late] == [
        ("m", 1, [{"t": 2.0, "amount": 3.0}])
    ]
    lenient = ml.stream(
        events, model="m", mode="windowing", window=Tumbling(10), time="t", allowed_lateness=5
    )
    assert sorted(pa.concat_tables(list(lenient)).column("amount").to_pylist()) == [1.0, 2.0, 3.0]


def test_sliding_and_session_windows() -> None:
    sliding = WindowState(Sliding(10, 5), time_column="t")
    early = sliding.add(pa.table({"t": [1.0, 6.0]})).closed
    closed = early + sliding.add(pa.table({"t": [30.0]})).closed
    assert [(w.start, w.end, w.rows.column("t").to_pylist()) for w in closed] == [
        (-5.0, 5.0, [1.0]),
        (0.0, 10.0, [1.0, 6.0]),
        (5.0, 15.0, [6.0]),
    ]
    session = WindowState(Session(5), time_column="t", key_columns=["k"])
    flushed = session.add(pa.table({"k": ["a", "a", "a", "b"], "t": [1.0, 3.0, 20.0, 2.0]})).closed
    flushed += session.flush()
    assert [(w.key, w.start, w.end, w.rows.num_rows) for w in flushed] == [
        (("b",), 2.0, 7.0, 1),
        (("a",), 1.0, 8.0, 2),
        (("a",), 20.0, 25.0, 1),
    ]


def test_session_windows_merge_when_a_gap_is_bridged() -> None:
    state = WindowState(Session(5), time_column="t", allowed_lateness=100)
    state.add(pa.table({"t": [1.0, 10.0]}))
    state.add(pa.table({"t": [5.5]}))
    [window] = state.flush()
    assert (window.start, window.end, sorted(window.rows.column("t").to_pylist())) == (
        1.0,
        15.0,
        [1.0, 5.5, 10.0],
    )


def test_timestamp_event_time(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=lambda X: X[:, 0], features=["v"])
    ts = pa.array(np.array(["2024-01-01T00:00:01", "2024-01-01T00:01:05"], dtype="datetime64[us]"))
    out = pa.concat_tables(
        list(
            ml.stream(
                [pa.table({"ts": ts, "v": [1.0, 2.0]})],
                model="m",
                mode="windowing",
                window=Tumbling(60),
                time="ts",
            )
        )
    )
    assert out.schema.field("window_start").type == pa.timestamp("us")
    assert str(out.column("window_end")[0].as_py()) == "2024-01-01 00:01:00"


def test_bad_stream_options(inc: RealTimeML) -> None:
    with pytest.raises(ConfigurationError, match="unknown stream mode"):
        inc.stream([], model="inc", mode="nope")
    with pytest.raises(ConfigurationError, match="needs window"):
        inc.stream([], model="inc", mode="windowing")
    with pytest.raises(ConfigurationError, match="aggregate=Aggregate"):
        inc.stream([], model="inc", mode="aggregation", window=Tumbling(1), time="t")
    with (
        pytest.warns(DeprecationWarning, match="is deprecated"),
        pytest.raises(ConfigurationError, match="must be \\(column, how\\)"),
    ):
        inc.stream(
            [], model="inc", mode="aggregation", window=Tumbling(1), time="t", aggregations={"x": "sum"}
        )
    with pytest.raises(ConfigurationError, match="does not take"):
        inc.stream([], model="inc", batchsize=3)
