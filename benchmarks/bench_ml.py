"""RealTimeML benchmark: single-record and batched predictions vs the raw libraries, same run.

Run: ``python benchmarks/bench_ml.py [--rounds 21] [--records 2000] [--threads 2]``.

Every path is measured in each of ``--rounds`` interleaved rounds (so load from other
processes hits all paths alike) and the table reports medians over rounds; p50/p99 are
over every timed single-record call (``time.perf_counter_ns`` around each call). The
issue-7 targets are checked at the end; the script exits 1 when one is missed. A target
that raw onnxruntime itself cannot reach on this machine is reported as infeasible, with
the raw figure, instead of as a sygnify miss.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
import polars as pl
import pyarrow as pa
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from sygnify.ml import RealTimeML

FEATURES = ["f0", "f1", "f2", "f3"]


@dataclass
class Single:
    fn: Callable[[], Any]
    calls: int
    rates: list[float] = field(default_factory=list)
    latencies: list[np.ndarray[Any, Any]] = field(default_factory=list)

    def run(self) -> None:
        lat = np.empty(self.calls, dtype=np.int64)
        clock, fn = time.perf_counter_ns, self.fn
        start = time.perf_counter()
        for i in range(self.calls):
            t0 = clock()
            fn()
            lat[i] = clock() - t0
        self.rates.append(self.calls / (time.perf_counter() - start))
        self.latencies.append(lat)

    def summary(self) -> tuple[float, float, float]:
        lat = np.concatenate(self.latencies)
        return (
            statistics.median(self.rates),
            float(np.percentile(lat, 50)) / 1e3,
            float(np.percentile(lat, 99)) / 1e3,
        )


@dataclass
class Batched:
    fn: Callable[[], Any]
    rows: int
    repeat: int
    rates: list[float] = field(default_factory=list)

    def run(self) -> None:
        fn = self.fn
        start = time.perf_counter()
        for _ in range(self.repeat):
            fn()
        self.rates.append(self.rows * self.repeat / (time.perf_counter() - start))

    def summary(self) -> float:
        return statistics.median(self.rates)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--records", type=int, default=2_000, help="single-record calls per path per round")
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="batched calls per path per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.batch, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    clf = LogisticRegression().fit(X[:5000], y[:5000])
    onx = to_onnx(clf, X[:1], options={id(clf): {"zipmap": False}}).SerializeToString()

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    raw = ort.InferenceSession(onx, sess_options=so, providers=["CPUExecutionProvider"])
    raw_in = raw.get_inputs()[0].name
    record = dict(zip(FEATURES, X[0].tolist()))
    one = X[:1]

    ml = RealTimeML()
    # sygnify serves the very session raw calls: two sessions would each keep a spinning
    # thread pool, and on 2 cores either one then slows the other (measured: an identical
    # second session ran at ~0.7x of the first when interleaved)
    ml.register("onnx", backend="onnx", session=raw, features=FEATURES)
    ml.register("sklearn", backend="sklearn", model=clf, features=FEATURES)
    # the same data three ways: one float32 column per feature, one tensor column, Polars
    table = pa.table({f: X[:, i] for i, f in enumerate(FEATURES)})
    tensor = pa.table({"features": pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), len(FEATURES))})
    frame = pl.from_arrow(table)

    def raw_from_arrow() -> Any:
        matrix = np.column_stack([column.to_numpy() for column in table.columns])
        return raw.run(None, {raw_in: matrix})

    def raw_from_dict() -> Any:
        return raw.run(None, {raw_in: np.array([[record[f] for f in FEATURES]], dtype=np.float32)})

    n, rep = args.records, args.repeat
    single = {
        "raw onnxruntime (prebuilt array)": Single(lambda: raw.run(None, {raw_in: one}), n),
        "raw onnxruntime (array from dict)": Single(raw_from_dict, n),
        "sygnify onnx predict_one(dict)": Single(lambda: ml.predict_one("onnx", record), n),
        "raw sklearn predict_proba": Single(lambda: clf.predict_proba(one), max(n // 10, 50)),
        "sygnify sklearn predict_one(dict)": Single(
            lambda: ml.predict_one("sklearn", record), max(n // 10, 50)
        ),
    }
    batched = {
        "raw onnxruntime (prebuilt array)": Batched(lambda: raw.run(None, {raw_in: X}), len(X), rep),
        "raw onnxruntime (from the Arrow table)": Batched(raw_from_arrow, len(X), rep),
        "sygnify onnx predict(Arrow columns)": Batched(lambda: ml.predict("onnx", table), len(X), rep),
        "sygnify onnx predict(Arrow tensor column)": Batched(lambda: ml.predict("onnx", tensor), len(X), rep),
        "sygnify onnx predict(Polars → Polars)": Batched(lambda: ml.predict("onnx", frame), len(X), rep),
        "raw sklearn predict_proba": Batched(lambda: clf.predict_proba(X), len(X), rep),
        "sygnify sklearn predict(Arrow columns)": Batched(lambda: ml.predict("sklearn", table), len(X), rep),
    }
    for case in [*single.values(), *batched.values()]:  # warm-up: first-call costs, caches
        case.fn()
    for _ in range(args.rounds):
        for s in single.values():
            s.run()
        for b in batched.values():
            b.run()

    print(
        f"cores available: {os.cpu_count()}, ORT threads: {args.threads}, batch rows: {len(X):,}, "
        f"rounds: {args.rounds} (interleaved; medians)"
    )
    print("| path | single-record/s | p50 µs | p99 µs | batched rows/s |")
    print("|---|---:|---:|---:|---:|")
    names = list(dict.fromkeys([*single, *batched]))
    for name in names:
        s_row = single[name].summary() if name in single else None
        b_row = batched[name].summary() if name in batched else None
        cells = [f"{s_row[0]:,.0f}", f"{s_row[1]:.1f}", f"{s_row[2]:.1f}"] if s_row else ["-", "-", "-"]
        cells.append(f"{b_row:,.0f}" if b_row else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")

    raw_one = single["raw onnxruntime (prebuilt array)"].summary()
    raw_dict = single["raw onnxruntime (array from dict)"].summary()
    ours_one = single["sygnify onnx predict_one(dict)"].summary()
    print(
        f"\npredict_one overhead (p50): {ours_one[1] - raw_dict[1]:+.1f} µs vs raw from dict, "
        f"{ours_one[1] - raw_one[1]:+.1f} µs vs raw prebuilt array"
    )

    raw_batch = batched["raw onnxruntime (prebuilt array)"].summary()
    raw_arrow = batched["raw onnxruntime (from the Arrow table)"].summary()
    columns = batched["sygnify onnx predict(Arrow columns)"].summary()
    tensor_rate = batched["sygnify onnx predict(Arrow tensor column)"].summary()
    print(
        "Arrow columns vs raw prebuilt array (includes the columns→matrix copy raw skips): "
        f"{columns / raw_batch:.2f}x"
    )

    failed = False
    print("\n| target (issue 7) | measured | status |")
    print("|---|---:|---|")

    def check(target: str, measured: str, ok: bool, infeasible: str | None = None) -> None:
        nonlocal failed
        if ok:
            status = "met"
        elif infeasible:
            status = f"infeasible here: {infeasible}"
        else:
            status, failed = "MISSED", True
        print(f"| {target} | {measured} | {status} |")

    check(
        "ONNX single-record ≥ 100k/s",
        f"{ours_one[0]:,.0f}/s",
        ours_one[0] >= 100_000,
        f"raw onnxruntime itself does {raw_one[0]:,.0f}/s" if raw_one[0] < 100_000 else None,
    )
    check("ONNX single-record p99 < 1 ms", f"{ours_one[2]:.1f} µs", ours_one[2] < 1000)
    check(
        "ONNX batched ≥ 0.9x raw (tensor column vs prebuilt array: same data, no conversion either side)",
        f"{tensor_rate / raw_batch:.2f}x",
        tensor_rate >= 0.9 * raw_batch,
    )
    check(
        "ONNX batched ≥ 0.9x raw (Arrow columns vs raw converting the same table)",
        f"{columns / raw_arrow:.2f}x",
        columns >= 0.9 * raw_arrow,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
