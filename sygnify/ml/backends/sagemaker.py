"""AWS SageMaker real-time endpoints through the ``sagemaker-runtime`` ``InvokeEndpoint`` API.

Uses boto3 (credentials from the usual AWS chain, or ``aws_access_key_id=`` /
``aws_secret_access_key=``); boto3's own retries are off so sygnify's retry policy and
circuit breaker are the only ones. Example (needs AWS, so not run)::

    ml.register("churn", backend="sagemaker", endpoint_name="churn-prod", region="eu-west-1",
                features=["age", "spend"])
"""

from __future__ import annotations

import csv
import importlib
import io
import json
from collections.abc import Mapping
from typing import Any, Literal

import pyarrow as pa
from pydantic import SecretStr

from sygnify.errors import (
    AuthenticationError,
    ConnectionFailedError,
    ModelError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    ThrottledError,
    TransientError,
)
from sygnify.ml.backends._remote import RemoteBackend, RemoteConfig, decode_predictions, table_rows
from sygnify.ml.backends.base import BackendContext, BackendOutput

__all__ = ["SageMakerBackend", "SageMakerConfig"]


class SageMakerConfig(RemoteConfig):
    endpoint_name: str
    region: str | None = None
    endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    profile: str | None = None
    content_type: Literal["application/json", "text/csv"] = "application/json"
    payload: Literal["instances", "rows", "records"] = "instances"
    target_variant: str | None = None
    target_model: str | None = None
    output_key: str | None = None


class SageMakerBackend(RemoteBackend):
    """A model behind a SageMaker real-time endpoint."""

    backend_name = "sagemaker"
    config_model = SageMakerConfig
    config: SageMakerConfig

    def __init__(self, config: SageMakerConfig, *, model_name: str, context: BackendContext) -> None:
        super().__init__(config, model_name=model_name, context=context)
        boto3: Any = importlib.import_module("boto3")
        botocore_config: Any = importlib.import_module("botocore.config")
        session = boto3.Session(
            aws_access_key_id=config.aws_access_key_id,
            aws_secret_access_key=(
                config.aws_secret_access_key.get_secret_value() if config.aws_secret_access_key else None
            ),
            aws_session_token=config.aws_session_token.get_secret_value()
            if config.aws_session_token
            else None,
            profile_name=config.profile,
            region_name=config.region,
        )
        self._client: Any = session.client(
            "sagemaker-runtime",
            endpoint_url=config.endpoint_url,
            verify=config.verify,
            config=botocore_config.Config(
                connect_timeout=config.connect_timeout,
                read_timeout=config.timeout,
                retries={"total_max_attempts": 1, "mode": "standard"},
            ),
        )

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], *, name: str, context: BackendContext
    ) -> SageMakerBackend:
        config = cls.parse_config(options, name=name)
        assert isinstance(config, SageMakerConfig)
        return cls(config, model_name=name, context=context)

    def _body(self, features: pa.Table) -> bytes:
        cfg = self.config
        if cfg.content_type == "text/csv":
            buffer = io.StringIO()
            csv.writer(buffer).writerows(table_rows(features))
            return buffer.getvalue().encode()
        payload: Any
        if cfg.payload == "records":
            payload = features.to_pylist()
        elif cfg.payload == "rows":
            payload = table_rows(features)
        else:
            payload = {"instances": table_rows(features)}
        return json.dumps(payload).encode()

    def _invoke(self, body: bytes) -> bytes:
        botocore_exceptions: Any = importlib.import_module("botocore.exceptions")
        cfg = self.config
        kwargs: dict[str, Any] = {
            "EndpointName": cfg.endpoint_name,
            "Body": body,
            "ContentType": cfg.content_type,
            "Accept": "application/json",
        }
        if cfg.target_variant:
            kwargs["TargetVariant"] = cfg.target_variant
        if cfg.target_model:
            kwargs["TargetModel"] = cfg.target_model
        where = f"SageMaker endpoint {cfg.endpoint_name!r} (model {self.model_name!r})"
        try:
            response = self._client.invoke_endpoint(**kwargs)
            data: bytes = response["Body"].read()
            return data
        except botocore_exceptions.ClientError as exc:
            raise _client_error(exc, where, self.model_name) from exc
        except (botocore_exceptions.ReadTimeoutError, botocore_exceptions.ConnectTimeoutError) as exc:
            raise OperationTimeoutError(f"{where} timed out", resource=self.model_name) from exc
        except botocore_exceptions.NoCredentialsError as exc:
            raise AuthenticationError(f"{where}: no AWS credentials found", resource=self.model_name) from exc
        except botocore_exceptions.BotoCoreError as exc:
            raise ConnectionFailedError(
                f"{where} failed: {type(exc).__name__}", resource=self.model_name
            ) from exc

    def predict(self, features: pa.Table) -> BackendOutput:
        raw = self.resilience.call(self._invoke, self._body(features))
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ModelError(
                f"SageMaker endpoint {self.config.endpoint_name!r} answered malformed JSON",
                resource=self.model_name,
            ) from exc
        if isinstance(body, dict):
            body = body.get("predictions", body.get("outputs", body))
        return decode_predictions(
            body, features.num_rows, model=self.model_name, output_key=self.config.output_key
        )

    def metadata(self) -> dict[str, Any]:
        return {"backend": "sagemaker", "endpoint": self.config.endpoint_name}


def _client_error(exc: Any, where: str, model: str) -> Exception:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    message = f"{where} failed with {code or status}: {str(error.get('Message', ''))[:200]}"
    if code in ("ThrottlingException", "TooManyRequestsException") or status == 429:
        return ThrottledError(message, resource=model)
    if code in ("ServiceUnavailable", "InternalFailure", "ModelNotReadyException") or status >= 500:
        return TransientError(message, resource=model)
    if code in ("UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"):
        return AuthenticationError(message, resource=model)
    if code in ("AccessDeniedException",) or status == 403:
        return PermissionDeniedError(message, resource=model)
    if status == 404:
        return NotFoundError(message, resource=model)
    return ModelError(message, resource=model)
