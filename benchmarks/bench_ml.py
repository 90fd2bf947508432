"""RealTimeML benchmark: single-record and batched predictions vs the raw libraries, same run.

Run: ``python benchmarks/bench_ml.py [--records 20000] [--threads 2]``. Prints a Markdown table.
Per-call latency is measured with ``time.perf_counter_ns`` around each call (p50/p99).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from sygnify.ml import RealTimeML

FEATURES = ["f0", "f1", "f2", "f3"]


def _single(fn: Callable[[], Any], n: int) -> tuple[float, float, float]:
    for _ in range(min(1000, n)):
        fn()
    lat = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    start = time.perf_counter()
    for i in range(n):
        t0 = clock()
        fn()
        lat[i] = clock() - t0
    elapsed = time.perf_counter() - start
    return n / elapsed, float(np.percentile(lat, 50)) / 1e3, float(np.percentile(lat, 99)) / 1e3


def _batched(fn: Callable[[], Any], rows: int, repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return rows * repeat / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=10)
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
    ml.register(
        "onnx",
        backend="onnx",
        model_bytes=onx,
        features=FEATURES,
        intra_op_num_threads=args.threads,
        inter_op_num_threads=1,
    )
    ml.register("sklearn", backend="sklearn", model=clf, features=FEATURES)
    table = pa.table({f: X[:, i] for i, f in enumerate(FEATURES)})

    rows: list[tuple[str, str, str, str, str]] = []

    def add(name: str, single: tuple[float, float, float] | None, batched: float | None) -> None:
        s = f"{single[0]:,.0f}" if single else "-"
        p50 = f"{single[1]:.1f}" if single else "-"
        p99 = f"{single[2]:.1f}" if single else "-"
        b = f"{batched:,.0f}" if batched else "-"
        rows.append((name, s, p50, p99, b))

    n, rep = args.records, args.repeat
    add(
        "raw onnxruntime (prebuilt array)",
        _single(lambda: raw.run(None, {raw_in: one}), n),
        _batched(lambda: raw.run(None, {raw_in: X}), len(X), rep),
    )
    add(
        "raw onnxruntime (array from dict)",
        _single(
            lambda: raw.run(None, {raw_in: np.array([[record[f] for f in FEATURES]], dtype=np.float32)}), n
        ),
        None,
    )
    add(
        "sygnify onnx predict_one / predict(Arrow)",
        _single(lambda: ml.predict_one("onnx", record), n),
        _batched(lambda: ml.predict("onnx", table), len(X), rep),
    )
    add(
        "raw sklearn predict_proba",
        _single(lambda: clf.predict_proba(one), n // 4),
        _batched(lambda: clf.predict_proba(X), len(X), rep),
    )
    add(
        "sygnify sklearn predict_one / predict(Arrow)",
        _single(lambda: ml.predict_one("sklearn", record), n // 4),
        _batched(lambda: ml.predict("sklearn", table), len(X), rep),
    )

    print(f"cores available: {os.cpu_count()}, ORT threads: {args.threads}, batch rows: {len(X):,}")
    print("| path | single-record/s | p50 µs | p99 µs | batched rows/s |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
