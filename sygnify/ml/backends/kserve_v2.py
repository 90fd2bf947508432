"""The KServe v2 / Open Inference Protocol (Triton, MLServer, KServe) over REST.

``POST /v2/models/NAME[/versions/V]/infer`` with one tensor holding the feature matrix;
``GET .../ready`` and ``GET /v2/models/NAME[/versions/V]`` for readiness and metadata.
Example (needs a server, so not run)::

    ml.register("iris", backend="kserve_v2", url="http://mlserver:8080", features=[...],
                outputs=["predict", "predict_proba"])
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pyarrow as pa

from sygnify.errors import ModelError, NotFoundError
from sygnify.ml.backends._remote import RemoteBackend, RemoteConfig, flat_to_rows
from sygnify.ml.backends.base import BackendOutput
from sygnify.ml.signature import table_to_matrix

__all__ = ["KServeV2Backend", "KServeV2Config"]

_NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}


class KServeV2Config(RemoteConfig):
    url: str
    model: str | None = None
    model_version: str | None = None
    input_name: str = "input-0"
    datatype: Literal["FP32", "FP64", "INT64", "INT32"] = "FP64"
    #: outputs to ask for; the first is the prediction, ``proba_output`` the probabilities
    outputs: list[str] | None = None
    proba_output: str | None = None


class KServeV2Backend(RemoteBackend):
    """A model served over the Open Inference Protocol (REST)."""

    backend_name = "kserve_v2"
    config_model = KServeV2Config
    config: KServeV2Config

    def _base(self) -> str:
        cfg = self.config
        url = f"{cfg.url.rstrip('/')}/v2/models/{cfg.model or self.model_name}"
        return url + (f"/versions/{cfg.model_version}" if cfg.model_version else "")

    def _payload(self, features: pa.Table) -> dict[str, Any]:
        cfg = self.config
        matrix = table_to_matrix(features, _NUMPY[cfg.datatype])
        payload: dict[str, Any] = {
            "inputs": [
                {
                    "name": cfg.input_name,
                    "shape": list(matrix.shape),
                    "datatype": cfg.datatype,
                    "data": matrix.ravel().tolist(),
                }
            ]
        }
        if cfg.outputs:
            payload["outputs"] = [{"name": name} for name in cfg.outputs]
        return payload

    def predict(self, features: pa.Table) -> BackendOutput:
        body = self.request_json("POST", self._base() + "/infer", self._payload(features))
        outputs = body.get("outputs") if isinstance(body, dict) else None
        if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
            raise ModelError(
                f"v2 server answered without outputs for model {self.model_name!r}", resource=self.model_name
            )
        by_name = {o.get("name"): o for o in outputs}
        label_name = self.config.outputs[0] if self.config.outputs else outputs[0].get("name")
        proba_name = self.config.proba_output
        rows = features.num_rows
        labels = np.asarray(self._tensor(by_name, label_name))
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if len(labels) != rows:
            raise ModelError(
                f"v2 server answered {len(labels)} predictions for {rows} rows (model {self.model_name!r})",
                resource=self.model_name,
            )
        proba = np.asarray(self._tensor(by_name, proba_name), dtype=np.float64) if proba_name else None
        return BackendOutput(labels, proba)

    def _tensor(self, by_name: dict[Any, dict[str, Any]], name: Any) -> Any:
        tensor = by_name.get(name)
        if tensor is None or "data" not in tensor or "shape" not in tensor:
            raise ModelError(
                f"v2 server answered no usable output {name!r} for model {self.model_name!r} "
                f"(outputs: {', '.join(str(n) for n in by_name)})",
                resource=self.model_name,
            )
        return flat_to_rows(tensor["data"], tensor["shape"], model=self.model_name)

    def ready(self) -> bool:
        try:
            self.request_json("GET", self._base() + "/ready", what="readiness")
        except (NotFoundError, ModelError):
            return False
        return True

    def metadata(self) -> dict[str, Any]:
        body = self.request_json("GET", self._base(), what="metadata")
        return {"backend": "kserve_v2", **(body if isinstance(body, dict) else {"metadata": body})}
