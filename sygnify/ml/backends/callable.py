"""Plain Python callables as models (rules, heuristics, anything with a ``fn(X)``).

>>> import pyarrow as pa
>>> from sygnify.plugins import PluginContext
>>> backend = CallableBackend.from_config(
...     {"fn": lambda X: X.sum(axis=1), "features": ["a", "b"]}, context=PluginContext("sum")
... )
>>> backend.predict(pa.table({"a": [1.0, 2.0], "b": [3.0, 4.0]})).predictions.tolist()
[4.0, 6.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa

from sygnify.errors import ModelError, SygnifyError
from sygnify.ml.backends.base import BackendConfig, BackendOutput, ModelBackend, signature_from
from sygnify.ml.signature import Signature, table_to_matrix
from sygnify.plugins import PluginContext

__all__ = ["CallableBackend", "CallableConfig"]

InputKind = Literal["numpy", "arrow", "polars"]


class CallableConfig(BackendConfig):
    """``fn(X)`` → predictions; ``proba_fn(X)`` → class probabilities; ``input``: what ``X`` is."""

    fn: Callable[[Any], Any]
    input: InputKind = "numpy"
    proba_fn: Callable[[Any], Any] | None = None
    classes: list[Any] | None = None


class CallableBackend(ModelBackend):
    """``fn`` called on the features as a float ``numpy`` matrix (or Arrow/Polars with ``input=``).

    ``fn`` returns one prediction per row; ``proba_fn``, if given, a ``(rows, classes)`` array.
    """

    backend_name = "callable"
    config_model = CallableConfig

    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        signature: Signature | None,
        model_name: str,
        input: InputKind = "numpy",
        proba_fn: Callable[[Any], Any] | None = None,
        classes: list[Any] | None = None,
    ) -> None:
        super().__init__(signature=signature, model_name=model_name)
        self._fn = fn
        self._input = input
        self._proba_fn = proba_fn
        self._classes = classes

    @classmethod
    def _build(cls, config: CallableConfig, context: PluginContext) -> CallableBackend:
        return cls(
            config.fn,
            signature=signature_from(config),
            model_name=context.name,
            input=config.input,
            proba_fn=config.proba_fn,
            classes=config.classes,
        )

    def _convert(self, features: pa.Table) -> Any:
        if self._input == "arrow":
            return features
        if self._input == "polars":
            return pl.from_arrow(features)
        return table_to_matrix(features, np.float64)

    def _call(self, fn: Callable[[Any], Any], data: Any) -> Any:
        try:
            return fn(data)
        except SygnifyError:  # already typed (e.g. a callable wrapping a remote client)
            raise
        except Exception as exc:
            raise ModelError(
                f"model {self.model_name!r} (callable) failed: {exc}", resource=self.model_name
            ) from exc

    def predict(self, features: pa.Table) -> BackendOutput:
        data = self._convert(features)
        predictions = np.asarray(self._call(self._fn, data))
        proba = np.asarray(self._call(self._proba_fn, data)) if self._proba_fn is not None else None
        return BackendOutput(
            predictions.reshape(-1) if predictions.ndim > 1 else predictions, proba, self._classes
        )

    def predict_row(self, values: list[Any]) -> tuple[Any, np.ndarray[Any, Any] | None]:
        if self._input != "numpy":
            return super().predict_row(values)
        data = np.array([values], dtype=np.float64)
        prediction = np.asarray(self._call(self._fn, data)).reshape(-1)[0]
        proba = np.asarray(self._call(self._proba_fn, data))[0] if self._proba_fn is not None else None
        return prediction, proba
