"""ONNX Runtime models (the preferred format: no code runs when a model is loaded).

Session options (threads, optimisation level, execution mode, providers and any
``session_config`` entry such as ``{"session.intra_op.allow_spinning": "0"}``) are passed
through, or a ready ``session=`` (an ``InferenceSession``) is used as is. A model with one
2-D input takes the features as a matrix (a tensor column is used without a copy); a
model with one input per feature (``[N, 1]`` each) takes them by name.

    >>> import numpy as np, pyarrow as pa
    >>> from sklearn.linear_model import LinearRegression
    >>> from skl2onnx import to_onnx
    >>> X = np.array([[0.0], [1.0], [2.0]], dtype=np.float32)
    >>> onx = to_onnx(LinearRegression().fit(X, [1.0, 3.0, 5.0]), X[:1])
    >>> from sygnify.plugins import PluginContext
    >>> backend = OnnxBackend.from_config({"model_bytes": onx.SerializeToString(), "features": ["x"]},
    ...                                   context=PluginContext("lin"))
    >>> backend.predict(pa.table({"x": [3.0]})).predictions.round(3).tolist()
    [7.0]
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from sygnify.errors import ConfigurationError, ModelError, NotFoundError, SchemaError
from sygnify.ml.backends.base import BackendConfig, BackendOutput, ModelBackend, signature_from
from sygnify.ml.signature import table_to_matrix
from sygnify.plugins import PluginContext

__all__ = ["OnnxBackend", "OnnxConfig"]

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}
_OPT_LEVELS = {
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
#: options used to build a session (meaningless next to a ready ``session=``)
_SESSION_BUILDING = {
    "path",
    "model_bytes",
    "providers",
    "intra_op_num_threads",
    "inter_op_num_threads",
    "graph_optimization_level",
    "execution_mode",
    "session_config",
}


class OnnxConfig(BackendConfig):
    """Where the model comes from (``path``, ``model_bytes`` or a ready ``session``) and how it runs.

    ``label_output``/``proba_output`` name the outputs to read (default: the first, and the
    second when there is one; ``proba_output=None`` reads no probabilities).
    """

    path: str | Path | None = None
    model_bytes: bytes | None = None
    session: Any = None
    providers: list[str] | None = None
    intra_op_num_threads: int | None = None
    inter_op_num_threads: int | None = None
    graph_optimization_level: Literal["disabled", "basic", "extended", "all"] = "all"
    execution_mode: Literal["sequential", "parallel"] = "sequential"
    session_config: dict[str, Any] | None = None
    label_output: str | None = None
    proba_output: str | None = None
    classes: list[Any] | None = None


def _proba_array(value: Any) -> tuple[np.ndarray[Any, Any], list[Any] | None]:
    """Probabilities as an array; skl2onnx's ZipMap output (a list of dicts) is unzipped."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        classes = sorted(value[0])
        return np.array([[row[c] for c in classes] for row in value], dtype=np.float64), classes
    return np.asarray(value), None


def _runner(session: Any) -> Any:
    """``session.run``, minus the per-call Python checks whose outcome is fixed at load time.

    ``InferenceSession.run`` re-checks on every call that the feed names every input, that
    no feed is a foreign ``OrtValue`` and that WebGPU graph capture is off; sygnify builds
    its feeds from the input names resolved once, as NumPy arrays, so on CPU it calls the
    compiled session directly (about 2 µs less per single-record call). Other providers,
    which may need the wrapper's fallback logic, keep ``session.run``.
    """
    compiled = getattr(session, "_sess", None)
    if (
        compiled is None
        or not hasattr(compiled, "run")
        or session.get_providers() != ["CPUExecutionProvider"]
    ):
        return session.run
    capture = getattr(compiled, "is_webgpu_graph_capture_enabled", None)
    if capture is not None and capture():
        return session.run
    return compiled.run


