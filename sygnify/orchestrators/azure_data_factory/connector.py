"""The ``azure_data_factory`` orchestrator: run, watch, cancel and rerun Data Factory pipelines.

Data Factory orchestrates data; it does not hold any. So it is a connection with the
``catalog`` capability only (``list()`` lists pipelines) plus ``health()``; it has no
``query``/``stream``/``scan``/``write``, and asking for one raises
:class:`~sygnify.errors.UnsupportedOperationError` pointing here: the API is
:meth:`AzureDataFactoryConnector.run_pipeline`, ``wait``,
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

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any

from sygnify.config import config_fingerprint
from sygnify.connectors.base import BaseConnector, Capability
from sygnify.connectors.pool import ClientPool
from sygnify.errors import ConfigurationError, NotFoundError, SygnifyError, ThrottledError
from sygnify.orchestrators.azure_data_factory.config import (
    AzureDataFactoryConfig,
    build_credential,
    translate_adf_error,
)
from sygnify.orchestrators.azure_data_factory.outputs import (
    StorageLocation,
    open_output,
    parse_storage_url,
    storage_urls,
)
from sygnify.orchestrators.azure_data_factory.runs import TERMINAL as _TERMINAL
from sygnify.orchestrators.azure_data_factory.runs import (
    ActivityRun,
    PipelineRun,
    PipelineRunFailedError,
    TriggerInfo,
    activity_from_sdk,
    run_from_sdk,
)
from sygnify.orchestrators.azure_data_factory.wait import wait_for_run
from sygnify.resilience import Resilience

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

#: Run statuses that are final (re-exported from its new home for existing imports).
TERMINAL = _TERMINAL


# -- the connector -------------------------------------------------------------------------


#: Options that change how runs are polled, not the client: connections differing only in them share it.
_POLLING = frozenset({"poll_interval", "max_poll_interval", "poll_backoff", "timeout"})


class AzureDataFactoryConnector(BaseConnector[AzureDataFactoryConfig]):
    """Pipelines, runs and triggers of one Data Factory (see the module docstring).

    ``credential`` overrides the configured auth (any azure-core ``TokenCredential``);
    ``sleep`` and ``clock`` drive :meth:`wait`'s polling, so tests never wait.
    """

    type_name = "azure_data_factory"
    config_model = AzureDataFactoryConfig
    capabilities = frozenset({Capability.CATALOG})
    unsupported_hint = (
        "Data Factory orchestrates pipelines and holds no data; use run_pipeline()/wait()/"
        "activity_runs(), and open outputs on Blob/ADLS with open_output(url, azure_blob_connection)"
    )

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
        # A client built with a caller's credential object is shared only with that credential.
        key = (
            None
            if credential is None
            else f"{self.type_name}:credential-{id(credential)}:"
            + (config_fingerprint(config, exclude=frozenset({"retry", "breaker", *_POLLING})))
        )
        self.client: Any = self._shared(self._open_client, lambda c: c.close(), exclude=_POLLING, key=key)
        # Plain http is only accepted for loopback test servers (checked by the config).
        self._http: dict[str, Any] = {"enforce_https": False} if config.insecure_loopback else {}
        # Starting a run is not idempotent: retry it only when the service refused it (429).
        self._create_resilience = Resilience(
            retry=dataclasses.replace(self._resilience.retry, retry_on=(ThrottledError,)),
            breaker=self._resilience.breaker,
        )

    def make_credential(self) -> Any:
        """The azure-identity credential for the configured ``auth`` (or the one passed in)."""
        if self._credential is not None:
            return self._credential
        return build_credential(self.config)

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

        return self._call("run pipeline", create, resource=pipeline, resilience=self._create_resilience)

    def run(self, run_id: str) -> PipelineRun:
        """The current state of a run."""
        sdk_run = self._call(
            "get run", self.client.pipeline_runs.get, *self._where, run_id, resource=run_id, **self._http
        )
        return run_from_sdk(sdk_run, run_id)

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
        return wait_for_run(
            self.run,
            run_id,
            timeout=timeout if timeout is not None else self.config.timeout,
            poll_interval=poll_interval if poll_interval is not None else self.config.poll_interval,
            poll_backoff=self.config.poll_backoff,
            max_poll_interval=self.config.max_poll_interval,
            raise_on_failure=raise_on_failure,
            sleep=self._sleep,
            clock=self._clock,
        )

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
            found += [activity_from_sdk(a) for a in page.value or []]
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

    # -- the catalog: pipelines; ADF holds no data ---------------------------------------------

    def list(self, prefix: str = "") -> list[str]:
        """Pipeline names starting with ``prefix``."""
        return [name for name in self.pipelines() if name.startswith(prefix)]

    def _check_health(self) -> str:
        factory = self.client.factories.get(*self._where, **self._http)
        return f"factory {factory.name!r} ({getattr(factory, 'provisioning_state', None) or 'ok'})"

    # -- errors ----------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in (self.config.client_secret, self.config.certificate_password):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "***")
        return text

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        detail = getattr(exc, "message", None) or str(exc)
        message = self._scrub(f"azure_data_factory {operation} failed for {resource!r}: {detail}")
        return translate_adf_error(exc, message, resource)
