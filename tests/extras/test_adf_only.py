"""``pip install "sygnify[adf]"`` alone runs a Data Factory pipeline and waits for it.

Against the loopback ARM server of the orchestrator's tests, driven by the real
``DataFactoryManagementClient``; the service principal credential of the configuration is
built by azure-identity. In the ``adf``-only session (``SYGNIFY_EXTRA_ONLY=adf``:
sygnify[adf] and pytest, nothing else) it also checks that no other extra's packages are there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sygnify import CloudDataConnector
from sygnify.orchestrators.azure_data_factory.connector import (
    AzureDataFactoryConfig,
    AzureDataFactoryConnector,
)
from tests.extras._only import check_alone, only_extra
from tests.orchestrators.azure_data_factory._arm_server import ArmServer, ArmState
from tests.orchestrators.azure_data_factory.test_azure_data_factory import FACTORY, RG, SUB, FakeCredential


@pytest.fixture
def state() -> ArmState:
    arm = ArmState(SUB, RG, FACTORY)
    arm.add_pipeline(
        "nightly_copy",
        statuses=["InProgress", "Succeeded"],
        activities=[{"activityName": "CopyOrders", "activityType": "Copy", "status": "Succeeded"}],
    )
    return arm


@pytest.fixture
def server(state: ArmState) -> Iterator[ArmServer]:
    running = ArmServer(state)
    yield running
    running.stop()


@pytest.mark.skipif(only_extra() != "adf", reason="only in the adf-only environment")
def test_the_environment_holds_the_adf_extra_alone() -> None:
    check_alone("adf")


def test_run_and_wait_for_a_pipeline_with_the_adf_extra(server: ArmServer, state: ArmState) -> None:
    config = AzureDataFactoryConfig(
        subscription_id=SUB,
        resource_group=RG,
        factory_name=FACTORY,
        base_url=server.base_url,
        poll_interval=0.05,
    )
    with AzureDataFactoryConnector(config, name="adf", credential=FakeCredential()) as adf:
        assert adf.list() == ["nightly_copy"]
        run = adf.wait(adf.run_pipeline("nightly_copy", {"day": "2026-01-01"}), timeout=30)
        assert run.succeeded
    assert state.runs[run.run_id].parameters == {"day": "2026-01-01"}


def test_the_configured_service_principal_is_an_azure_identity_credential_with_the_adf_extra() -> None:
    with CloudDataConnector(environ={}) as connector:
        adf = connector.connect(
            "azure_data_factory",
            subscription_id=SUB,
            resource_group=RG,
            factory_name=FACTORY,
            tenant_id="tenant",
            client_id="client",
            client_secret="secret",
        )
        assert isinstance(adf, AzureDataFactoryConnector)
        assert type(adf.make_credential()).__name__ == "ClientSecretCredential"
