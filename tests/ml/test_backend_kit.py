"""The shipped model-backend kit (sygnify.testing.backends) over every local backend."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from sklearn.linear_model import LinearRegression, LogisticRegression

from sygnify.errors import ModelError
from sygnify.ml import BackendOutput, ModelBackend, RealTimeML
from sygnify.testing.backends import BackendFactory, ModelBackendConformance, check_model_backend
from tests.ml.conftest import FEATURES


def _factories(
    ml: RealTimeML, classifier: LogisticRegression, onnx_bytes: bytes
) -> dict[str, BackendFactory]:
    """Fresh backends of each local kind, built the way users build them (``RealTimeML.register``)."""
    names = itertools.count()

    def register(backend: str, **config: Any) -> BackendFactory:
        return lambda: ml.register(f"m{next(names)}", backend=backend, **config)

    def torch_classifier() -> ModelBackend:
        linear = torch.nn.Linear(4, 3)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(classifier.coef_.astype(np.float32)))
            linear.bias.copy_(torch.from_numpy(classifier.intercept_.astype(np.float32)))
        return register("torch", module=linear, features=FEATURES, task="classification", device="cpu")()

    def torch_regressor() -> ModelBackend:
        torch.manual_seed(0)
        return register("torch", module=torch.nn.Linear(4, 1), features=FEATURES, device="cpu")()

    regressor = LinearRegression().fit(np.eye(4), np.arange(4.0))
    return {
        "callable": register(
            "callable", fn=classifier.predict, proba_fn=classifier.predict_proba, features=FEATURES
        ),
        "callable-rule": register("callable", fn=lambda X: X.sum(axis=1), features=FEATURES),
        "sklearn": register("sklearn", model=classifier, features=FEATURES),
        "sklearn-regressor": register("sklearn", model=regressor, features=FEATURES),
        "onnx": register("onnx", model_bytes=onnx_bytes, features=FEATURES, intra_op_num_threads=1),
        "onnx-without-signature": register("onnx", model_bytes=onnx_bytes, intra_op_num_threads=1),
        "torch": torch_classifier,
        "torch-regressor": torch_regressor,
    }


KINDS = [
    "callable",
    "callable-rule",
    "sklearn",
    "sklearn-regressor",
    "onnx",
    "onnx-without-signature",
    "torch",
    "torch-regressor",
]


@pytest.fixture
def sample_features(iris: tuple[np.ndarray[Any, Any], Any]) -> pa.Table:
    X, _ = iris
    return pa.table({name: X[::10, i] for i, name in enumerate(FEATURES)})


class TestBackendConformance(ModelBackendConformance):
    """Each check of the kit is its own test, for every local backend."""

    @pytest.fixture(params=KINDS)
    def backend_factory(
        self,
        request: pytest.FixtureRequest,
        ml: RealTimeML,
        classifier: LogisticRegression,
        onnx_bytes: bytes,
    ) -> BackendFactory:
        return _factories(ml, classifier, onnx_bytes)[request.param]


def test_check_model_backend_runs_every_check(
    ml: RealTimeML, classifier: LogisticRegression, onnx_bytes: bytes, sample_features: pa.Table
) -> None:
    ran = check_model_backend(_factories(ml, classifier, onnx_bytes)["sklearn"], sample_features)
    assert ran == [
        name.removeprefix("test_") for name in vars(ModelBackendConformance) if name.startswith("test_")
    ]


class _Rule:
    """A duck-typed backend (sum of the features) whose faults the negative tests choose."""

    backend_name = "rule"
    signature = None
    model_name = "rule"

    def __init__(self, *, row_offset: float = 0.0, empty: Exception | None = None) -> None:
        self.row_offset, self.empty = row_offset, empty

    def predict(self, features: pa.Table) -> BackendOutput:
        if features.num_rows == 0 and self.empty is not None:
            raise self.empty
        return BackendOutput(np.asarray(features.to_pandas().to_numpy().sum(axis=1)))

    def predict_row(self, values: list[Any]) -> tuple[Any, None]:
        return float(sum(values)) + self.row_offset, None

    def close(self) -> None:
        pass


def test_the_kit_catches_a_backend_whose_rows_disagree(sample_features: pa.Table) -> None:
    def make() -> ModelBackend:
        return _Rule(row_offset=1.0)  # type: ignore[return-value]

    with pytest.raises(AssertionError, match="row 0: predict_row gave"):
        ModelBackendConformance().test_predict_row_agrees_with_predict(make, sample_features)


def test_the_kit_catches_a_bare_exception_on_an_empty_table(sample_features: pa.Table) -> None:
    def make() -> ModelBackend:
        return _Rule(empty=IndexError("no rows"))  # type: ignore[return-value]

    with pytest.raises(AssertionError, match="raised IndexError: no rows"):
        ModelBackendConformance().test_an_empty_table_gets_no_predictions_or_a_typed_error(
            make, sample_features
        )
    ModelBackendConformance().test_an_empty_table_gets_no_predictions_or_a_typed_error(
        lambda: _Rule(empty=ModelError("cannot take zero rows")),  # type: ignore[arg-type, return-value]
        sample_features,
    )
