"""Azure Machine Learning managed online endpoints.

``POST`` to the endpoint's scoring URI with a key (``api_key=``) or a Microsoft Entra
(AAD) token from azure-identity (``credential=``, default ``DefaultAzureCredential``);
``deployment=`` pins a deployment via the ``azureml-model-deployment`` header. Payload is
the MLflow ``input_data`` split format or ``{"data": rows}``. Example (needs Azure)::

    ml.register("churn", backend="azureml", scoring_uri="https://churn.westeurope.inference.ml.azure.com/score",
                api_key=os.environ["AML_KEY"], features=["age", "spend"])
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, SecretStr

from sygnify.errors import AuthenticationError, ModelError
from sygnify.ml.backends._remote import RemoteBackend, RemoteConfig, decode_predictions, table_rows
from sygnify.ml.backends.base import BackendOutput

__all__ = ["AzureMLBackend", "AzureMLConfig"]

_SCOPE = "https://ml.azure.com/.default"


class AzureMLConfig(RemoteConfig):
    scoring_uri: str = Field(repr=False)  # may carry a signature in its query string
    auth: Literal["key", "aad"] = "key"
    api_key: SecretStr | None = None
    credential: Any = None
    deployment: str | None = None
    payload: Literal["input_data", "data"] = "input_data"
    output_key: str | None = None


class AzureMLBackend(RemoteBackend):
    """A model behind an Azure ML online endpoint."""

    backend_name = "azureml"
    config_model = AzureMLConfig
    config: AzureMLConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._credential: Any = self.config.credential
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()
        if self.config.auth == "key" and self.config.api_key is None:
            raise AuthenticationError(
                f"Azure ML model {self.model_name!r} uses key auth but no api_key was given "
                "(pass api_key=, or auth='aad' with a credential)",
                resource=self.model_name,
            )

    def auth_headers(self) -> dict[str, str]:
        headers = {}
        if self.config.deployment:
            headers["azureml-model-deployment"] = self.config.deployment
        if self.config.auth == "key":
            assert self.config.api_key is not None
            headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        else:
            headers["Authorization"] = f"Bearer {self._aad_token()}"
        return headers

    def _aad_token(self) -> str:
        with self._lock:
            if self._token is not None and self._token[1] - 60 > time.time():
                return self._token[0]
            try:
                if self._credential is None:
                    identity: Any = importlib.import_module("azure.identity")
                    self._credential = identity.DefaultAzureCredential()
                token = self._credential.get_token(_SCOPE)
            except Exception as exc:
                raise AuthenticationError(
                    f"could not get a Microsoft Entra token for Azure ML model {self.model_name!r}: "
                    f"{type(exc).__name__}",
                    resource=self.model_name,
                ) from None
            self._token = (token.token, float(token.expires_on))
            return self._token[0]

    def predict(self, features: pa.Table) -> BackendOutput:
        cfg = self.config
        if cfg.payload == "input_data":
            payload: dict[str, Any] = {
                "input_data": {
                    "columns": features.column_names,
                    "index": list(range(features.num_rows)),
                    "data": table_rows(features),
                }
            }
        else:
            payload = {"data": table_rows(features)}
        body = self.request_json("POST", cfg.scoring_uri, payload)
        if isinstance(body, str):  # some scoring scripts return JSON encoded twice
            import json

            try:
                body = json.loads(body)
            except ValueError as exc:
                raise ModelError(
                    f"Azure ML answered a non-JSON string for model {self.model_name!r}",
                    resource=self.model_name,
                ) from exc
        if isinstance(body, dict):
            body = body.get("predictions", body.get("result", body))
        return decode_predictions(body, features.num_rows, model=self.model_name, output_key=cfg.output_key)
