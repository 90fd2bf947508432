"""The ``azure_data_factory`` connector: run, watch, cancel and rerun Data Factory pipelines.

Data Factory orchestrates data; it does not hold any. So ``list()`` lists pipelines, and
``query``/``stream``/``scan``/``write`` raise :class:`~sygnify.errors.ConfigurationError`
pointing here: the API is :meth:`AzureDataFactoryConnector.run_pipeline`, ``wait``,
``cancel``, ``activity_runs``, ``triggers`` and ``rerun``. Outputs that name Blob/ADLS
paths are opened with the ``azure_blob`` connector through :func:`open_output`. Needs
``pip install sygnify[adf]``::

    from sygnify import CloudDataConnector

    adf = CloudDataConnector().connect(
        "azure_data_factory", subscription_id="...", resource_group="rg", factory_name="etl",
        auth="service_principal_secret", tenant_id="...", client_id="...", client_secret="...",
    )
    run_id = adf.run_pipeline("daily_load", {"day": "2026-01-31"})
    run = adf.wait(run_id, timeout=1800)           # polls with backoff; raises if it failed
    for activity in adf.activity_runs(run_id):
        print(activity.name, activity.status, activity.output)

Output URLs are parsed without any service:

    >>> parse_storage_url("abfss://raw@lake.dfs.core.windows.net/sales/2026/part-0.parquet")
    StorageLocation(account='lake', container='raw', path='sales/2026/part-0.parquet')
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import polars as pl
import pyarrow as pa
from pydantic import Field, SecretStr, model_validator

from sygnify._arrow import DEFAULT_BATCH_SIZE
from sygnify.config import ConnectorConfig, config_fingerprint
from sygnify.connectors.base import BaseConnector, Connector, QueryParams, WriteMode, WriteResult
from sygnify.connectors.pool import ClientPool
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    QueryError,
    SygnifyError,
    ThrottledError,
)
from sygnify.resilience import Deadline, Resilience

__all__ = [
    "ActivityRun",
    "AzureDataFactoryConfig",
    "AzureDataFactoryConnector",
    "PipelineRun",
    "PipelineRunFailedError",
    "StorageLocation",
    "TriggerInfo",
    "open_output",
    "parse_storage_url",
    "storage_urls",
]

R = TypeVar("R")
TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})
_LOOPBACK_NAMES = frozenset({"localhost"})


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AzureDataFactoryConfig(ConnectorConfig):
    """Options of the ``azure_data_factory`` connector (secrets masked in repr and errors)."""

    subscription_id: str
    resource_group: str
    factory_name: str
    auth: Literal["default", "service_principal_secret", "service_principal_certificate"] = "default"
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    certificate_path: Path | None = None
    certificate_password: SecretStr | None = None
    base_url: str | None = Field(None, description="ARM endpoint (default: the public cloud's).")
    poll_interval: float = Field(5.0, gt=0, description="First wait between status polls, seconds.")
    max_poll_interval: float = Field(60.0, gt=0)
    poll_backoff: float = Field(1.5, ge=1.0, description="Each wait is the previous times this.")
    timeout: float = Field(3600.0, gt=0, description="Default limit for wait(), seconds.")

    @model_validator(mode="after")
    def _check(self) -> AzureDataFactoryConfig:
        if self.auth == "service_principal_secret" and not (
            self.tenant_id and self.client_id and self.client_secret
        ):
            raise ValueError("auth='service_principal_secret' needs tenant_id, client_id and client_secret")
        if self.auth == "service_principal_certificate" and not (
            self.tenant_id and self.client_id and self.certificate_path
        ):
            raise ValueError(
                "auth='service_principal_certificate' needs tenant_id, client_id and certificate_path"
            )
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError("base_url must be an https:// URL")
            if parts.scheme == "http" and not _is_loopback(parts.hostname):
                raise ValueError(
                    "base_url must use https (plain http is allowed only for loopback test servers)"
                )
        return self

    @property
    def insecure_loopback(self) -> bool:
        """True for a plain-http loopback endpoint (a local test server)."""
        return self.base_url is not None and self.base_url.startswith("http://")


@dataclass(frozen=True)
class PipelineRun:
    """A pipeline run's state."""

    run_id: str
    pipeline: str | None
    status: str
    message: str = ""
    run_start: dt.datetime | None = None
    run_end: dt.datetime | None = None
    duration_ms: int | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"


