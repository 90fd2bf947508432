"""The vectorised window paths give what the general ones give.

Window aggregates of plain numeric columns are computed in numpy (one segment reduction per
aggregate) instead of a Polars group-by per batch, and Arrow numbers the keys of integer/string
key columns instead of a Python dict per row. Each test runs the same random batches through
a :class:`StreamProcessor` twice, once with the fast path turned off, and compares every
result: values (floats up to rounding: the two add in their own order), types and order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import sygnify.processing.stream_processor as stream_processor
import sygnify.streams.windows as windows
from sygnify.processing import Aggregate
from sygnify.processing.stream_processor import Item, StreamProcessor
from sygnify.streams.windows import Sliding, Tumbling, WindowSpec


def _batches(seed: int, *, keys: str, nulls: bool = False, zeros: bool = False) -> list[pa.Table]:
    rng = np.random.default_rng(seed)
    out = []
    for b in range(12):
        n = int(rng.integers(1, 60))
        t = 2.0 * b + np.sort(rng.uniform(0.0, 3.0, n)) - rng.uniform(0.0, 1.5, n)  # some late
        x = rng.normal(size=n) * 10 ** rng.uniform(-3, 3, n)
        if zeros:
            x[rng.uniform(size=n) < 0.3] = 0.0
        columns: dict[str, Any] = {
            "x": pa.array(x, mask=rng.uniform(size=n) < 0.2) if nulls else pa.array(x),
            "i": pa.array(rng.integers(-1000, 1000, n)),
            "u": pa.array(rng.integers(0, 1000, n).astype(np.uint32)),
            "t": pa.array(t),
        }
        if keys in ("str", "two"):
            columns["user"] = pa.array([[None, "a", "b", "c"][k] for k in rng.integers(0, 4, n)])
        if keys in ("int", "two"):
            columns["dev"] = pa.array([None if k == 0 else int(k) for k in rng.integers(0, 4, n)], pa.int64())
        out.append(pa.table(columns))
    return out


def _run(spec: WindowSpec, options: dict[str, Any], batches: list[pa.Table]) -> list[Any]:
    events: list[Any] = []
    now = [0.0]

    def score(features: pa.Table, keys: Any) -> pa.Table:
        return pa.table({"prediction": pa.array([float(features.num_columns)] * features.num_rows)})

    processor = StreamProcessor(
        score,
        "m",
        "aggregation" if "aggregate" in options or "aggregations" in options else "windowing",
        lambda: now[0],
        notify=lambda kind, payload: events.append((kind, payload["rows"])),
        window=spec,
        time="t",
        **options,
    )
    for index, table in enumerate(batches):
        now[0] += 0.5
        parts = [f"p{(index + row) % 2}" for row in range(table.num_rows)]
        item = Item(table, ack=_recorder(events, index), positions=_positions(parts))
        for result, acks in processor.feed(item, lagging=["p1"] if index % 3 else []):
            events.append(result)
            for ack in acks:
                ack()
    for result, acks in processor.finish():
        events.append(result)
        for ack in acks:
            ack()
    return events


def _recorder(events: list[Any], index: int) -> Callable[[], None]:
    return lambda: events.append(("ack", index))


def _positions(parts: list[str]) -> Callable[[], list[tuple[str, Any]]]:
    return lambda: [(p, row) for row, p in enumerate(parts)]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, pa.Table):
        return isinstance(b, pa.Table) and a.schema.equals(b.schema) and _same(a.to_pylist(), b.to_pylist())
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return bool(a == b)


def _compare(
    monkeypatch: pytest.MonkeyPatch,
    spec: WindowSpec,
    options: dict[str, Any],
    batches: list[pa.Table],
    switch_off: Callable[[], None],
) -> list[Any]:
    fast = _run(spec, options, batches)
    with monkeypatch.context():
        switch_off()
        general = _run(spec, options, batches)
    assert _same(fast, general)
    return fast


def _every_fast(by: list[str]) -> Aggregate:
    """Every aggregate the numpy path takes, on float, int64 and uint32 columns."""
    return Aggregate(
        by=by,
        total=("x", "sum"),
        avg=("x", "mean"),
        n=("x", "count"),
        rows=("x", "len"),
        lo=("i", "min"),
        hi=("u", "max"),
        isum=("i", "sum"),
        usum=("u", "sum"),
        xmax=("x", "max"),
    )


@pytest.mark.parametrize("keys", ["none", "str", "int", "two"])
@pytest.mark.parametrize("spec", [Tumbling(1.0), Sliding(2.0, 0.5)], ids=["tumbling", "sliding"])
@pytest.mark.parametrize("data", ["plain", "nulls", "zeros"])
def test_numpy_window_aggregates_equal_polars(
    monkeypatch: pytest.MonkeyPatch, keys: str, spec: WindowSpec, data: str
) -> None:
    by = {"none": [], "str": ["user"], "int": ["dev"], "two": ["user", "dev"]}[keys]
    options = {"aggregate": _every_fast(by)}
    called: list[bool] = []
    original = stream_processor._window_aggregates

    def counting(*args: Any) -> Any:
        answer = original(*args)
        called.append(answer is not None)
        return answer

    monkeypatch.setattr(stream_processor, "_window_aggregates", counting)
    batches = _batches(7, keys=keys, nulls=data == "nulls", zeros=data == "zeros")
    events = _compare(
        monkeypatch,
        spec,
        options,
        batches,
        lambda: monkeypatch.setattr(stream_processor, "_window_aggregates", lambda *args: None),
    )
    results = [e for e in events if isinstance(e, pa.Table) and e.num_rows]
    assert sum(r.num_rows for r in results) > 20
    assert any(kind == "late" for kind, *_ in (e for e in events if isinstance(e, tuple)))
    # plain data takes the numpy path; nulls, and zeros under a float max, take Polars'
    assert called
    assert all(called) == (data == "plain")


def test_the_legacy_spelling_keeps_float64_outputs_on_the_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    options = {"key": "dev", "aggregations": {"total": ("i", "sum"), "n": ("i", "count")}}
    with pytest.warns(DeprecationWarning, match="aggregations=.* is deprecated"):
        events = _compare(
            monkeypatch,
            Tumbling(1.0),
            options,
            _batches(3, keys="int"),
            lambda: monkeypatch.setattr(stream_processor, "_window_aggregates", lambda *args: None),
        )
    tables = [e for e in events if isinstance(e, pa.Table) and e.num_rows]
    assert tables
    assert tables[0].schema.field("total").type == pa.float64()


@pytest.mark.parametrize("keys", ["str", "int", "two"])
@pytest.mark.parametrize("mode", ["windowing", "aggregation"])
def test_arrow_key_codes_equal_the_per_row_python_keys(
    monkeypatch: pytest.MonkeyPatch, keys: str, mode: str
) -> None:
    by = {"str": ["user"], "int": ["dev"], "two": ["user", "dev"]}[keys]
    options: dict[str, Any] = (
        {"aggregate": Aggregate(by=by, total=("x", "sum"))} if mode == "aggregation" else {"key": by}
    )
    events = _compare(
        monkeypatch,
        Sliding(2.0, 1.0),
        options,
        _batches(11, keys=keys),
        lambda: monkeypatch.setattr(windows, "_encodable", lambda dtype: False),
    )
    assert any(isinstance(e, pa.Table) and e.num_rows for e in events)
