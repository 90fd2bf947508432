from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from sygnify.errors import ConfigurationError, ModelError, NotFoundError, PluginNotFoundError, SchemaError
from sygnify.ml import MODEL_BACKENDS, RealTimeML
from sygnify.ml.backends.callable import CallableBackend
from sygnify.ml.backends.onnx import OnnxBackend
from sygnify.ml.backends.sklearn import SklearnBackend
from sygnify.ml.backends.torch import TorchBackend
from sygnify.plugins import PluginContext
from tests.ml.conftest import FEATURES

LOCAL = ["callable", "sklearn", "onnx", "torch"]


def _table(X: np.ndarray[Any, Any]) -> pa.Table:
    return pa.table({name: X[:, i] for i, name in enumerate(FEATURES)})


def _make(kind: str, classifier: LogisticRegression, onnx_bytes: bytes) -> Any:
    ctx = PluginContext("m")
    if kind == "callable":
        return CallableBackend.from_config(
            {"fn": classifier.predict, "proba_fn": classifier.predict_proba, "features": FEATURES},
            context=ctx,
        )
    if kind == "sklearn":
        return SklearnBackend.from_config({"model": classifier, "features": FEATURES}, context=ctx)
    if kind == "onnx":
        return OnnxBackend.from_config(
            {"model_bytes": onnx_bytes, "features": FEATURES, "intra_op_num_threads": 1},
            context=ctx,
        )
    linear = torch.nn.Linear(4, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(classifier.coef_.astype(np.float32)))
        linear.bias.copy_(torch.from_numpy(classifier.intercept_.astype(np.float32)))
    return TorchBackend.from_config(
        {"module": linear, "features": FEATURES, "task": "classification", "device": "cpu"},
        context=ctx,
    )


@pytest.mark.parametrize("kind", LOCAL)
def test_every_local_backend_agrees_with_sklearn(
    kind: str, classifier: LogisticRegression, onnx_bytes: bytes, iris: tuple[Any, Any]
) -> None:
    X, _ = iris
    backend = _make(kind, classifier, onnx_bytes)
    out = backend.predict(_table(X))
    assert np.array_equal(np.asarray(out.predictions), classifier.predict(X))
    assert out.probabilities is not None
    np.testing.assert_allclose(out.probabilities, classifier.predict_proba(X), atol=1e-4)
    label, proba = backend.predict_row(X[7].tolist())
    assert label == classifier.predict(X[7:8])[0]
    assert proba is not None
    np.testing.assert_allclose(proba, classifier.predict_proba(X[7:8])[0], atol=1e-4)


def test_every_builtin_backend_is_registered() -> None:
    expected = {
        "callable",
        "sklearn",
        "onnx",
        "torch",
        "tfserving",
        "kserve_v2",
        "torchserve",
        "sagemaker",
        "vertex",
        "azureml",
    }
    assert expected <= set(MODEL_BACKENDS.names())
    for name in expected:
        assert MODEL_BACKENDS.load(name).backend_name == name


def test_unknown_backend_names_the_available_ones(ml: RealTimeML) -> None:
    with pytest.raises(PluginNotFoundError, match=r"available: .*onnx"):
        ml.register("m", backend="tensorflow-lite")


def test_pickle_files_need_trusted(tmp_path: Path, classifier: LogisticRegression, ml: RealTimeML) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(classifier))
    with pytest.raises(ConfigurationError, match="trusted=True"):
        ml.register("m", backend="sklearn", path=str(path), features=FEATURES)
    ml.register("m", backend="sklearn", path=str(path), features=FEATURES, trusted=True)
    assert ml.predict_one("m", dict(zip(FEATURES, [0.0, 0.0, 0.0, 0.0]))).model == "m"


def test_joblib_and_missing_files(tmp_path: Path, classifier: LogisticRegression, ml: RealTimeML) -> None:
    import joblib

    path = tmp_path / "model.joblib"
    joblib.dump(classifier, path)
    ml.register("m", backend="sklearn", path=str(path), trusted=True, features=FEATURES)
    with pytest.raises(NotFoundError):
        ml.register("n", backend="sklearn", path=str(tmp_path / "nope.joblib"), trusted=True)
    with pytest.raises(NotFoundError):
        ml.register("o", backend="onnx", path=str(tmp_path / "nope.onnx"))


def test_onnx_from_file_with_session_options(tmp_path: Path, onnx_bytes: bytes, ml: RealTimeML) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_bytes)
    backend = ml.register(
        "m",
        backend="onnx",
        path=str(path),
        features=FEATURES,
        intra_op_num_threads=1,
        inter_op_num_threads=1,
        graph_optimization_level="extended",
    )
    meta = backend.metadata()
    assert meta["inputs"][0]["shape"][1] == 4
    assert "CPUExecutionProvider" in meta["providers"]
    with pytest.raises(ConfigurationError, match="graph_optimization_level"):
        ml.register("x", backend="onnx", path=str(path), graph_optimization_level="max")


def test_onnx_wrong_width_is_a_schema_error(onnx_bytes: bytes) -> None:
    backend = OnnxBackend.from_config({"model_bytes": onnx_bytes}, context=PluginContext("m"))
    with pytest.raises(SchemaError, match="takes 4 features, got 2"):
        backend.predict(pa.table({"a": [1.0], "b": [2.0]}))


def test_unknown_options_are_refused(classifier: LogisticRegression, ml: RealTimeML) -> None:
    with pytest.raises(ConfigurationError, match="does not take option"):
        ml.register("m", backend="sklearn", model=classifier, feature=FEATURES)


def test_torch_state_dict_and_torchscript(tmp_path: Path, ml: RealTimeML) -> None:
    module = torch.nn.Linear(2, 1)
    with torch.no_grad():
        module.weight.fill_(2.0)
        module.bias.fill_(1.0)
    state = tmp_path / "weights.pt"
    torch.save(module.state_dict(), state)
    ml.register(
        "sd",
        backend="torch",
        path=str(state),
        module_factory=lambda: torch.nn.Linear(2, 1),
        features=["a", "b"],
        device="cpu",
    )
    script = tmp_path / "script.pt"
    torch.jit.script(module).save(str(script))
    ml.register("ts", backend="torch", path=str(script), features=["a", "b"])
    for name in ("sd", "ts"):
        assert ml.predict_one(name, {"a": 1.0, "b": 2.0}).prediction == pytest.approx(7.0)
    pickled = tmp_path / "module.pt"
    torch.save(module, pickled)
    with pytest.raises(ConfigurationError, match="trusted=True"):
        ml.register("pk", backend="torch", path=str(pickled), features=["a", "b"])


def test_torch_cuda_refused_without_gpu(ml: RealTimeML) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigurationError, match="CUDA is not available"):
        ml.register("m", backend="torch", module=torch.nn.Linear(1, 1), device="cuda")


def test_callable_failure_is_a_model_error(ml: RealTimeML) -> None:
    def broken(X: Any) -> Any:
        raise RuntimeError("boom")

    ml.register("m", backend="callable", fn=broken, features=["x"])
    with pytest.raises(ModelError, match="boom"):
        ml.predict("m", {"x": [1.0]})
    assert ml.metrics("m")["m:1"]["errors"] == 1
