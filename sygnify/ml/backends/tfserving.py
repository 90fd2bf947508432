"""TensorFlow Serving over its REST API.

``POST /v1/models/NAME[/versions/V]:predict`` with the row format (``{"instances": ...}``)
or the columnar format (``{"inputs": ...}``); model status and metadata from
``GET /v1/models/NAME[/versions/V][/metadata]``. Example (needs a server, so not run)::

    ml.register("churn", backend="tfserving", url="http://tfs:8501", features=["age", "spend"],
                model_version=3, format="row")
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa

from sygnify.errors import ModelError
from sygnify.ml.backends._remote import RemoteBackend, RemoteConfig, decode_predictions, table_rows
from sygnify.ml.backends.base import BackendOutput

__all__ = ["TFServingBackend", "TFServingConfig"]


class TFServingConfig(RemoteConfig):
    url: str
    model: str | None = None
    model_version: int | str | None = None
    version_label: str | None = None
    format: Literal["row", "columnar"] = "row"
    instance: Literal["list", "dict"] = "list"
    signature_name: str | None = None
    output_key: str | None = None


class TFServingBackend(RemoteBackend):
    """A model served by TensorFlow Serving (REST port, usually 8501)."""

    backend_name = "tfserving"
    config_model = TFServingConfig
    config: TFServingConfig

    def _base(self) -> str:
        cfg = self.config
        url = f"{cfg.url.rstrip('/')}/v1/models/{cfg.model or self.model_name}"
        if cfg.model_version is not None:
            url += f"/versions/{cfg.model_version}"
        elif cfg.version_label is not None:
            url += f"/labels/{cfg.version_label}"
        return url

    def _payload(self, features: pa.Table) -> dict[str, Any]:
        cfg = self.config
        payload: dict[str, Any] = {}
        if cfg.signature_name:
            payload["signature_name"] = cfg.signature_name
        if cfg.format == "row":
            payload["instances"] = features.to_pylist() if cfg.instance == "dict" else table_rows(features)
        else:
            payload["inputs"] = features.to_pydict() if cfg.instance == "dict" else table_rows(features)
        return payload

    def predict(self, features: pa.Table) -> BackendOutput:
        body = self.request_json("POST", self._base() + ":predict", self._payload(features))
        key = "predictions" if self.config.format == "row" else "outputs"
        if not isinstance(body, dict) or key not in body:
            raise ModelError(
                f"TensorFlow Serving answered without {key!r} for model {self.model_name!r}",
                resource=self.model_name,
            )
        outputs = body[key]
        if isinstance(outputs, dict):  # columnar, several named outputs
            name = self.config.output_key or next(iter(outputs))
            outputs = outputs.get(name)
        return decode_predictions(
            outputs, features.num_rows, model=self.model_name, output_key=self.config.output_key
        )

    def ready(self) -> bool:
        body = self.request_json("GET", self._base(), what="status")
        states = (
            [s.get("state") for s in body.get("model_version_status", [])] if isinstance(body, dict) else []
        )
        return "AVAILABLE" in states

    def metadata(self) -> dict[str, Any]:
        body = self.request_json("GET", self._base() + "/metadata", what="metadata")
        return {"backend": "tfserving", **(body if isinstance(body, dict) else {"metadata": body})}
