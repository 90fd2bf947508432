"""SIGKILL at every request of an S3 dataset write (moto server), then read and rerun.

A dataset write on S3 is a sequence of HTTP requests: list the dataset, PUT each part, PUT
the commit object, then (after an ``overwrite``) list again and DELETE what it replaced. The
writer runs in a child process whose every request is counted at the wire
(``botocore``'s HTTP session); a first run counts them, then for each request ``N`` the same
write starts from the same state and is SIGKILLed just before request ``N`` is sent, and
again just after its answer arrived (the answer lost with the process). After each kill:

* a reader sees the old data or the new data, whole, never a mix and never nothing;
* rerunning the write gives the new data exactly once, and no part of the killed attempt is
  left in the listing (the rerun's clean-up removes what the kill stranded).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.s3.connector import S3Connector
from sygnify.io.commits import LOG_DIR, is_part_name
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.moto import MotoServer, moto_server

pytestmark = pytest.mark.emulator

moto, server = emulator_fixtures(moto_server, "moto server could not be installed or started", session="moto")

REPO = Path(__file__).resolve().parents[3]

WRITER = textwrap.dedent(
    """
    import json, os, signal, sys
    import botocore.httpsession
    import polars as pl
    from sygnify import CloudDataConnector

    endpoint, bucket, prefix, kill_at, when, partitioned = sys.argv[1:7]
    kill_at = int(kill_at)
    sent = 0
    original = botocore.httpsession.URLLib3Session.send

    def send(self, request):
        global sent
        sent += 1
        if sent == kill_at and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        answer = original(self, request)
        if sent == kill_at and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return answer

    botocore.httpsession.URLLib3Session.send = send
    new = pl.DataFrame({"id": list(range(600)), "k": [i % 3 for i in range(600)], "v": ["new"] * 600})
    with CloudDataConnector(environ={}) as connector:
        lake = connector.connect(
            "s3", bucket=bucket, endpoint_url=endpoint, region="us-east-1",
            access_key_id="testing", secret_access_key="testing-secret",
            retry={"max_attempts": 1},
        )
        sent = 0  # count the write's requests only
        lake.write(new, prefix, mode="overwrite", **({"partition_by": ["k"]} if partitioned == "1" else {}))
    print(json.dumps({"requests": sent}))
    """
)

OLD = pl.DataFrame({"id": list(range(400)), "k": [i % 2 for i in range(400)], "v": ["old"] * 400})
NEW = pl.DataFrame({"id": list(range(600)), "k": [i % 3 for i in range(600)], "v": ["new"] * 600})


@pytest.fixture
def bucket(server: MotoServer) -> str:
    name = f"kill-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    ).create_bucket(Bucket=name)
    return name


@pytest.fixture
def lake(server: MotoServer, bucket: str) -> Iterator[S3Connector]:
    with CloudDataConnector(environ={}) as connector:
        connection = connector.connect(
            "s3",
            bucket=bucket,
            endpoint_url=server.endpoint,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing-secret",
        )
        assert isinstance(connection, S3Connector)
        yield connection


def _write(server: MotoServer, bucket: str, prefix: str, kill_at: int, when: str, partitioned: bool) -> Any:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            WRITER,
            server.endpoint,
            bucket,
            prefix,
            str(kill_at),
            when,
            str(int(partitioned)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    if kill_at:
        assert done.returncode in (-9, 0), done.stderr[-2000:]
        return done.returncode
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["requests"]


def _rows(lake: S3Connector, prefix: str, partitioned: bool) -> pl.DataFrame:
    frame = lake.scan(prefix).collect()
    if partitioned:
        frame = frame.with_columns(pl.col("k").cast(pl.Int64))
    return frame.select("id", "k", "v").sort("id")


@pytest.mark.parametrize("partitioned", [False, True], ids=["flat", "partitioned"])
def test_an_s3_overwrite_killed_at_every_request_shows_old_or_new_never_a_mix(
    server: MotoServer, bucket: str, lake: S3Connector, partitioned: bool
) -> None:
    options: dict[str, Any] = {"partition_by": ["k"]} if partitioned else {}
    lake.write(OLD, "counted/", mode="overwrite", **options)
    total = _write(server, bucket, "counted/", 0, "never", partitioned)
    assert total >= 3  # at least: list, one part, the commit
    outcomes: dict[str, int] = {"old": 0, "new": 0}
    for kill_at in range(1, total + 1):
        for when in ("before", "after"):
            prefix = f"ds-{kill_at}-{when}/"
            lake.write(OLD, prefix, mode="overwrite", **options)
            _write(server, bucket, prefix, kill_at, when, partitioned)
            seen = _rows(lake, prefix, partitioned)
            if seen.equals(_rows_of(OLD)):
                outcomes["old"] += 1
            else:
                assert seen.equals(_rows_of(NEW)), (
                    f"killed {when} request {kill_at}: a mix of {seen.height} rows"
                )
                outcomes["new"] += 1
            # The rerun completes the write; nothing of the killed attempt stays behind.
            _write(server, bucket, prefix, 0, "never", partitioned)
            assert _rows(lake, prefix, partitioned).equals(_rows_of(NEW))
            parts = [key for key in lake.list(prefix) if is_part_name(key.rsplit("/", 1)[-1])]
            markers = [key for key in lake.list(prefix) if f"/{LOG_DIR}/" in f"/{key}"]
            assert len(markers) == 1, f"killed {when} request {kill_at}: log {markers}"
            record = json.loads(lake.get(markers[0]))["files"]
            committed = [f"{prefix}{name}" for name in record if is_part_name(name.rsplit("/", 1)[-1])]
            assert sorted(parts) == sorted(committed), (
                f"killed {when} request {kill_at}: stranded parts {sorted(set(parts) - set(committed))}"
            )
    # Kills before the commit request leave the old data, kills after it the new data.
    assert outcomes["old"] > 0
    assert outcomes["new"] > 0


def _rows_of(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("id", "k", "v").sort("id")
