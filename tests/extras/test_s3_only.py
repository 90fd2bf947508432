"""``pip install "sygnify[s3]"`` alone writes a Parquet dataset to S3 and reads it back.

Against a moto server, over the wire, with boto3. In the ``s3``-only session
(``SYGNIFY_EXTRA_ONLY=s3``: sygnify[s3] and pytest, nothing else) it also checks that no
other extra's packages (pandas, which only the test extra brings, above all) are there.
"""

from __future__ import annotations

import uuid

import boto3
import polars as pl
import pyarrow as pa
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.s3.connector import S3Connector
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.moto import MotoServer, moto_server
from tests.extras._only import check_alone, for_extras, only_extra

pytestmark = pytest.mark.emulator

moto, server = emulator_fixtures(
    for_extras(moto_server), "moto server could not be installed or started", session="extras_moto"
)
KEYS = {"access_key_id": "testing", "secret_access_key": "testing-secret"}


@pytest.mark.skipif(only_extra() != "s3", reason="only in the s3-only environment")
def test_the_environment_holds_the_s3_extra_alone() -> None:
    check_alone("s3")


def test_write_and_read_back_a_parquet_dataset_with_the_s3_extra(server: MotoServer) -> None:
    bucket = f"sygnify-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEYS["access_key_id"],
        aws_secret_access_key=KEYS["secret_access_key"],
    ).create_bucket(Bucket=bucket)
    with CloudDataConnector(environ={}) as connector:
        lake = connector.connect(
            "s3", bucket=bucket, endpoint_url=server.endpoint, region="us-east-1", **KEYS
        )
        assert isinstance(lake, S3Connector)
        data = pl.DataFrame({"region": ["eu", "us", "eu"], "amount": [1.0, 2.0, 3.0]})
        lake.write(data, "sales/", partition_by=["region"])
        totals = lake.scan("sales/").group_by("region").agg(pl.col("amount").sum()).sort("region").collect()
        assert totals.to_dicts() == [{"region": "eu", "amount": 4.0}, {"region": "us", "amount": 2.0}]
        table = pa.Table.from_batches(list(lake.stream(f"s3://{bucket}/sales/", columns=["amount"])))
        assert sorted(table.column("amount").to_pylist()) == [1.0, 2.0, 3.0]
