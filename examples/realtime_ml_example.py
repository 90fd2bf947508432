"""RealTimeML in one file: an ONNX model, an A/B split, a shadow, and windowed streams.

The aggregation stream uses ``sygnify.processing.Aggregate``, the same aggregation
vocabulary (and numbers) as ``LargeDataHandler.process``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from sygnify.ml import RealTimeML, Tumbling
from sygnify.processing import Aggregate


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 2)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    onx = to_onnx(clf, X[:1], options={id(clf): {"zipmap": False}}).SerializeToString()

    with RealTimeML() as ml:
        ml.register("risk", backend="onnx", model_bytes=onx, features=["a", "b"], version="onnx")
        ml.register("risk", backend="sklearn", model=clf, features=["a", "b"], version="sklearn")
        ml.route("risk", {"onnx": 0.5, "sklearn": 0.5})
        frame = pl.DataFrame({"user": [f"u{i}" for i in range(6)], "a": X[:6, 0], "b": X[:6, 1]})
        print(ml.predict("risk", frame, key="user"))
        ml.route("risk", {"onnx": 1.0})
        ml.shadow("risk", "sklearn")
        print("single:", ml.predict_one("risk", {"a": 0.3, "b": -0.1}))
        events = [{"user": "u1", "t": float(t), "a": float(t % 3), "b": 0.5} for t in range(30)]
        for table in ml.stream(
            events, model="risk", mode="windowing", window=Tumbling(10), time="t", key="user"
        ):
            print("window rows:", table.num_rows, "predictions:", table.column("prediction").to_pylist()[:3])
        # one prediction per user and window, on the window's mean features
        per_window = Aggregate(by="user", a=("a", "mean"), b=("b", "mean"))
        for table in ml.stream(
            events, model="risk", mode="aggregation", window=Tumbling(10), time="t", aggregate=per_window
        ):
            print("aggregated:", table.select(["user", "window_start", "a", "b", "prediction"]).to_pylist())
        print("shadow:", ml.shadow_report("risk"))


if __name__ == "__main__":
    main()
