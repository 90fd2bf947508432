"""PyTorch models: TorchScript files, state dicts with a module factory, or modules in memory.

Runs on CPU, or CUDA when ``device="cuda"`` (``"auto"`` picks CUDA when present). State
dicts load with ``weights_only=True``; whole pickled modules need ``trusted=True``.

    >>> import torch, pyarrow as pa
    >>> module = torch.nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = module.weight.fill_(1.0); _ = module.bias.fill_(0.0)
    >>> backend = TorchBackend.from_options({"module": module, "features": ["a", "b"]}, name="lin",
    ...                                     context=BackendContext())
    >>> backend.predict(pa.table({"a": [1.0], "b": [2.0]})).predictions.tolist()
    [3.0]
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sygnify.errors import ConfigurationError, ModelError, NotFoundError
from sygnify.ml.backends.base import (
    COMMON_OPTIONS,
    BackendContext,
    BackendOutput,
    ModelBackend,
    reject_unknown,
    signature_from,
)
from sygnify.ml.signature import Signature, table_to_matrix

__all__ = ["TorchBackend"]

_OPTIONS = COMMON_OPTIONS | {"module", "path", "module_factory", "device", "task", "classes", "trusted"}


def _pick_device(torch: Any, device: str) -> Any:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError(f"device {device!r} asked for, but CUDA is not available", resource=device)
    return torch.device(device)


class TorchBackend(ModelBackend):
    """A ``torch.nn.Module`` run under ``inference_mode``.

    ``task="regression"`` (default) returns the output squeezed to one value per row;
    ``task="classification"`` treats outputs as logits: softmax probabilities and argmax
    labels (mapped through ``classes`` when given).
    """

    backend_name = "torch"

    def __init__(
        self,
        module: Any,
        *,
        signature: Signature | None,
        model_name: str,
        device: Any,
        task: str = "regression",
        classes: list[Any] | None = None,
    ) -> None:
        super().__init__(signature=signature, model_name=model_name)
        self._torch: Any = importlib.import_module("torch")
        self.module = module.to(device).eval()
        self.device = device
        self._task = task
        self._classes = classes

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, name: str, context: BackendContext) -> TorchBackend:
        reject_unknown(options, _OPTIONS, backend="torch")
        torch: Any = importlib.import_module("torch")
        device = _pick_device(torch, str(options.get("device", "auto")))
        task = options.get("task", "regression")
        if task not in ("regression", "classification"):
            raise ConfigurationError(
                f"task must be regression or classification, got {task!r}", resource=name
            )
        module = options.get("module")
        if module is None:
            if "path" not in options:
                raise ConfigurationError(f"torch model {name!r} needs module= or path=", resource=name)
            module = cls._load(torch, Path(options["path"]), options, device, name)
        return cls(
            module,
            signature=signature_from(options),
            model_name=name,
            device=device,
            task=task,
            classes=options.get("classes"),
        )

    @staticmethod
    def _load(torch: Any, path: Path, options: Mapping[str, Any], device: Any, name: str) -> Any:
        if not path.is_file():
            raise NotFoundError(f"model file {path} does not exist", resource=str(path))
        factory: Callable[[], Any] | None = options.get("module_factory")
        try:
            if factory is not None:
                module = factory()
                module.load_state_dict(torch.load(path, map_location=device, weights_only=True))
                return module
            try:
                return torch.jit.load(str(path), map_location=device)
            except RuntimeError:
                if not options.get("trusted", False):
                    raise ConfigurationError(
                        f"{path} is not TorchScript; loading a pickled module can run arbitrary code, so "
                        "pass module_factory= with a state dict, or trusted=True for a file you produced",
                        resource=str(path),
                    ) from None
                return torch.load(path, map_location=device, weights_only=False)
        except ConfigurationError:
            raise
        except Exception as exc:
            raise ModelError(
                f"could not load torch model {name!r} from {path}: {exc}", resource=name
            ) from exc

    def _forward(self, matrix: np.ndarray[Any, Any]) -> BackendOutput:
        torch = self._torch
        try:
            with torch.inference_mode():
                out = self.module(torch.from_numpy(matrix).to(self.device))
            result = out.detach().float().cpu().numpy()
        except Exception as exc:
            raise ModelError(
                f"model {self.model_name!r} (torch) failed: {exc}", resource=self.model_name
            ) from exc
        if self._task == "regression":
            return BackendOutput(result.reshape(len(matrix), -1)[:, 0] if result.ndim > 1 else result)
        exp = np.exp(result - result.max(axis=1, keepdims=True))
        proba = exp / exp.sum(axis=1, keepdims=True)
        labels = proba.argmax(axis=1)
        if self._classes is not None:
            labels = np.asarray(self._classes)[labels]
        return BackendOutput(labels, proba, self._classes)

    def predict(self, features: pa.Table) -> BackendOutput:
        return self._forward(table_to_matrix(features, np.float32))

    def predict_row(self, values: list[Any]) -> tuple[Any, np.ndarray[Any, Any] | None]:
        out = self._forward(np.array([values], dtype=np.float32))
        return out.predictions[0], (out.probabilities[0] if out.probabilities is not None else None)

    def metadata(self) -> dict[str, Any]:
        return {"backend": "torch", "device": str(self.device), "task": self._task}
