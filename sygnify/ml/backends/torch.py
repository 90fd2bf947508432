"""PyTorch models: TorchScript files, state dicts with a module factory, or modules in memory.

Runs on CPU, or CUDA when ``device="cuda"`` (``"auto"`` picks CUDA when present). State
dicts load with ``weights_only=True``, and only with torch 2.6 or later (earlier releases can run
code from such a file, CVE-2025-32434); whole pickled modules need ``trusted=True``, a real bool.

    >>> import torch, pyarrow as pa
    >>> module = torch.nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = module.weight.fill_(1.0); _ = module.bias.fill_(0.0)
    >>> from sygnify.plugins import PluginContext
    >>> backend = TorchBackend.from_config(
    ...     {"module": module, "features": ["a", "b"]}, context=PluginContext("lin")
    ... )
    >>> backend.predict(pa.table({"a": [1.0], "b": [2.0]})).predictions.tolist()
    [3.0]
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from sygnify.errors import ConfigurationError, ModelError, NotFoundError
from sygnify.ml.backends.base import BackendConfig, BackendOutput, ModelBackend, TrustFlag, signature_from
from sygnify.ml.signature import Signature, table_to_matrix
from sygnify.plugins import PluginContext

__all__ = ["TorchBackend", "TorchConfig"]


class TorchConfig(BackendConfig):
    """A module in memory (``module``) or a file (``path``: TorchScript, or a state dict for
    ``module_factory()``; a whole pickled module only if ``trusted``)."""

    module: Any = None
    path: str | Path | None = None
    module_factory: Callable[[], Any] | None = None
    device: str = "auto"
    task: Literal["regression", "classification"] = "regression"
    classes: list[Any] | None = None
    trusted: TrustFlag = False


#: The first torch release whose ``torch.load(weights_only=True)`` runs no code (CVE-2025-32434).
SAFE_TORCH = (2, 6)


def _release(version: str) -> tuple[int, ...]:
    """``"2.5.1+cpu"`` as ``(2, 5)``: the release a torch version string names."""
    numbers = re.findall(r"\d+", str(version).split("+", 1)[0])[:2]
    return tuple(int(n) for n in numbers)


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
    config_model = TorchConfig

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
    def _build(cls, config: TorchConfig, context: PluginContext) -> TorchBackend:
        name = context.name
        torch: Any = importlib.import_module("torch")
        device = _pick_device(torch, config.device)
        module = config.module
        if module is None:
            if config.path is None:
                raise ConfigurationError(f"torch model {name!r} needs module= or path=", resource=name)
            module = cls._load(torch, Path(config.path), config, device, name)
        return cls(
            module,
            signature=signature_from(config),
            model_name=name,
            device=device,
            task=config.task,
            classes=config.classes,
        )

    @staticmethod
    def _load(torch: Any, path: Path, config: TorchConfig, device: Any, name: str) -> Any:
        if not path.is_file():
            raise NotFoundError(f"model file {path} does not exist", resource=str(path))
        factory = config.module_factory
        if factory is not None and not config.trusted and _release(torch.__version__) < SAFE_TORCH:
            raise ConfigurationError(
                f"torch {torch.__version__} can run code from a model file even with weights_only=True "
                f"(CVE-2025-32434), so {path} is not loaded: upgrade to torch>=2.6 "
                "(pip install 'sygnify[torch]'), or pass trusted=True for a file you produced",
                resource=str(path),
            )
        try:
            if factory is not None:
                module = factory()
                module.load_state_dict(torch.load(path, map_location=device, weights_only=True))
                return module
            try:
                return torch.jit.load(str(path), map_location=device)
            except RuntimeError:
                if not config.trusted:
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
            if result.ndim > 1:  # an explicit width: reshape(0, -1) is ambiguous for zero rows
                result = result.reshape(len(matrix), int(np.prod(result.shape[1:])))[:, 0]
            return BackendOutput(result)
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
