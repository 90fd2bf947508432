from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from sygnify.ml import RealTimeML

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _iris_like(n: int = 150) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), n // 3)
    X = rng.normal(size=(len(y), 4)) + y[:, None] * 1.5
    return X.astype(np.float32), y


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    return _iris_like()


@pytest.fixture(scope="session")
def classifier(iris: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]) -> LogisticRegression:
    X, y = iris
    return LogisticRegression(max_iter=500).fit(X, y)


@pytest.fixture(scope="session")
def onnx_bytes(classifier: LogisticRegression, iris: tuple[np.ndarray[Any, Any], Any]) -> bytes:
    from skl2onnx import to_onnx

    X, _ = iris
    onx = to_onnx(classifier, X[:1], options={id(classifier): {"zipmap": False}})
    return bytes(onx.SerializeToString())


@pytest.fixture
def ml() -> Iterator[RealTimeML]:
    with RealTimeML(rng=random.Random(7), sleep=lambda _: None) as instance:
        yield instance


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def mock_client(handler: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.fixture(scope="session")
def mlserver(tmp_path_factory: pytest.TempPathFactory, classifier: LogisticRegression) -> Iterator[Any]:
    from tests.emulators import EmulatorUnavailable
    from tests.emulators.mlserver import start_mlserver
    from tests.services import require

    folder: Path = tmp_path_factory.mktemp("mlserver")
    generator = start_mlserver(folder, classifier)
    try:
        server = next(generator)
    except EmulatorUnavailable as exc:
        require(False, f"MLServer unavailable: {exc}")
        return
    try:
        for _ in range(100):  # the HTTP port answers before the model is loaded
            if httpx.get(f"{server.url}/v2/models/iris/ready").status_code == 200:
                break
            import time

            time.sleep(0.2)
        yield server
    finally:
        generator.close()
