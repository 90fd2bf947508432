"""AWS SageMaker real-time endpoints through the ``sagemaker-runtime`` ``InvokeEndpoint`` API.

Uses boto3 with AWS's shared credential options (:class:`sygnify.clouds.aws.AwsCredentials`,
the same names as the ``s3`` connector's: the default AWS chain, ``access_key_id`` /
``secret_access_key`` / ``session_token``, ``profile``, ``role_arn``...; the old
``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token`` still work and warn).
boto3's own retries are off so sygnify's retry policy and circuit breaker are the only ones.
Example (needs AWS, so not run)::

    ml.register("churn", backend="sagemaker", endpoint_name="churn-prod", region="eu-west-1",
                role_arn="arn:aws:iam::123456789012:role/scorer", features=["age", "spend"])
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import pyarrow as pa

from sygnify.clouds.aws import AwsCredentials, aws_client, aws_session, error_code, translate_aws_error
from sygnify.errors import ModelError, SygnifyError, TransientError
from sygnify.ml.backends._remote import (
    RemoteBackend,
    RemoteConfig,
    decode_predictions,
    parse_answer,
    table_rows,
    unwrap_answer,
)
from sygnify.ml.backends.base import BackendOutput
from sygnify.plugins import PluginContext

__all__ = ["SageMakerBackend", "SageMakerConfig"]


class SageMakerConfig(RemoteConfig, AwsCredentials):
    """Options of the ``sagemaker`` backend: the endpoint, its payload, and AWS credentials."""

    deprecated_options: ClassVar[Mapping[str, str]] = {
        "aws_access_key_id": "access_key_id",
        "aws_secret_access_key": "secret_access_key",
        "aws_session_token": "session_token",
    }

    endpoint_name: str
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
    uses_http = False

    def __init__(self, config: SageMakerConfig, *, model_name: str, context: PluginContext) -> None:
        super().__init__(config, model_name=model_name, context=context)
        self._client: Any = aws_client(
            aws_session(config, verify=config.verify),
            "sagemaker-runtime",
            config,
            verify=config.verify,
            connect_timeout=config.connect_timeout,
            read_timeout=config.timeout,
        )

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
        except Exception as exc:
            message = f"{where} failed: {type(exc).__name__}: {str(exc)[:300]}"
            error = translate_aws_error(exc, message, self.model_name, refine=_refine_sagemaker)
            if error is None and type(exc).__module__.startswith("botocore"):
                error = ModelError(message, resource=self.model_name)
            if error is None:
                raise
            raise error from exc

    def predict(self, features: pa.Table) -> BackendOutput:
        raw = self.resilience.call(self._invoke, self._body(features))
        where = f"SageMaker endpoint {self.config.endpoint_name!r}"
        body = unwrap_answer(parse_answer(raw, where=where, model=self.model_name), "predictions", "outputs")
        return decode_predictions(
            body, features.num_rows, model=self.model_name, output_key=self.config.output_key
        )

    def metadata(self) -> dict[str, Any]:
        return {"backend": "sagemaker", "endpoint": self.config.endpoint_name}


def _refine_sagemaker(exc: BaseException, message: str, resource: str | None) -> SygnifyError | None:
    code = error_code(exc)
    if code == "ModelNotReadyException":
        return TransientError(f"{message} (the endpoint is still starting)", resource=resource)
    if code == "ModelError":  # the model container answered with an error of its own
        return ModelError(message, resource=resource)
    return None
