"""What every bigquery test module shares: one bqemulator per session, a connection to it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.bigquery.connector import BigQueryConnector
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.bqemulator import BigQueryEmulator, running_bqemulator

FAST_RETRY = {"max_attempts": 2, "initial_delay": 0.001, "max_delay": 0.001, "jitter": 0.0}


bq_emulator, emulator = emulator_fixtures(
    running_bqemulator, "bqemulator could not be installed or started", session="bq_emulator", name="emulator"
)


def emulator_options(emulator: BigQueryEmulator, **extra: Any) -> dict[str, Any]:
    return {
        "project": emulator.project,
        "anonymous": True,
        "endpoint": emulator.endpoint,
        "storage_endpoint": f"http://{emulator.grpc_endpoint}",
        "retry": FAST_RETRY,
        **extra,
    }


@pytest.fixture
def dataset(emulator: BigQueryEmulator) -> str:
    return f"ds_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def bq(connector: CloudDataConnector, emulator: BigQueryEmulator, dataset: str) -> BigQueryConnector:
    connection = connector.connect("bigquery", name="bq", **emulator_options(emulator, dataset=dataset))
    assert isinstance(connection, BigQueryConnector)
    connection.client.create_dataset(dataset)
    return connection
