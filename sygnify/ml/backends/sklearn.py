"""scikit-learn models: in memory, from skops files, or from joblib/pickle when trusted.

Pickle and joblib files run arbitrary code when loaded, so they are refused unless the
caller says ``trusted=True``; ``.skops`` files load through :mod:`skops.io` (when installed)
with an explicit list of trusted types. ONNX (``backend="onnx"``) is the preferred format.

    >>> from sklearn.linear_model import LinearRegression
    >>> import numpy as np, pyarrow as pa
    >>> model = LinearRegression().fit(np.array([[0.0], [1.0], [2.0]]), np.array([1.0, 3.0, 5.0]))
    >>> from sygnify.plugins import PluginContext
    >>> backend = SklearnBackend.from_config(
    ...     {"model": model, "features": ["x"]}, context=PluginContext("lin")
    ... )
    >>> backend.predict(pa.table({"x": [3.0]})).predictions.round(3).tolist()
    [7.0]
"""

from __future__ import annotations

import importlib
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sygnify.errors import ConfigurationError, ModelError, NotFoundError, SchemaError
from sygnify.ml.backends.base import (
    BackendConfig,
    BackendOutput,
    ModelBackend,
    TrustFlag,
    require_bool,
    signature_from,
)
from sygnify.ml.signature import Signature, table_to_matrix
from sygnify.plugins import PluginContext

__all__ = ["SklearnBackend", "SklearnConfig", "load_sklearn_model"]


class SklearnConfig(BackendConfig):
    """An estimator in memory (``model``) or in a file (``path``; pickle/joblib only if ``trusted``).

    ``trusted`` takes only ``True`` or ``False`` (``"false"`` is refused, not read as true).
    """

    model: Any = None
    path: str | Path | None = None
    trusted: TrustFlag = False
    skops_trusted: list[str] | None = None
    #: use ``predict_proba`` when the estimator has it
    proba: bool = True


def load_sklearn_model(
    path: str | Path, *, trusted: bool = False, skops_trusted: list[str] | None = None
) -> Any:
    """Load a model file; pickle/joblib only with ``trusted=True`` (a real bool).

    >>> load_sklearn_model("model.pkl", trusted="false")
    Traceback (most recent call last):
        ...
    sygnify.errors.ConfigurationError: trusted must be True or False, got str; ...
    """
    trusted = require_bool(trusted, name="trusted")
    file = Path(path)
    if not file.is_file():
        raise NotFoundError(f"model file {file} does not exist", resource=str(file))
    if file.suffix == ".skops":
        try:
            sio: Any = importlib.import_module("skops.io")
        except ImportError as exc:
            raise ConfigurationError(
                f"{file} is a skops file, but skops is not installed (pip install skops)", resource=str(file)
            ) from exc
        trusted_types = skops_trusted if skops_trusted is not None else sio.get_untrusted_types(file=file)
        if skops_trusted is None and trusted_types and not trusted:
            raise ConfigurationError(
                f"{file} contains types skops does not trust by default ({', '.join(trusted_types)}); "
                "review them and pass skops_trusted=[...] (or trusted=True)",
                resource=str(file),
            )
        return sio.load(file, trusted=trusted_types)
    if not trusted:
        raise ConfigurationError(
            f"refusing to load {file}: pickle/joblib files can run arbitrary code when loaded; "
            "pass trusted=True only for files you produced, or export the model to ONNX/skops",
            resource=str(file),
        )
    try:
        if file.suffix != ".pkl" and file.suffix != ".pickle":
            joblib: Any = importlib.import_module("joblib")
            return joblib.load(file)
        with file.open("rb") as handle:
            return pickle.load(handle)
    except ImportError as exc:  # scikit-learn, joblib or what the file's classes need
        raise SklearnBackend.missing_runtime(exc, str(file)) from exc
    except Exception as exc:
        raise ModelError(f"could not load model {file}: {exc}", resource=str(file)) from exc


class SklearnBackend(ModelBackend):
    """Any estimator with ``predict`` (and ``predict_proba``, used when present)."""

    backend_name = "sklearn"
    config_model = SklearnConfig

    def __init__(
        self, model: Any, *, signature: Signature | None, model_name: str, proba: bool = True
    ) -> None:
        super().__init__(signature=signature, model_name=model_name)
        if not callable(getattr(model, "predict", None)):
            raise ConfigurationError(f"model {model_name!r} has no predict() method", resource=model_name)
        self.model = model
        self._proba = proba and callable(getattr(model, "predict_proba", None))
        self._classes = list(getattr(model, "classes_", [])) or None
        # fitted on a DataFrame: numpy input would warn on every call
        self._quiet = hasattr(model, "feature_names_in_")
        self._n_features = getattr(model, "n_features_in_", None)

    @classmethod
    def _build(cls, config: SklearnConfig, context: PluginContext) -> SklearnBackend:
        name = context.name
        if (config.model is None) == (config.path is None):
            raise ConfigurationError(
                f"sklearn model {name!r} needs exactly one of model= or path=", resource=name
            )
        model = config.model
        if model is None:
            assert config.path is not None
            model = load_sklearn_model(
                config.path, trusted=config.trusted, skops_trusted=config.skops_trusted
            )
        names = getattr(model, "feature_names_in_", None)
        signature = signature_from(config, [str(n) for n in names] if names is not None else None)
        return cls(model, signature=signature, model_name=name, proba=config.proba)

    def _run(self, X: np.ndarray[Any, Any]) -> tuple[Any, Any]:
        if self._n_features is not None and X.shape[1] != self._n_features:
            raise SchemaError(
                f"model {self.model_name!r} takes {self._n_features} features, got {X.shape[1]}",
                resource=self.model_name,
            )
        try:
            if self._quiet:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    return self._call(X)
            return self._call(X)
        except SchemaError:
            raise
        except Exception as exc:
            raise ModelError(
                f"model {self.model_name!r} (sklearn) failed: {exc}", resource=self.model_name
            ) from exc

    def _call(self, X: np.ndarray[Any, Any]) -> tuple[Any, Any]:
        if self._proba:
            proba = self.model.predict_proba(X)
            classes = self.model.classes_
            return classes[np.argmax(proba, axis=1)], proba
        return self.model.predict(X), None

    def predict(self, features: pa.Table) -> BackendOutput:
        predictions, proba = self._run(table_to_matrix(features, np.float64))
        return BackendOutput(np.asarray(predictions), proba, self._classes)

    def predict_row(self, values: list[Any]) -> tuple[Any, np.ndarray[Any, Any] | None]:
        predictions, proba = self._run(np.array([values], dtype=np.float64))
        return predictions[0], (proba[0] if proba is not None else None)

    def metadata(self) -> dict[str, Any]:
        return {"backend": "sklearn", "estimator": type(self.model).__name__, "classes": self._classes}
