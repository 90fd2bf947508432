from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from azure.core.credentials import AccessToken

from sygnify import CloudDataConnector
from sygnify.connectors import Catalog, Connector, Healthy
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    OperationTimeoutError,
    ThrottledError,
)
from sygnify.orchestrators.azure_data_factory.connector import (
    AzureDataFactoryConfig,
    AzureDataFactoryConnector,
    PipelineRunFailedError,
    StorageLocation,
    open_output,
    parse_storage_url,
    storage_urls,
)
from sygnify.plugins import PluginContext
from tests.orchestrators.azure_data_factory._arm_server import ArmServer, ArmState

SUB, RG, FACTORY = "00000000-0000-0000-0000-000000000001", "rg-data", "etl-factory"


class FakeCredential:
    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        return AccessToken("fake-token", int(time.time()) + 3600)


class FakeClock:
    """A clock that only moves when the connector sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state() -> ArmState:
    arm = ArmState(SUB, RG, FACTORY)
    arm.add_pipeline(
        "daily_load",
        activities=[
            {
                "activityName": "CopySales",
                "activityType": "Copy",
                "activityRunId": "act-1",
                "status": "Succeeded",
                "activityRunStart": "2026-01-01T00:00:10Z",
                "output": {
                    "rowsCopied": 42,
                    "sink": "https://lake.blob.core.windows.net/out/sales/part-0.parquet",
                },
            }
        ],
    )
    arm.add_pipeline(
        "broken",
        statuses=["InProgress", "Failed"],
        message="Activity CopySales failed: source not found",
        activities=[
            {"activityName": "CopySales", "status": "Failed", "error": {"message": "source not found"}}
        ],
    )
    arm.add_pipeline("slow", statuses=["InProgress"])
    arm.triggers = {"nightly": "Stopped"}
    return arm


@pytest.fixture
def server(state: ArmState) -> Iterator[ArmServer]:
    running = ArmServer(state)
    yield running
    running.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(server: ArmServer, clock: FakeClock, **extra: Any) -> AzureDataFactoryConnector:
    config = AzureDataFactoryConfig(
        subscription_id=SUB,
        resource_group=RG,
        factory_name=FACTORY,
        base_url=server.base_url,
        poll_interval=2.0,
        max_poll_interval=5.0,
        retry={"max_attempts": 3, "initial_delay": 0.5, "jitter": 0},
        **extra,
    )
    connection = AzureDataFactoryConnector(
        config, credential=FakeCredential(), sleep=clock.sleep, clock=clock
    )
    connection._resilience.retry = connection._resilience.retry.__class__(
        **{**connection._resilience.retry.__dict__, "sleep": clock.sleep}
    )
    connection._create_resilience.retry = connection._create_resilience.retry.__class__(
        **{**connection._create_resilience.retry.__dict__, "sleep": clock.sleep}
    )
    return connection


@pytest.fixture
def adf(server: ArmServer, clock: FakeClock) -> Iterator[AzureDataFactoryConnector]:
    connection = make(server, clock)
    yield connection
    connection.close()


def test_lists_pipelines_and_is_healthy(adf: AzureDataFactoryConnector) -> None:
    assert isinstance(adf, Catalog)
    assert isinstance(adf, Healthy)
    assert not isinstance(adf, Connector)  # an orchestrator holds no data
    assert adf.list() == ["broken", "daily_load", "slow"]
    assert adf.list("da") == ["daily_load"]
    status = adf.health()
    assert status.ok, status.detail


def test_run_with_parameters_polls_with_backoff_until_success(
    adf: AzureDataFactoryConnector, state: ArmState, clock: FakeClock
) -> None:
    run_id = adf.run_pipeline("daily_load", {"day": "2026-01-31", "limit": 10})
    run = adf.wait(run_id)
    assert run.succeeded
    assert run.pipeline == "daily_load"
    assert run.parameters == {"day": "2026-01-31", "limit": "10"}
    assert clock.sleeps == [2.0, 3.0]
    assert state.runs[run_id].parameters == {"day": "2026-01-31", "limit": 10}


def test_backoff_is_capped_and_timeout_is_typed(adf: AzureDataFactoryConnector, clock: FakeClock) -> None:
    run_id = adf.run_pipeline("slow")
    with pytest.raises(OperationTimeoutError, match=r"still InProgress after 20 s.*cancel"):
        adf.wait(run_id, timeout=20)
    assert clock.sleeps == [2.0, 3.0, 4.5, 5.0, 5.0, 0.5]
    assert clock.now == pytest.approx(20.0)


def test_failed_run_raises_with_its_state(adf: AzureDataFactoryConnector) -> None:
    run_id = adf.run_pipeline("broken")
    with pytest.raises(PipelineRunFailedError, match="source not found") as caught:
        adf.wait(run_id)
    assert caught.value.run.status == "Failed"
    assert adf.wait(run_id, raise_on_failure=False).status == "Failed"
    (activity,) = adf.activity_runs(run_id)
    assert activity.status == "Failed"
    assert activity.error == {"message": "source not found"}


def test_cancel(adf: AzureDataFactoryConnector) -> None:
    run_id = adf.run_pipeline("slow")
    adf.cancel(run_id)
    assert adf.wait(run_id, raise_on_failure=False).status == "Cancelled"


def test_activity_runs_and_outputs(adf: AzureDataFactoryConnector) -> None:
    run_id = adf.run_pipeline("daily_load")
    adf.wait(run_id)
    (activity,) = adf.activity_runs(run_id)
    assert (activity.name, activity.activity_type, activity.status) == ("CopySales", "Copy", "Succeeded")
    outputs = adf.outputs(run_id)
    assert outputs["CopySales"]["rowsCopied"] == 42
    assert storage_urls(outputs) == [StorageLocation("lake", "out", "sales/part-0.parquet")]


def test_rerun_from_failure_and_from_an_activity(adf: AzureDataFactoryConnector, state: ArmState) -> None:
    failed = adf.run_pipeline("broken", {"day": "d1"})
    adf.wait(failed, raise_on_failure=False)
    rerun = adf.rerun(failed)
    query = state.runs[rerun].create_query
    assert query["referencePipelineRunId"] == failed
    assert query["isRecovery"] == "true"
    assert query["startFromFailure"] == "true"
    assert state.runs[rerun].parameters == {"day": "d1"}
    from_copy = adf.rerun(failed, from_activity="CopySales")
    assert state.runs[from_copy].create_query["startActivityName"] == "CopySales"
    assert "startFromFailure" not in state.runs[from_copy].create_query


def test_triggers_list_start_stop(adf: AzureDataFactoryConnector, state: ArmState) -> None:
    (trigger,) = adf.triggers()
    assert (trigger.name, trigger.trigger_type, trigger.runtime_state) == (
        "nightly",
        "ScheduleTrigger",
        "Stopped",
    )
    adf.start_trigger("nightly")
    assert state.triggers["nightly"] == "Started"
    adf.stop_trigger("nightly")
    assert adf.triggers()[0].runtime_state == "Stopped"
    with pytest.raises(NotFoundError):
        adf.start_trigger("ghost")


def test_throttling_is_retried_after_retry_after(
    adf: AzureDataFactoryConnector, state: ArmState, clock: FakeClock
) -> None:
    state.fail_next("POST", r"/createRun$", 429, headers={"Retry-After": "7"}, code="TooManyRequests")
    state.fail_next("GET", r"/pipelineruns/", 429, headers={"Retry-After": "3"})
    run_id = adf.run_pipeline("daily_load")
    assert len([r for r in state.requests if r[1].endswith("/createRun")]) == 2
    assert adf.run(run_id).status == "Queued"
    assert clock.sleeps == [7.0, 3.0]


def test_throttling_that_persists_is_a_throttled_error(
    adf: AzureDataFactoryConnector, state: ArmState
) -> None:
    for _ in range(3):
        state.fail_next("GET", r"/pipelines$", 429, headers={"Retry-After": "1"})
    with pytest.raises(ThrottledError) as caught:
        adf.list()
    assert caught.value.retry_after == 1.0


def test_server_errors_on_create_run_are_not_retried(adf: AzureDataFactoryConnector, state: ArmState) -> None:
    state.fail_next("POST", r"/createRun$", 503)
    with pytest.raises(Exception, match="503") as caught:
        adf.run_pipeline("daily_load")
    assert type(caught.value).__name__ == "TransientError"
    assert len([r for r in state.requests if r[1].endswith("/createRun")]) == 1
    assert state.runs == {}


def test_not_found_is_typed(adf: AzureDataFactoryConnector) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        adf.run_pipeline("nope")
    with pytest.raises(NotFoundError):
        adf.run("no-such-run")


def test_wrong_factory_is_not_found_and_unhealthy(server: ArmServer, clock: FakeClock) -> None:
    connection = AzureDataFactoryConnector(
        AzureDataFactoryConfig(
            subscription_id=SUB, resource_group=RG, factory_name="other", base_url=server.base_url
        ),
        credential=FakeCredential(),
    )
    with pytest.raises(NotFoundError):
        connection.list()
    assert not connection.health().ok


def test_unauthenticated_is_an_authentication_error(
    server: ArmServer, state: ArmState, clock: FakeClock
) -> None:
    adf = make(server, clock)
    state.fail_next("GET", r"/pipelines$", 401, code="InvalidAuthenticationToken")
    with pytest.raises(AuthenticationError):
        adf.list()


def test_data_methods_explain_that_adf_holds_no_data(adf: AzureDataFactoryConnector) -> None:
    for call in (
        lambda: adf.query("SELECT 1"),
        lambda: adf.stream("x"),
        lambda: adf.scan("x"),
        lambda: adf.write(None, "x"),
    ):
        with pytest.raises(ConfigurationError, match="holds no data"):
            call()


def test_closed_connection_refuses_work(adf: AzureDataFactoryConnector) -> None:
    adf.close()
    with pytest.raises(ConfigurationError, match="closed"):
        adf.run_pipeline("daily_load")


def test_facade_builds_it_from_options(server: ArmServer) -> None:
    with CloudDataConnector(environ={}) as facade:
        connection = facade.connect(
            "azure_data_factory",
            subscription_id=SUB,
            resource_group=RG,
            factory_name=FACTORY,
            auth="service_principal_secret",
            tenant_id="tenant",
            client_id="client",
            client_secret="very-secret-value",
        )
        assert isinstance(connection, AzureDataFactoryConnector)
        assert "very-secret-value" not in repr(connection)
        assert type(connection.make_credential()).__name__ == "ClientSecretCredential"


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"auth": "service_principal_secret", "tenant_id": "t"}, "client_secret"),
        ({"auth": "service_principal_certificate", "tenant_id": "t", "client_id": "c"}, "certificate_path"),
        ({"base_url": "http://management.example.com"}, "https"),
        ({"poll_interval": 0}, "poll_interval"),
    ],
)
def test_invalid_configuration(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        AzureDataFactoryConnector.from_config(
            {"subscription_id": SUB, "resource_group": RG, "factory_name": FACTORY, **settings},
            context=PluginContext("adf"),
        )


def test_certificate_and_default_credentials(tmp_path: Path) -> None:
    base = {"subscription_id": SUB, "resource_group": RG, "factory_name": FACTORY}
    default = AzureDataFactoryConnector.from_config(base, context=PluginContext("adf"))
    assert type(default.make_credential()).__name__ == "DefaultAzureCredential"
    certificate = AzureDataFactoryConfig(
        **base,
        auth="service_principal_certificate",
        tenant_id="t",
        client_id="c",
        certificate_path=tmp_path / "missing.pem",
    )
    with pytest.raises(ConfigurationError):
        AzureDataFactoryConnector(certificate)


# -- output URLs and opening them ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acct.blob.core.windows.net/out/a/b.parquet", ("acct", "out", "a/b.parquet")),
        ("https://acct.dfs.core.windows.net/fs/dir/x.csv", ("acct", "fs", "dir/x.csv")),
        ("abfss://raw@lake.dfs.core.windows.net/sales/*.parquet", ("lake", "raw", "sales/*.parquet")),
        ("wasbs://c@acct.blob.core.chinacloudapi.cn/p", ("acct", "c", "p")),
        ("http://127.0.0.1:10000/devstoreaccount1/c/p/q.json", ("devstoreaccount1", "c", "p/q.json")),
    ],
)
def test_parse_storage_url(url: str, expected: tuple[str, str, str]) -> None:
    assert parse_storage_url(url) == StorageLocation(*expected)


@pytest.mark.parametrize(
    "url",
    [
        "https://acct.blob.core.windows.net/only-container",
        "s3://bucket/key",
        "abfss://lake.dfs.core.windows.net/x",
        "x",
    ],
)
def test_bad_storage_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_storage_url(url)


def test_open_output_through_any_connector(tmp_path: Path) -> None:
    with CloudDataConnector(environ={}) as facade:
        lake = facade.connect("local", root=tmp_path)
        lake.write(pl.DataFrame({"x": [1, 2, 3]}), "out/sales/part-0.parquet")
        url = "https://lake.blob.core.windows.net/out/sales/part-0.parquet"
        frame = open_output(url, lake)
        assert frame.collect()["x"].to_list() == [1, 2, 3]
        batches = list(open_output(url, lake, how="stream", batch_size=2))
        assert [b.num_rows for b in batches] == [2, 1]


def test_open_output_refuses_another_account() -> None:
    class BlobLike:
        name = "blob"

        class config:
            account_name = "other"

        def scan(self, source: str, **options: Any) -> Any:
            raise AssertionError("must not be called")

    with pytest.raises(ConfigurationError, match="'lake'"):
        open_output("https://lake.blob.core.windows.net/c/p", BlobLike())  # type: ignore[arg-type]
