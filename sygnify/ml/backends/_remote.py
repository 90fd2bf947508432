"""Shared machinery of the remote serving backends: config, pooled HTTP, retries, breaker.

Every request goes through :class:`~sygnify.resilience.Resilience`: a
:class:`~sygnify.resilience.RetryPolicy` (transient failures only) around a
:class:`~sygnify.resilience.CircuitBreaker`; a failure that opens the breaker ends the
retries at once (no backoff sleep before a refusal, the rule connectors follow too), so
fallbacks answer without delay. HTTP failures are translated into sygnify's error tree
here, so callers never see an ``httpx`` exception. Each request has an async twin
(:meth:`RemoteBackend.arequest`) on an ``httpx.AsyncClient`` with the same retries, breaker
and errors. Secrets (API keys, tokens) live in :class:`~pydantic.SecretStr` fields and
headers built per request: they never reach a repr, a log line or an error message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
import pyarrow as pa
from pydantic import Field
from typing_extensions import Self

from sygnify import events
from sygnify.clouds.base import retry_after
from sygnify.config import BreakerSettings, RetrySettings, validate_config
from sygnify.errors import (
    AuthenticationError,
    ConnectionFailedError,
    ModelError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    SchemaError,
    ThrottledError,
    TransientError,
)
from sygnify.ml.backends.base import BackendConfig, BackendOutput, HttpClients, ModelBackend
from sygnify.ml.signature import Signature
from sygnify.plugins import PluginContext, SharedHttpClients
from sygnify.resilience import BreakerState, CircuitBreaker, Resilience, RetryPolicy

__all__ = [
    "RemoteBackend",
    "RemoteConfig",
    "decode_predictions",
    "parse_answer",
    "table_rows",
    "unwrap_answer",
]

ConfigT = TypeVar("ConfigT", bound="RemoteConfig")


class RemoteConfig(BackendConfig):
    """Options every remote backend takes (each backend's config adds its own)."""

    timeout: float = Field(10.0, gt=0, description="seconds for the whole request")
    connect_timeout: float = Field(5.0, gt=0)
    verify: bool = True
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    features: list[str] | None = None


def table_rows(features: pa.Table) -> list[list[Any]]:
    """Rows as lists of plain values (the JSON wire formats need them)."""
    columns = [column.to_pylist() for column in features.columns]
    return [list(row) for row in zip(*columns)] if columns else [[] for _ in range(features.num_rows)]


def parse_answer(raw: str | bytes, *, where: str, model: str, status: int | None = None) -> Any:
    """An answer's JSON text parsed; a :class:`~sygnify.errors.ModelError` naming ``where`` if it is not JSON.

    ``status`` is the HTTP status of the answer, if it came over HTTP (named in the error).

    >>> parse_answer(b'{"predictions": [1]}', where="endpoint 'e'", model="m")
    {'predictions': [1]}
    >>> parse_answer("<html>", where="endpoint 'e'", model="m")
    Traceback (most recent call last):
    ...
    sygnify.errors.ModelError: endpoint 'e' answered malformed JSON
    """
    try:
        return json.loads(raw)
    except ValueError as exc:
        http = f" (HTTP {status})" if status is not None else ""
        raise ModelError(f"{where} answered malformed JSON{http}", resource=model) from exc


def unwrap_answer(body: Any, *keys: str) -> Any:
    """The value at the first of ``keys`` a JSON object ``body`` has (an answer's envelope), else ``body``.

    >>> unwrap_answer({"outputs": [1]}, "predictions", "outputs"), unwrap_answer([2], "predictions")
    ([1], [2])
    """
    if isinstance(body, dict):
        for key in keys:
            if key in body:
                return body[key]
    return body


_LABEL_KEYS = ("prediction", "predictions", "label", "labels", "predicted_label", "score", "value", "output")
_PROBA_KEYS = ("probabilities", "probability", "scores", "probs")


def decode_predictions(values: Any, rows: int, *, model: str, output_key: str | None = None) -> BackendOutput:
    """Turn a JSON list of per-row outputs into predictions (+ probabilities).

    Scalars are predictions; one-element lists are unwrapped; longer lists are class
    probabilities (the prediction is the arg-max index); objects are read at ``output_key``
    (or a usual key such as ``prediction``/``label``, with ``probabilities``/``scores``).
    """
    if not isinstance(values, list):
        raise ModelError(
            f"model {model!r} answered with {type(values).__name__} where a list of predictions was expected",
            resource=model,
        )
    if len(values) != rows:
        raise ModelError(
            f"model {model!r} answered {len(values)} predictions for {rows} rows", resource=model
        )
    if not values:
        return BackendOutput(np.array([]))
    first = values[0]
    if isinstance(first, dict):
        keys = (output_key,) if output_key else _LABEL_KEYS
        key = next((k for k in keys if k in first), None)
        proba_key = next((k for k in _PROBA_KEYS if k in first and k != key), None)
        if key is None:
            raise ModelError(
                f"model {model!r} answered objects without a prediction field (keys: {', '.join(first)}); "
                "set output_key=",
                resource=model,
            )
        try:
            inner = decode_predictions([v[key] for v in values], rows, model=model)
            proba = np.array([v[proba_key] for v in values], dtype=np.float64) if proba_key else None
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model {model!r} answered inconsistent objects: {exc}", resource=model) from exc
        return BackendOutput(inner.predictions, proba if proba is not None else inner.probabilities)
    try:
        if isinstance(first, list):
            if all(isinstance(v, list) and len(v) == 1 for v in values):
                return BackendOutput(np.array([v[0] for v in values]))
            proba = np.array(values, dtype=np.float64)
            if proba.ndim != 2:
                raise ValueError("ragged outputs")
            return BackendOutput(proba.argmax(axis=1), proba)
        return BackendOutput(np.array(values))
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"model {model!r} answered outputs of inconsistent shape: {exc}", resource=model
        ) from exc


