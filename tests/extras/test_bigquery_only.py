"""``pip install "sygnify[bigquery]"`` alone writes, queries, streams and scans BigQuery.

Against bqemulator (REST and the Storage Read API over gRPC), with the official client.
In the ``bigquery``-only session (``SYGNIFY_EXTRA_ONLY=bigquery``: sygnify[bigquery] and
pytest, nothing else) it also checks that no other extra's packages (pandas, which the
client's ``to_dataframe`` paths need, above all) are there.
"""

from __future__ import annotations

import uuid

import polars as pl
import pyarrow as pa
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.bigquery.connector import BigQueryConnector
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.bqemulator import BigQueryEmulator, running_bqemulator
from tests.extras._only import check_alone, for_extras, only_extra

pytestmark = pytest.mark.emulator

bq_emulator, emulator = emulator_fixtures(
    for_extras(running_bqemulator),
    "bqemulator could not be installed or started",
    session="extras_bq_emulator",
    name="emulator",
)


@pytest.mark.skipif(only_extra() != "bigquery", reason="only in the bigquery-only environment")
def test_the_environment_holds_the_bigquery_extra_alone() -> None:
    check_alone("bigquery")


def test_write_query_stream_and_scan_with_the_bigquery_extra(emulator: BigQueryEmulator) -> None:
    dataset = f"ds_{uuid.uuid4().hex[:10]}"
    with CloudDataConnector(environ={}) as connector:
        bq = connector.connect(
            "bigquery",
            project=emulator.project,
            dataset=dataset,
            anonymous=True,
            endpoint=emulator.endpoint,
            storage_endpoint=f"http://{emulator.grpc_endpoint}",
            retry={"max_attempts": 2, "initial_delay": 0.001, "jitter": 0.0},
        )
        assert isinstance(bq, BigQueryConnector)
        bq.client.create_dataset(dataset)
        people = f"{dataset}.people"
        bq.write(pl.DataFrame({"id": [1, 2, 3], "name": ["ann", "bob", "cy"]}), people)
        assert bq.query(f"SELECT name FROM `{people}` WHERE id = ?", [2]).to_pylist() == [{"name": "bob"}]
        table = pa.Table.from_batches(list(bq.stream(people)))
        assert sorted(table.column("id").to_pylist()) == [1, 2, 3]
        frame = bq.scan(people).filter(pl.col("id") >= 2).select("name").collect()
        assert sorted(frame["name"].to_list()) == ["bob", "cy"]