@dataclass(frozen=True)
class ActivityRun:
    """One activity of a pipeline run, with its input, output and error (as ADF returns them)."""

    name: str
    activity_type: str | None
    activity_run_id: str | None
    status: str | None
    run_start: dt.datetime | None
    run_end: dt.datetime | None
    input: Any
    output: Any
    error: Any


@dataclass(frozen=True)
class TriggerInfo:
    """A trigger's name, type and runtime state (``Started``/``Stopped``/``Disabled``)."""

    name: str
    trigger_type: str | None
    runtime_state: str | None


class PipelineRunFailedError(SygnifyError):
    """A pipeline run ended ``Failed`` or ``Cancelled``; ``run`` holds its final state."""

    def __init__(self, message: str, *, run: PipelineRun) -> None:
        super().__init__(message, resource=run.run_id)
        self.run = run


# -- storage URLs in run outputs ----------------------------------------------------------------


@dataclass(frozen=True)
class StorageLocation:
    """A Blob/ADLS location: storage account, container (file system) and path inside it."""

    account: str
    container: str
    path: str

    @property
    def source(self) -> str:
        """``container/path``, the source string the ``azure_blob`` connector reads."""
        return f"{self.container}/{self.path}"


def parse_storage_url(url: str) -> StorageLocation:
    """Split a Blob or ADLS Gen2 URL into account, container and path.

    Understands ``https://ACCOUNT.blob.core.windows.net/container/path`` (and ``.dfs.``,
    other clouds' suffixes), ``abfss://container@ACCOUNT.dfs.core.windows.net/path``
    (``abfs``, ``wasb``, ``wasbs``) and Azurite's ``http://127.0.0.1:10000/ACCOUNT/container/path``.

    >>> parse_storage_url("https://acct.blob.core.windows.net/out/daily%20run/x.parquet").path
    'daily run/x.parquet'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    segments = [unquote(s) for s in parts.path.split("/") if s]
    labels = host.split(".")
    if parts.scheme in ("abfs", "abfss", "wasb", "wasbs"):
        if not parts.username or len(labels) < 3 or labels[1] not in ("dfs", "blob"):
            raise ConfigurationError(
                f"{url!r} is not a container@ACCOUNT.dfs.core.windows.net URL", resource=url
            )
        return StorageLocation(labels[0], unquote(parts.username), "/".join(segments))
    if parts.scheme in ("https", "http") and len(labels) >= 3 and labels[1] in ("blob", "dfs"):
        if len(segments) >= 2:
            return StorageLocation(labels[0], segments[0], "/".join(segments[1:]))
    elif parts.scheme in ("https", "http") and _is_loopback(host) and len(segments) >= 3:
        return StorageLocation(segments[0], segments[1], "/".join(segments[2:]))
    raise ConfigurationError(
        f"{url!r} is not a Blob/ADLS URL with a container and a path (expected "
        "https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH or abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH)",
        resource=url,
    )


def storage_urls(output: Any) -> list[StorageLocation]:
    """Every Blob/ADLS URL found in an activity output (nested dicts and lists), in order.

    >>> storage_urls({"files": ["https://a.blob.core.windows.net/c/x.csv", "not a url"], "n": 2})
    [StorageLocation(account='a', container='c', path='x.csv')]
    """
    found: list[StorageLocation] = []

    def walk(value: Any) -> None:
        if isinstance(value, str) and "://" in value:
            with contextlib.suppress(ConfigurationError):
                found.append(parse_storage_url(value))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(output)
    return found


def open_output(
    location: str | StorageLocation,
    connection: Connector,
    *,
    how: Literal["scan", "stream"] = "scan",
    **options: Any,
) -> Any:
    """Open a run output's Blob/ADLS location through ``connection`` (an ``azure_blob`` one).

    ``how="scan"`` returns ``connection.scan("container/path", **options)`` (a LazyFrame),
    ``"stream"`` returns ``connection.stream(...)``. If the connection's config names a
    storage account, it must be the URL's.
    """
    where = parse_storage_url(location) if isinstance(location, str) else location
    config = getattr(connection, "config", None)
    account = getattr(config, "account_name", None) or getattr(config, "account", None)
    if isinstance(account, str) and account and account != where.account:
        raise ConfigurationError(
            f"output is in storage account {where.account!r} but connection {connection.name!r} is for "
            f"{account!r}; open it with a connection to {where.account!r}",
            resource=where.source,
        )
    if how == "scan":
        return connection.scan(where.source, **options)
    if how == "stream":
        return connection.stream(where.source, **options)
    raise ConfigurationError(f"how must be 'scan' or 'stream', got {how!r}")


# -- the connector -------------------------------------------------------------------------


def _run_from_sdk(run: Any, run_id: str) -> PipelineRun:
    return PipelineRun(
        run_id=run.run_id or run_id,
        pipeline=run.pipeline_name,
        status=run.status or "Unknown",
        message=run.message or "",
        run_start=run.run_start,
        run_end=run.run_end,
        duration_ms=run.duration_in_ms,
        parameters=dict(run.parameters or {}),
    )


class AzureDataFactoryConnector(BaseConnector[AzureDataFactoryConfig]):
    """Pipelines, runs and triggers of one Data Factory (see the module docstring).

    ``credential`` overrides the configured auth (any azure-core ``TokenCredential``);
    ``sleep`` and ``clock`` drive :meth:`wait`'s polling, so tests never wait.
    """

    type_name = "azure_data_factory"
    config_model = AzureDataFactoryConfig

    def __init__(
        self,
        config: AzureDataFactoryConfig,
        *,
        name: str | None = None,
        pool: ClientPool | None = None,
        credential: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config, name=name, pool=pool)
        self._sleep = sleep
        self._clock = clock
        self._credential = credential
        key = config_fingerprint(
            config,
            exclude=frozenset(
                {"retry", "breaker", "poll_interval", "max_poll_interval", "poll_backoff", "timeout"}
            ),
        )
        self._pool_key = key if credential is None else f"{key}:credential-{id(credential)}"
        self.client: Any = self._pool.acquire(self._pool_key, self._open_client, lambda c: c.close())
        # Plain http is only accepted for loopback test servers (checked by the config).
        self._http: dict[str, Any] = {"enforce_https": False} if config.insecure_loopback else {}
        # Starting a run is not idempotent: retry it only when the service refused it (429).
        self._create_resilience = Resilience(
            retry=dataclasses.replace(self._resilience.retry, retry_on=(ThrottledError,)),
            breaker=self._resilience.breaker,
        )

    def make_credential(self) -> Any:
        """The azure-identity credential for the configured ``auth``."""
        if self._credential is not None:
            return self._credential
        from azure import identity

        config = self.config
        if config.auth == "service_principal_secret":
            assert config.tenant_id
            assert config.client_id
            assert config.client_secret
            return identity.ClientSecretCredential(
                config.tenant_id, config.client_id, config.client_secret.get_secret_value()
            )
        if config.auth == "service_principal_certificate":
            assert config.tenant_id
            assert config.client_id
            assert config.certificate_path
            password = config.certificate_password.get_secret_value() if config.certificate_password else None
            return identity.CertificateCredential(
                config.tenant_id,
                config.client_id,
                certificate_path=str(config.certificate_path),
                password=password,
            )
        return identity.DefaultAzureCredential(exclude_interactive_browser_credential=True)

    def _open_client(self) -> Any:
        from azure.mgmt.datafactory import DataFactoryManagementClient

        try:
            credential = self.make_credential()
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot build the {self.config.auth!r} credential: "
                f"{type(exc).__name__}: {self._scrub(str(exc))}",
                resource=self.name,
            ) from exc
        # The SDK's own retries sleep for real; sygnify's policy (injectable sleep) does it.
        return DataFactoryManagementClient(
            credential, self.config.subscription_id, base_url=self.config.base_url, retry_total=0
        )

    @property
    def _where(self) -> tuple[str, str]:
        return self.config.resource_group, self.config.factory_name

    # -- pipelines and runs ------------------------------------------------------------------

    def pipelines(self) -> list[str]:
        """Names of the factory's pipelines, sorted."""
        pages = self._call(
            "list pipelines",
            lambda: [p.name for p in self.client.pipelines.list_by_factory(*self._where, **self._http)],
            resource=self.config.factory_name,
        )
        return sorted(pages)

    def run_pipeline(
        self,
        pipeline: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        reference_run_id: str | None = None,
        recovery: bool | None = None,
        start_activity: str | None = None,
        start_from_failure: bool | None = None,
    ) -> str:
        """Start a run of ``pipeline`` with ``parameters``; returns its run id."""
        if not pipeline:
            raise ConfigurationError("pipeline name is empty")

        def create() -> str:
            response = self.client.pipelines.create_run(
                *self._where,
                pipeline,
                dict(parameters) if parameters is not None else None,
                reference_pipeline_run_id=reference_run_id,
                is_recovery=recovery,
                start_activity_name=start_activity,
                start_from_failure=start_from_failure,
                **self._http,
            )
            run_id: str = response.run_id
            return run_id

        return self._call_with(self._create_resilience, "run pipeline", create, resource=pipeline)

    def run(self, run_id: str) -> PipelineRun:
        """The current state of a run."""
        sdk_run = self._call(
            "get run", self.client.pipeline_runs.get, *self._where, run_id, resource=run_id, **self._http
        )
        return _run_from_sdk(sdk_run, run_id)

    def wait(
        self,
        run_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float | None = None,
        raise_on_failure: bool = True,
    ) -> PipelineRun:
        """Poll a run until it finishes; waits grow by ``poll_backoff`` up to ``max_poll_interval``.

        Raises :class:`~sygnify.errors.OperationTimeoutError` after ``timeout`` seconds (the
        run keeps going: :meth:`cancel` it if needed) and, unless ``raise_on_failure`` is
        false, :class:`PipelineRunFailedError` for a failed or cancelled run.
        """
        limit = timeout if timeout is not None else self.config.timeout
        interval = poll_interval if poll_interval is not None else self.config.poll_interval
        if limit <= 0 or interval <= 0:
            raise ConfigurationError("timeout and poll_interval must be > 0", resource=run_id)
        deadline = Deadline(limit, clock=self._clock)
        while True:
            state = self.run(run_id)
            if state.finished:
                break
            if deadline.expired:
                raise OperationTimeoutError(
                    f"pipeline run {run_id} ({state.pipeline}) is still {state.status} after {limit:g} s; "
                    "it keeps running: cancel(run_id) to stop it, or wait longer",
                    resource=run_id,
                )
            self._sleep(min(interval, max(deadline.remaining(), 0.0)))
            interval = min(interval * self.config.poll_backoff, self.config.max_poll_interval)
        if raise_on_failure and not state.succeeded:
            raise PipelineRunFailedError(
                f"pipeline run {run_id} ({state.pipeline}) ended {state.status}: "
                f"{state.message or 'no message'}; "
                "see activity_runs(run_id), or rerun(run_id) to start again from the failed activity",
                run=state,
            )
        return state

    def run_and_wait(
        self, pipeline: str, parameters: Mapping[str, Any] | None = None, **wait: Any
    ) -> PipelineRun:
        """:meth:`run_pipeline` then :meth:`wait`."""
        return self.wait(self.run_pipeline(pipeline, parameters), **wait)

    def cancel(self, run_id: str, *, recursive: bool = True) -> None:
        """Cancel a run (and, with ``recursive``, the runs it started)."""
        self._call(
            "cancel run",
            self.client.pipeline_runs.cancel,
            *self._where,
            run_id,
            is_recursive=recursive,
            resource=run_id,
            **self._http,
        )

    def rerun(self, run_id: str, *, from_activity: str | None = None) -> str:
        """Start a recovery run of ``run_id``: from ``from_activity``, else from the failed activities."""
        original = self.run(run_id)
        if original.pipeline is None:
            raise NotFoundError(f"run {run_id} names no pipeline", resource=run_id)
        return self.run_pipeline(
            original.pipeline,
            reference_run_id=run_id,
            recovery=True,
            start_activity=from_activity,
            start_from_failure=None if from_activity else True,
        )

    def activity_runs(self, run_id: str) -> list[ActivityRun]:
        """The activities of a run with their status, input, output and error."""
        from azure.mgmt.datafactory.models import RunFilterParameters

        run = self.run(run_id)
        now = dt.datetime.now(dt.timezone.utc)
        start = (run.run_start or now - dt.timedelta(days=30)) - dt.timedelta(days=1)
        found: list[ActivityRun] = []
        token: str | None = None
        while True:
            filters = RunFilterParameters(
                last_updated_after=start,
                last_updated_before=now + dt.timedelta(days=1),
                continuation_token=token,
            )
            page = self._call(
                "query activity runs",
                self.client.activity_runs.query_by_pipeline_run,
                *self._where,
                run_id,
                filters,
                resource=run_id,
                **self._http,
            )
            found += [
                ActivityRun(
                    name=a.activity_name or "",
                    activity_type=a.activity_type,
                    activity_run_id=a.activity_run_id,
                    status=a.status,
                    run_start=a.activity_run_start,
                    run_end=a.activity_run_end,
                    input=a.input,
                    output=a.output,
                    error=a.error,
                )
                for a in page.value or []
            ]
            token = page.continuation_token
            if not token:
                return found

    def outputs(self, run_id: str) -> dict[str, Any]:
        """Each activity's output by activity name."""
        return {activity.name: activity.output for activity in self.activity_runs(run_id)}

    # -- triggers ------------------------------------------------------------------------

    def triggers(self) -> list[TriggerInfo]:
        """The factory's triggers with their runtime state."""

        def fetch() -> list[TriggerInfo]:
            return [
                TriggerInfo(
                    name=t.name,
                    trigger_type=getattr(t.properties, "type", None),
                    runtime_state=getattr(t.properties, "runtime_state", None),
                )
                for t in self.client.triggers.list_by_factory(*self._where, **self._http)
            ]

        return sorted(
            self._call("list triggers", fetch, resource=self.config.factory_name), key=lambda t: t.name
        )

    def start_trigger(self, name: str) -> None:
        """Start a trigger (waits for the service to confirm)."""
        self._call(
            "start trigger",
            lambda: self.client.triggers.begin_start(*self._where, name, **self._http).result(),
            resource=name,
        )

    def stop_trigger(self, name: str) -> None:
        """Stop a trigger (waits for the service to confirm)."""
        self._call(
            "stop trigger",
            lambda: self.client.triggers.begin_stop(*self._where, name, **self._http).result(),
            resource=name,
        )

    # -- the data protocol: ADF holds no data ----------------------------------------------------

    def _no_data(self, operation: str) -> ConfigurationError:
        return ConfigurationError(
            f"azure_data_factory {operation}: Data Factory orchestrates pipelines and holds no data; "
            "use run_pipeline()/wait()/activity_runs(), and open outputs on Blob/ADLS with "
            "open_output(url, azure_blob_connection)",
            resource=self.name,
        )

    def query(self, sql: str, params: QueryParams = None) -> pa.Table:
        """Not supported (raises :class:`~sygnify.errors.ConfigurationError`)."""
        raise self._no_data("query()")

    def stream(
        self,
        source: str,
        *,
        params: QueryParams = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        columns: Sequence[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Not supported (raises :class:`~sygnify.errors.ConfigurationError`)."""
        raise self._no_data("stream()")

    def scan(self, source: str, **options: Any) -> pl.LazyFrame:
        """Not supported (raises :class:`~sygnify.errors.ConfigurationError`)."""
        raise self._no_data("scan()")

    def write(self, data: Any, target: str, *, mode: WriteMode = "append") -> WriteResult:
        """Not supported (raises :class:`~sygnify.errors.ConfigurationError`)."""
        raise self._no_data("write()")

    def list(self, prefix: str = "") -> list[str]:
        """Pipeline names starting with ``prefix``."""
        return [name for name in self.pipelines() if name.startswith(prefix)]

    def _check_health(self) -> str:
        factory = self.client.factories.get(*self._where, **self._http)
        return f"factory {factory.name!r} ({getattr(factory, 'provisioning_state', None) or 'ok'})"

    def close(self) -> None:
        if not self._closed:
            self._pool.release(self._pool_key)
        super().close()

    # -- calls and errors ------------------------------------------------------------------

    def _call_with(
        self, resilience: Resilience, operation: str, fn: Callable[[], R], *, resource: str | None
    ) -> R:
        """Like ``_call`` but with another retry policy (same breaker, translation and hooks)."""
        self._ensure_open()

        def attempt() -> R:
            try:
                return fn()
            except SygnifyError:
                raise
            except Exception as exc:
                raise self._translate(exc, operation=operation, resource=resource) from exc

        started = time.perf_counter()
        try:
            result = resilience.call(attempt)
        except SygnifyError as exc:
            self._emit_call(operation, "error", type(exc).__name__, started)
            raise
        self._emit_call(operation, "ok", None, started)
        return result

    def _scrub(self, text: str) -> str:
        for secret in (self.config.client_secret, self.config.certificate_password):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "***")
        return text

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        from azure.core import exceptions as azure_errors

        detail = getattr(exc, "message", None) or str(exc)
        message = self._scrub(f"azure_data_factory {operation} failed for {resource!r}: {detail}")
        if isinstance(exc, azure_errors.ClientAuthenticationError):
            return AuthenticationError(message, resource=resource)
        if isinstance(exc, azure_errors.ResourceNotFoundError):
            return NotFoundError(message, resource=resource)
        if isinstance(
            exc, azure_errors.ServiceRequestTimeoutError | azure_errors.ServiceResponseTimeoutError
        ):
            return OperationTimeoutError(message, resource=resource)
        if isinstance(exc, azure_errors.ServiceRequestError | azure_errors.ServiceResponseError):
            return ConnectionFailedError(message, resource=resource)
        if isinstance(exc, azure_errors.HttpResponseError):
            status = exc.status_code or 0
            if status == 429 or (status == 503 and exc.response is not None and _retry_after(exc.response)):
                return ThrottledError(message, resource=resource, retry_after=_retry_after(exc.response))
            if status == 403:
                return PermissionDeniedError(message, resource=resource)
            if status == 404:
                return NotFoundError(message, resource=resource)
            if status >= 500 or status == 408:
                return ConnectionFailedError(message, resource=resource)
            if status == 400:
                return QueryError(message, resource=resource)
            return ConfigurationError(message, resource=resource)
        if isinstance(exc, ValueError) and "https" in str(exc).lower():
            return ConfigurationError(message, resource=resource)
        return SygnifyError(message, resource=resource)


def _retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None) or {}
    for header, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0), ("Retry-After", 1.0)):
        value = headers.get(header)
        if value is not None:
            try:
                return float(value) / scale
            except ValueError:
                continue
    return None
