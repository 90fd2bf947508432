"""Vertex AI online prediction endpoints.

``POST {base}/v1/projects/P/locations/L/endpoints/E:predict`` with ``{"instances": [...]}``,
authenticated with a bearer token from google-auth. The credentials come from
``credentials=`` (a google-auth credentials object) or from Google Cloud's shared options
(:class:`sygnify.clouds.gcp.GcpCredentials`, the same names as the ``bigquery``
connector's: ``credentials_file``, ``credentials_json``, ``access_token``,
``impersonate_service_account``...), else application default credentials. Example (needs
Google Cloud, so not run)::

    ml.register("ltv", backend="vertex", project="my-proj", location="europe-west4",
                endpoint_id="1234567890", features=["age", "spend"],
                impersonate_service_account="scorer@my-proj.iam.gserviceaccount.com")
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from sygnify.clouds.gcp import (
    GcpCredentials,
    bearer_token,
    describe_gcp_error,
    gcp_credentials,
    translate_gcp_error,
)
from sygnify.errors import AuthenticationError, ModelError, SygnifyError
from sygnify.ml.backends._remote import RemoteBackend, RemoteConfig, decode_predictions, table_rows
from sygnify.ml.backends.base import BackendOutput

__all__ = ["VertexBackend", "VertexConfig"]


class VertexConfig(RemoteConfig, GcpCredentials):
    """Options of the ``vertex`` backend: the endpoint, its payload, and Google Cloud credentials."""

    project: str
    location: str
    endpoint_id: str
    base_url: str | None = None
    credentials: Any = Field(None, description="google-auth credentials to use instead of the options.")
    parameters: dict[str, Any] | None = None
    instance: Literal["list", "dict"] = "list"
    output_key: str | None = None


class VertexBackend(RemoteBackend):
    """A model deployed to a Vertex AI endpoint."""

    backend_name = "vertex"
    config_model = VertexConfig
    config: VertexConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._credentials: Any = self.config.credentials
        self._lock = threading.Lock()

    def _endpoint(self) -> str:
        cfg = self.config
        base = cfg.base_url or f"https://{cfg.location}-aiplatform.googleapis.com"
        path = f"/v1/projects/{cfg.project}/locations/{cfg.location}/endpoints/{cfg.endpoint_id}"
        return base.rstrip("/") + path

    def auth_headers(self) -> dict[str, str]:
        if self.config.anonymous and self._credentials is None:
            return {}
        with self._lock:
            try:
                if self._credentials is None:
                    self._credentials, _ = gcp_credentials(self.config)
                token = bearer_token(self._credentials)
            except SygnifyError:
                raise
            except Exception as exc:
                message = (
                    f"no usable Google credentials for Vertex model {self.model_name!r}: "
                    f"{describe_gcp_error(exc)}; "
                    "set up application default credentials or pass credentials=/access_token="
                )
                raise translate_gcp_error(exc, message, self.model_name) or AuthenticationError(
                    message, resource=self.model_name
                ) from None
            return {"Authorization": f"Bearer {token}"}

    def predict(self, features: pa.Table) -> BackendOutput:
        cfg = self.config
        instances = features.to_pylist() if cfg.instance == "dict" else table_rows(features)
        payload: dict[str, Any] = {"instances": instances}
        if cfg.parameters:
            payload["parameters"] = cfg.parameters
        body = self.request_json("POST", self._endpoint() + ":predict", payload)
        if not isinstance(body, dict) or "predictions" not in body:
            raise ModelError(
                f"Vertex AI answered without 'predictions' for model {self.model_name!r}",
                resource=self.model_name,
            )
        return decode_predictions(
            body["predictions"], features.num_rows, model=self.model_name, output_key=cfg.output_key
        )

    def metadata(self) -> dict[str, Any]:
        body = self.request_json("GET", self._endpoint(), what="metadata")
        return {"backend": "vertex", **(body if isinstance(body, dict) else {})}

    def ready(self) -> bool:
        deployed = self.metadata().get("deployedModels")
        return bool(deployed)
