"""``pip install "sygnify[snowflake]"`` alone queries, streams, writes and scans Snowflake.

Against a fakesnow server, with the official driver. In the ``snowflake``-only session
(``SYGNIFY_EXTRA_ONLY=snowflake``: sygnify[snowflake] and pytest, nothing else) it also checks
that pandas is absent, so a read path that needs the driver's pandas extra
(``fetch_arrow_all``) fails here instead of on a user's machine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from sygnify import CloudDataConnector
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.fakesnow import FakesnowServer
from tests.extras._only import fakesnow_server, installed, only_extra

pytestmark = pytest.mark.emulator

fakesnow, server = emulator_fixtures(
    fakesnow_server, "fakesnow server could not be installed or started", session="extras_fakesnow"
)


@pytest.fixture
def sf(server: FakesnowServer) -> Iterator[Any]:
    schema = f"X_{uuid.uuid4().hex[:10].upper()}"
    with CloudDataConnector(environ={}) as connector:
        connection = connector.connect(
            "snowflake",
            **server.connect_options(),
            database="SYGNIFY",
            schema=schema,
            retry={"max_attempts": 2, "initial_delay": 0.01, "jitter": 0},
        )
        connection.execute("CREATE DATABASE IF NOT EXISTS SYGNIFY")
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS SYGNIFY.{schema}")
        connection.execute(f"USE SCHEMA SYGNIFY.{schema}")
        yield connection


@pytest.mark.skipif(only_extra() != "snowflake", reason="only in the snowflake-only environment")
def test_the_environment_holds_the_snowflake_extra_alone() -> None:
    assert installed("snowflake.connector")
    # Not in the snowflake extra (nor sygnify's core): the driver's pandas extra is absent.
    assert not installed("pandas")
    for other_extra in ("pymongo", "google.cloud.bigquery", "psycopg", "azure.storage.blob"):
        assert not installed(other_extra), other_extra


def test_query_stream_write_and_scan_with_the_snowflake_extra(sf: Any) -> None:
    assert sf.query("SELECT 1 AS one").to_pylist() == [{"ONE": 1}]
    assert sf.query("SELECT 1 AS one WHERE 1 = 0").schema == pa.schema([("ONE", pa.int64())])
    sf.write(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}), "people")
    batches = list(sf.stream("people", batch_size=2))
    assert [batch.num_rows for batch in batches] == [2, 1]
    frame = sf.scan("people").filter(pl.col("id") > 1).select("name").collect()
    assert sorted(frame["name"].to_list()) == ["b", "c"]
