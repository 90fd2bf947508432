"""examples/adf_example.py pointed at a loopback ARM server (its base_url and credential seams)."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sygnify import CloudDataConnector
from tests.orchestrators.azure_data_factory._arm_server import ArmServer, ArmState
from tests.orchestrators.azure_data_factory.test_azure_data_factory import (
    FACTORY,
    RG,
    SUB,
    FakeCredential,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "adf_example.py"


@pytest.fixture
def state() -> ArmState:
    arm = ArmState(SUB, RG, FACTORY)
    arm.add_pipeline(
        "nightly_copy",
        statuses=["Succeeded"],
        activities=[
            {
                "activityName": "CopyOrders",
                "activityType": "Copy",
                "activityRunId": "act-9",
                "status": "Succeeded",
                "activityRunStart": "2026-01-01T00:00:10Z",
                "output": {"rowsCopied": 7},
            }
        ],
    )
    return arm


@pytest.fixture
def server(state: ArmState) -> Iterator[ArmServer]:
    running = ArmServer(state)
    yield running
    running.stop()


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUB)
    return runpy.run_path(str(EXAMPLE))


def test_the_example_runs_against_a_test_endpoint(
    example: dict[str, Any], server: ArmServer, state: ArmState, capsys: pytest.CaptureFixture[str]
) -> None:
    credential = FakeCredential()
    example["main"](
        RG, FACTORY, "nightly_copy", {"day": "2026-01-01"}, base_url=server.base_url, credential=credential
    )
    out = capsys.readouterr().out
    assert "pipelines: ['nightly_copy']" in out
    assert "finished: Succeeded" in out
    assert "CopyOrders: Succeeded" in out
    # Every request went to the loopback server, with the given credential's token.
    paths = [path for _, path in state.requests]
    assert any(path.endswith("/pipelines/nightly_copy/createRun") for path in paths)
    assert credential.calls >= 1
    run = next(iter(state.runs.values()))
    assert run.parameters == {"day": "2026-01-01"}


def test_the_example_takes_its_endpoint_from_the_environment_or_an_argument(
    example: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", "tenant")
    monkeypatch.setenv("AZURE_CLIENT_ID", "client")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "secret")
    endpoint = "http://127.0.0.1:9"  # never contacted: opening a connection makes no request
    with CloudDataConnector(environ={"SYGNIFY_ADF__BASE_URL": endpoint}) as connector:
        adf = example["open_factory"](connector, RG, FACTORY)
        assert adf.config.base_url == endpoint
        assert adf.config.auth == "service_principal_secret"
    with CloudDataConnector(environ={}) as connector:
        adf = example["open_factory"](connector, RG, FACTORY, base_url="https://management.usgovcloudapi.net")
        assert adf.config.base_url == "https://management.usgovcloudapi.net"