class RemoteBackend(ModelBackend):
    """Base of the HTTP serving backends; subclasses build URLs, payloads and parse answers."""

    remote = True
    config_model: ClassVar[type[RemoteConfig]] = RemoteConfig
    #: whether requests go through the pooled httpx clients (SageMaker's go through boto3,
    #: so its extra need not bring httpx)
    uses_http: ClassVar[bool] = True

    def __init__(self, config: RemoteConfig, *, model_name: str, context: PluginContext) -> None:
        signature = Signature.of(config.features, extra=config.extra_features) if config.features else None
        super().__init__(signature=signature, model_name=model_name)
        self.config = config
        self._context = context
        # Without shared clients (a backend built on its own) it pools its own and closes them.
        http: SharedHttpClients
        self._own_http: HttpClients | None = None
        if context.http is None:
            http = self._own_http = HttpClients()
        else:
            http = context.http
        self._client: Any = http.get(verify=config.verify) if self.uses_http else None
        label = f"model:{model_name}:{self.backend_name}"

        def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
            events.emit(
                "model.retry", model=model_name, attempt=attempt, error=type(exc).__name__, delay_s=delay
            )

        def on_state_change(old: BreakerState, new: BreakerState) -> None:
            events.emit("breaker.state", breaker=label, old=old.value, new=new.value)

        self.breaker = CircuitBreaker(
            label, **config.breaker.model_dump(), clock=context.clock, on_state_change=on_state_change
        )
        self._async_client: Any = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self.resilience = Resilience(
            retry=RetryPolicy(
                **config.retry.model_dump(), sleep=context.sleep, rng=context.rng, on_retry=on_retry
            ),
            breaker=self.breaker,
        )

    @classmethod
    def parse_config(cls, options: Mapping[str, Any], *, name: str) -> RemoteConfig:
        """``options`` validated by ``config_model`` (errors name the model)."""
        return validate_config(cls.config_model, options, context=f"{cls.backend_name} model {name!r}")

    @classmethod
    def _build(cls, config: RemoteConfig, context: PluginContext) -> Self:
        return cls(config, model_name=context.name, context=context)

    # -- HTTP ---------------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        """Headers carrying credentials, built per request (never stored in repr or errors)."""
        return {}

    def _timeout(self) -> Any:
        import httpx

        return httpx.Timeout(self.config.timeout, connect=self.config.connect_timeout)

    def request_json(self, method: str, url: str, payload: Any = None, *, what: str = "predict") -> Any:
        """Send one request through retries and the breaker; the parsed JSON answer."""
        content, headers = _json_request(payload)
        response = self.request(method, url, content=content, headers=headers, what=what)
        return self._parse_json(response, url, what)

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "predict",
    ) -> Any:
        """Send one request through retries and the breaker; the ``httpx.Response`` (status < 400).

        For wire formats that are not plain JSON (binary tensors); HTTP and transport failures
        are already translated into sygnify's errors.
        """
        return self.resilience.call(self._send, method, url, content, dict(headers or {}), what)

    async def arequest_json(
        self, method: str, url: str, payload: Any = None, *, what: str = "predict"
    ) -> Any:
        """:meth:`request_json` on the backend's ``httpx.AsyncClient``."""
        content, headers = _json_request(payload)
        response = await self.arequest(method, url, content=content, headers=headers, what=what)
        return self._parse_json(response, url, what)

    async def arequest(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "predict",
    ) -> Any:
        """:meth:`request` awaited on an ``httpx.AsyncClient`` (one per event loop, made on first use)."""
        client = self._async_http()
        all_headers = dict(headers or {})

        async def send() -> Any:
            import httpx

            where = self.where(url, what)
            try:
                response = await client.request(
                    method, url, content=content, headers=self._headers(all_headers), timeout=self._timeout()
                )
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, where) from exc
            return self._checked(response, where)

        return await self.resilience.acall(send)

    def _async_http(self) -> Any:
        import httpx

        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_loop is not loop:
            # A client's pool belongs to the loop it was first used on.
            self._async_client = httpx.AsyncClient(verify=self.config.verify, follow_redirects=False)
            self._async_loop = loop
        return self._async_client

    def where(self, url: str, what: str) -> str:
        """How errors name a request: backend, what it was for, model and URL (no query or user info)."""
        return f"{self.backend_name} {what} of model {self.model_name!r} at {_safe_url(url)}"

    def _headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        return {"Accept": "application/json", **extra, **self.auth_headers()}

    def _send(self, method: str, url: str, content: bytes | None, headers: dict[str, str], what: str) -> Any:
        import httpx

        where = self.where(url, what)
        try:
            response = self._client.request(
                method, url, content=content, headers=self._headers(headers), timeout=self._timeout()
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, where) from exc
        return self._checked(response, where)

    def _transport_error(self, exc: Exception, where: str) -> Exception:
        """An ``httpx.HTTPError`` as sygnify's error (the message names no URL query or secret)."""
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return OperationTimeoutError(
                f"{where} timed out after {self.config.timeout:g} s", resource=self.model_name
            )
        if isinstance(exc, httpx.TransportError):
            return ConnectionFailedError(f"{where} failed: {type(exc).__name__}", resource=self.model_name)
        return ModelError(f"{where} failed: {type(exc).__name__}", resource=self.model_name)

    def _checked(self, response: Any, where: str) -> Any:
        if response.status_code >= 400:
            raise _status_error(response.status_code, response, where, self.model_name)
        return response

    def _parse_json(self, response: Any, url: str, what: str) -> Any:
        if not response.content:
            return None
        return parse_answer(
            response.content, where=self.where(url, what), model=self.model_name, status=response.status_code
        )

    async def aclose(self) -> None:
        """Close the async HTTP client (if one was made) and the clients :meth:`close` closes."""
        client, self._async_client, self._async_loop = self._async_client, None, None
        if client is not None:
            await client.aclose()
        self.close()

    def close(self) -> None:
        """Close the HTTP clients this backend made itself (shared ones belong to RealTimeML)."""
        if self._own_http is not None:
            self._own_http.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model_name!r}, timeout={self.config.timeout})"