class OnnxBackend(ModelBackend):
    """An ``onnxruntime.InferenceSession`` with input feeds and output names resolved once."""

    backend_name = "onnx"
    config_model = OnnxConfig

    def __init__(self, session: Any, *, model_name: str, config: OnnxConfig) -> None:
        inputs = session.get_inputs()
        self._per_feature = len(inputs) > 1
        if self._per_feature:
            names = [i.name for i in inputs]
            signature = signature_from(config, names)
        else:
            signature = signature_from(config)
        super().__init__(signature=signature, model_name=model_name)
        self.session = session
        self._inputs = [(i.name, _DTYPES.get(i.type, np.float32)) for i in inputs]
        self._input_name, self._dtype = self._inputs[0]
        outputs = [o.name for o in session.get_outputs()]
        self._label = config.label_output or outputs[0]
        given = "proba_output" in config.model_fields_set
        proba = config.proba_output if given else (outputs[1] if len(outputs) > 1 else None)
        self._outputs = [self._label] + ([proba] if proba else [])
        self._has_proba = proba is not None
        self._classes: list[Any] | None = config.classes
        self._width = inputs[0].shape[1] if not self._per_feature and len(inputs[0].shape) == 2 else None
        self._run = _runner(session)

    @classmethod
    def _build(cls, config: OnnxConfig, context: PluginContext) -> OnnxBackend:
        name = context.name
        ort: Any = importlib.import_module("onnxruntime")
        if config.session is not None:
            clashing = sorted(_SESSION_BUILDING & config.model_fields_set)
            if clashing:
                raise ConfigurationError(
                    f"onnx model {name!r}: session= is a ready InferenceSession, so {', '.join(clashing)} "
                    "would be ignored; set them on the session, or drop session=",
                    resource=name,
                )
            return cls(config.session, model_name=name, config=config)
        if (config.path is None) == (config.model_bytes is None):
            raise ConfigurationError(
                f"onnx model {name!r} needs exactly one of path=, model_bytes= or session=", resource=name
            )
        so = ort.SessionOptions()
        if config.intra_op_num_threads is not None:
            so.intra_op_num_threads = config.intra_op_num_threads
        if config.inter_op_num_threads is not None:
            so.inter_op_num_threads = config.inter_op_num_threads
        so.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, _OPT_LEVELS[config.graph_optimization_level]
        )
        so.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL
            if config.execution_mode == "parallel"
            else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        for key, value in (config.session_config or {}).items():
            so.add_session_config_entry(str(key), str(value))
        providers = config.providers or ["CPUExecutionProvider"]
        source: Any = config.model_bytes
        if source is None:
            path = Path(str(config.path))
            if not path.is_file():
                raise NotFoundError(f"ONNX model file {path} does not exist", resource=str(path))
            source = str(path)
        try:
            session = ort.InferenceSession(source, sess_options=so, providers=list(providers))
        except Exception as exc:
            raise ModelError(f"could not load ONNX model {name!r}: {exc}", resource=name) from exc
        return cls(session, model_name=name, config=config)

    def _feed(self, matrix: np.ndarray[Any, Any]) -> dict[str, Any]:
        if self._per_feature:
            return {n: matrix[:, i : i + 1].astype(t, copy=False) for i, (n, t) in enumerate(self._inputs)}
        return {self._input_name: matrix}

    def _check_width(self, width: int) -> None:
        if isinstance(self._width, int) and width != self._width:
            raise SchemaError(
                f"model {self.model_name!r} takes {self._width} features, got {width}",
                resource=self.model_name,
            )

    def _execute(self, feed: dict[str, Any]) -> list[Any]:
        try:
            result: list[Any] = self._run(self._outputs, feed, None)
            return result
        except Exception as exc:
            raise ModelError(
                f"model {self.model_name!r} (onnx) failed: {exc}", resource=self.model_name
            ) from exc

    def predict(self, features: pa.Table) -> BackendOutput:
        # one float matrix (a view for a tensor column); outputs are passed on in the model's
        # dtypes without copies: the answer table wraps these very buffers
        matrix = table_to_matrix(features, np.float32 if self._per_feature else self._dtype)
        self._check_width(matrix.shape[1])
        out = self._execute(self._feed(matrix))
        labels = np.asarray(out[0])
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if not self._has_proba:
            return BackendOutput(labels)
        proba, classes = _proba_array(out[1])
        return BackendOutput(labels, proba, self._classes or classes)

    def predict_row(self, values: list[Any]) -> tuple[Any, np.ndarray[Any, Any] | None]:
        # the single-record fast path: no Arrow, one small array, output names resolved once
        if self._per_feature:
            feed: dict[str, Any] = {n: np.array([[v]], dtype=t) for (n, t), v in zip(self._inputs, values)}
        else:
            if self._width is not None and len(values) != self._width:
                self._check_width(len(values))
            feed = {self._input_name: np.array([values], dtype=self._dtype)}
        out = self._execute(feed)
        label = out[0][0]
        if not self._has_proba:
            return (label[0] if getattr(label, "shape", ()) == (1,) else label), None
        proba = out[1]
        if isinstance(proba, list):
            return label, _proba_array(proba)[0][0]
        return label, proba[0]

    def metadata(self) -> dict[str, Any]:
        return {
            "backend": "onnx",
            "inputs": [{"name": i.name, "type": i.type, "shape": i.shape} for i in self.session.get_inputs()],
            "outputs": [
                {"name": o.name, "type": o.type, "shape": o.shape} for o in self.session.get_outputs()
            ],
            "providers": self.session.get_providers(),
        }
