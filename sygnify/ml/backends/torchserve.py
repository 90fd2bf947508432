"""TorchServe's inference API: ``POST /predictions/NAME[/VERSION]``, health at ``GET /ping``.

The request body is a JSON list of rows (or ``{"instances": [...]}`` / a list of objects,
by ``payload=``); the handler must answer one output per row. Example (needs a server)::

    ml.register("fraud", backend="torchserve", url="http://ts:8080", features=["amount", "age"])
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa

from sygnify.ml.backends._remote import (
    RemoteBackend,
    RemoteConfig,
    decode_predictions,
    table_rows,
    unwrap_answer,
)
from sygnify.ml.backends.base import BackendOutput

__all__ = ["TorchServeBackend", "TorchServeConfig"]


class TorchServeConfig(RemoteConfig):
    url: str
    management_url: str | None = None
    model: str | None = None
    model_version: str | None = None
    payload: Literal["rows", "instances", "records"] = "rows"
    output_key: str | None = None


class TorchServeBackend(RemoteBackend):
    """A model served by TorchServe (inference port, usually 8080)."""

    backend_name = "torchserve"
    config_model = TorchServeConfig
    config: TorchServeConfig

    def _url(self) -> str:
        cfg = self.config
        url = f"{cfg.url.rstrip('/')}/predictions/{cfg.model or self.model_name}"
        return url + (f"/{cfg.model_version}" if cfg.model_version else "")

    def predict(self, features: pa.Table) -> BackendOutput:
        cfg = self.config
        payload: Any
        if cfg.payload == "records":
            payload = features.to_pylist()
        elif cfg.payload == "instances":
            payload = {"instances": table_rows(features)}
        else:
            payload = table_rows(features)
        body = self.request_json("POST", self._url(), payload)
        return decode_predictions(
            unwrap_answer(body, "predictions"),
            features.num_rows,
            model=self.model_name,
            output_key=cfg.output_key,
        )

    def ready(self) -> bool:
        body = self.request_json("GET", f"{self.config.url.rstrip('/')}/ping", what="health check")
        return isinstance(body, dict) and body.get("status") == "Healthy"

    def metadata(self) -> dict[str, Any]:
        if not self.config.management_url:
            return {"backend": "torchserve"}
        url = f"{self.config.management_url.rstrip('/')}/models/{self.config.model or self.model_name}"
        body = self.request_json("GET", url, what="metadata")
        return {"backend": "torchserve", "models": body}