def _json_request(payload: Any) -> tuple[bytes | None, dict[str, str]]:
    if payload is None:
        return None, {}
    content = json.dumps(payload, default=_json_default).encode()
    return content, {"Content-Type": "application/json"}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _safe_url(url: str) -> str:
    """The URL without query string or user info (either may carry credentials)."""
    import httpx

    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, userinfo=b""))


def _server_message(response: Any) -> str:
    try:
        body = response.json()
        if isinstance(body, dict):
            for key in ("error", "message", "detail", "Message"):
                if key in body:
                    return str(body[key])[:200]
    except ValueError:
        pass
    return str(response.text)[:200]


def _status_error(status: int, response: Any, where: str, model: str) -> Exception:
    message = f"{where} answered HTTP {status}: {_server_message(response)}"
    if status in (429, 503):
        return ThrottledError(message, resource=model, retry_after=retry_after(response.headers))
    if status >= 500:
        return TransientError(message, resource=model)
    if status == 401:
        return AuthenticationError(message, resource=model)
    if status == 403:
        return PermissionDeniedError(message, resource=model)
    if status == 404:
        return NotFoundError(message, resource=model)
    if status == 422:
        return SchemaError(message, resource=model)
    return ModelError(message, resource=model)


def flat_to_rows(data: Sequence[Any], shape: Sequence[int], *, model: str) -> Any:
    """A v2-protocol flat ``data`` list reshaped by ``shape`` (as nested lists)."""
    try:
        array = np.asarray(data)
        return array.reshape([int(d) for d in shape]).tolist()
    except (ValueError, TypeError) as exc:
        raise ModelError(
            f"model {model!r} answered data that does not fit shape {list(shape)}", resource=model
        ) from exc
