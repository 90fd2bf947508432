"""Azure Machine Learning managed online endpoints.

``POST`` to the endpoint's scoring URI with a key (``api_key=``) or a Microsoft Entra token.
The token comes from ``credential=`` (any azure-core ``TokenCredential``) or from Azure's
shared credential options (:class:`sygnify.clouds.azure.AzureCredentials`: ``auth``,
``tenant_id``, ``client_id``, ``client_secret``, ``certificate_path``, managed or workload
identity; default ``DefaultAzureCredential``), the same names as every other Azure plugin's.
An ``api_key`` wins when both are given. ``deployment=`` pins a deployment via the
``azureml-model-deployment`` header. Payload is the MLflow ``input_data`` split format or
``{"data": rows}``. Example (needs Azure)::

    ml.register("churn", backend="azureml", scoring_uri="https://churn.westeurope.inference.ml.azure.com/score",
                api_key=os.environ["AML_KEY"], features=["age", "spend"])
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, SecretStr, model_validator

from sygnify.clouds.azure import (
    AzureCredentials,
    azure_token_credential,
    infer_azure_auth,
    translate_azure_error,
)
from sygnify.errors import AuthenticationError, SygnifyError
from sygnify.ml.backends._remote import (
    RemoteBackend,
    RemoteConfig,
    decode_predictions,
    parse_answer,
    table_rows,
    unwrap_answer,
)
from sygnify.ml.backends.base import BackendOutput

__all__ = ["AzureMLBackend", "AzureMLConfig"]

_SCOPE = "https://ml.azure.com/.default"


class AzureMLConfig(RemoteConfig, AzureCredentials):
    """Options of the ``azureml`` backend: the endpoint, its payload, and a key or Entra identity."""

    scoring_uri: str = Field(repr=False)  # may carry a signature in its query string
    api_key: SecretStr | None = None
    credential: Any = Field(None, description="A TokenCredential to use instead of the auth options.")
    deployment: str | None = None
    payload: Literal["input_data", "data"] = "input_data"
    output_key: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _old_auth_values(cls, data: Any) -> Any:
        # auth used to be "key" or "aad"; a key is now simply api_key, and "aad" any Entra identity.
        if not isinstance(data, Mapping) or data.get("auth") not in ("key", "aad"):
            return data
        options = dict(data)
        if options.pop("auth") == "key":
            if options.get("api_key") is None:
                raise ValueError("auth='key' needs api_key (or leave auth out to use an Entra identity)")
        else:
            warnings.warn(
                "AzureMLConfig: auth='aad' is deprecated; leave auth out (DefaultAzureCredential) "
                "or name the identity (auth='service_principal_secret', 'managed_identity'...)",
                DeprecationWarning,
                stacklevel=2,
            )
        inferred = infer_azure_auth(options)
        return options if inferred is None else {**options, "auth": inferred}


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

    def auth_headers(self) -> dict[str, str]:
        headers = {}
        if self.config.deployment:
            headers["azureml-model-deployment"] = self.config.deployment
        if self.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        else:
            headers["Authorization"] = f"Bearer {self._entra_token()}"
        return headers

    def _entra_token(self) -> str:
        with self._lock:
            if self._token is not None and self._token[1] - 60 > time.time():
                return self._token[0]
            try:
                if self._credential is None:
                    self._credential = azure_token_credential(self.config)
                token = self._credential.get_token(_SCOPE)
            except SygnifyError:
                raise
            except Exception as exc:
                message = (
                    f"could not get a Microsoft Entra token for Azure ML model {self.model_name!r}: "
                    f"{type(exc).__name__}"
                )
                raise translate_azure_error(exc, message, self.model_name) or AuthenticationError(
                    message, resource=self.model_name
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
            where = f"Azure ML endpoint of model {self.model_name!r} (a JSON string)"
            body = parse_answer(body, where=where, model=self.model_name)
        body = unwrap_answer(body, "predictions", "result")
        return decode_predictions(body, features.num_rows, model=self.model_name, output_key=cfg.output_key)
