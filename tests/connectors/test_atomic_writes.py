"""Dataset writes are all or nothing on local, S3 (moto) and Azure (Azurite).

Faults are injected over the wire at every request of a write in turn (a 500, or a request
the store carries out whose answer is lost), and writer processes are SIGKILLed at random
points; after each, sygnify's readers must see the old data or all of the new data, never
part of it, and a retried write (same ``write_id``) must not duplicate rows.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest
from azure.storage.blob import BlobServiceClient

from sygnify import CloudDataConnector
from sygnify.errors import NotFoundError, SygnifyError
from sygnify.io.commits import LOG_DIR
from tests.connectors._emulated import emulator_fixtures
from tests.connectors._fault_proxy import FaultProxy, fault_proxy
from tests.connectors.azure_blob.test_azure_blob import key_options
from tests.connectors.s3.test_s3 import base_options
from tests.emulators import REPO
from tests.emulators.azurite import AzuriteServer, azurite_server
from tests.emulators.moto import MotoServer, moto_server

moto, s3_server = emulator_fixtures(
    moto_server, "moto server could not be installed or started", session="moto", name="s3_server"
)
azurite, azure_server = emulator_fixtures(
    azurite_server, "Azurite could not be installed or started", session="azurite", name="azure_server"
)


@pytest.fixture
def bucket(s3_server: MotoServer) -> str:
    name = f"atomic-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    ).create_bucket(Bucket=name)
    return name


@pytest.fixture
def container(azure_server: AzuriteServer) -> str:
    name = f"atomic-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azure_server.connection_string).create_container(name)
    return name


pytestmark = pytest.mark.emulator

ROWS = 1_000
REGIONS = ["eu", "us", "apac", "latam", "mea"]  # five partitions: five part objects a write
NO_RETRY = {"max_attempts": 1}


def batch(number: int, rows: int = ROWS) -> pa.Table:
    return pa.table(
        {
            "batch": pa.array([number] * rows, pa.int64()),
            "region": [REGIONS[i % len(REGIONS)] for i in range(rows)],
            "v": pa.array(range(rows), pa.int64()),
        }
    )


def batches_seen(connection: Any, target: str) -> Counter[int]:
    """Rows per batch that ``stream()`` and ``scan()`` see (they must agree)."""
    streamed = pa.Table.from_batches(list(connection.stream(target)))
    scanned = connection.scan(target).collect()
    by_stream = Counter(streamed.column("batch").to_pylist())
    assert Counter(scanned["batch"].to_list()) == by_stream
    return by_stream


def nth_request(n: int) -> Callable[[str, str], bool]:
    """A fault-proxy matcher true for the ``n``-th request it sees (from 1)."""
    seen = itertools.count(1)
    return lambda method, path: next(seen) == n


@pytest.fixture(params=["s3", "azure_blob"])
def stores(
    request: pytest.FixtureRequest, connector: CloudDataConnector
) -> Iterator[tuple[Any, Any, FaultProxy]]:
    """(a clean connection, the same store through a fault proxy without retries, the proxy)."""
    if request.param == "s3":
        server: MotoServer = request.getfixturevalue("s3_server")
        name = request.getfixturevalue("bucket")
        with fault_proxy(server.endpoint) as proxy:
            clean = connector.connect("s3", name="clean", bucket=name, **base_options(server.endpoint))
            options = {**base_options(proxy.url), "retry": NO_RETRY}
            flaky = connector.connect(
                "s3", name="flaky", bucket=name, breaker={"failure_threshold": 10_000}, **options
            )
            yield clean, flaky, proxy
    else:
        azure: AzuriteServer = request.getfixturevalue("azure_server")
        name = request.getfixturevalue("container")
        upstream = f"http://{azure.host}:{azure.port}"
        with fault_proxy(upstream) as proxy:
            clean = connector.connect(
                "azure_blob", name="clean", container=name, **key_options(azure.endpoint)
            )
            options = {**key_options(f"{proxy.url}/{azure.endpoint.rsplit('/', 1)[-1]}"), "retry": NO_RETRY}
            flaky = connector.connect(
                "azure_blob", name="flaky", container=name, breaker={"failure_threshold": 10_000}, **options
            )
            yield clean, flaky, proxy


@pytest.mark.parametrize("mode", ["append", "overwrite"])
@pytest.mark.parametrize("fault", ["http_500", "lost_response"])
def test_a_fault_at_any_request_of_a_write_shows_all_of_it_or_none(
    stores: tuple[Any, Any, FaultProxy], mode: str, fault: Any
) -> None:
    clean, flaky, proxy = stores
    old, new = batch(1), batch(2)
    expected_after = {"append": Counter({1: ROWS, 2: ROWS}), "overwrite": Counter({2: ROWS})}[mode]
    failures = 0
    for n in itertools.count(1):
        target = f"t-{mode}-{fault}-{n}/"
        clean.write(old, target, partition_by=["region"])
        proxy.clear()
        rule = proxy.inject(fault, when=nth_request(n))
        write_id = f"{target}-write"
        try:
            flaky.write(new, target, mode=mode, partition_by=["region"], write_id=write_id)
        except SygnifyError:
            failures += 1
        seen = batches_seen(clean, target)
        assert seen in (Counter({1: ROWS}), expected_after), f"request {n} ({fault}): partial write {seen}"
        # The same write again, without faults: exactly one copy of it.
        proxy.clear()
        flaky.write(new, target, mode=mode, partition_by=["region"], write_id=write_id)
        assert batches_seen(clean, target) == expected_after, f"request {n}: retry duplicated or lost"
        if rule.fired == 0:  # the write has fewer requests than n: every request was faulted once
            break
    # Five parts, the partition types and the commit fail the write when faulted; a lost
    # answer to the commit does not (the commit is found), nor does a fault in the cleanup.
    assert n > 7
    assert failures >= 6


def test_a_failed_write_leaves_no_parts_behind(stores: tuple[Any, Any, FaultProxy]) -> None:
    clean, flaky, proxy = stores
    clean.write(batch(1), "gone/", partition_by=["region"])
    before = set(clean.list("gone/"))
    proxy.inject("http_500", when=lambda method, path: method == "PUT" and "_sygnify_log" in path)
    with pytest.raises(SygnifyError):
        flaky.write(batch(2), "gone/", partition_by=["region"])
    assert set(clean.list("gone/")) == before
    assert batches_seen(clean, "gone/") == Counter({1: ROWS})


def test_an_overwrite_removes_what_it_replaced(stores: tuple[Any, Any, FaultProxy]) -> None:
    clean, _, _ = stores
    clean.write(batch(1), "ow/", partition_by=["region"])
    clean.write(batch(2), "ow/")
    result = clean.write(batch(3), "ow/", mode="overwrite", partition_by=["region"])
    data_keys = [key for key in clean.list("ow/") if "/_" not in key]
    assert sorted(data_keys) == sorted(result.paths)
    assert len([key for key in clean.list("ow/") if LOG_DIR in key]) == 1
    assert batches_seen(clean, "ow/") == Counter({3: ROWS})


def test_readers_of_one_partition_and_of_globs_honour_the_log(stores: tuple[Any, Any, FaultProxy]) -> None:
    clean, flaky, proxy = stores
    clean.write(batch(1), "gl/", partition_by=["region"])
    proxy.inject("http_500", when=lambda method, path: method == "PUT" and "_sygnify_log" in path)
    with pytest.raises(SygnifyError):
        flaky.write(batch(2), "gl/", partition_by=["region"])
    # An uncommitted part left behind (as a SIGKILLed writer would leave it) stays invisible.
    proxy.clear()
    stray = f"gl/region=eu/part-00000-{uuid.uuid4().hex}.parquet"
    clean.write(batch(9, 10).drop_columns(["region"]), stray)
    for source in ("gl/region=eu/", "gl/region=*/*.parquet", "gl/**/*.parquet"):
        rows = pa.Table.from_batches(list(clean.stream(source)))
        assert set(rows.column("batch").to_pylist()) == {1}, source


# -- local: faults at every file operation, SIGKILL at random points ----------------------


def test_local_write_with_a_failure_at_every_file_shows_all_or_none(
    connector: CloudDataConnector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sygnify.connectors.local.writes as local_writes

    lake = connector.connect("local", root=tmp_path, retry=NO_RETRY)
    real_put = local_writes.DirectoryFiles.put
    for n in itertools.count(1):
        target = f"t{n}/"
        lake.write(batch(1), target, partition_by=["region"])
        calls = itertools.count(1)
        fired: list[str] = []

        def put(
            self: Any, path: str, write: Any, n: int = n, calls: Any = calls, fired: list[str] = fired
        ) -> None:
            if next(calls) == n:
                fired.append(path)
                raise OSError(28, "No space left on device")
            real_put(self, path, write)

        monkeypatch.setattr(local_writes.DirectoryFiles, "put", put)
        try:
            lake.write(batch(2), target, mode="overwrite", partition_by=["region"])
            succeeded = True
        except SygnifyError:
            succeeded = False
        assert succeeded == (not fired)
        monkeypatch.setattr(local_writes.DirectoryFiles, "put", real_put)
        assert batches_seen(lake, target) == Counter({1: ROWS} if fired else {2: ROWS})
        if not fired:
            break
    assert n == 8  # five parts, the partition types, the commit, then a write without faults


WRITER = textwrap.dedent(
    """
    import json, sys
    import pyarrow as pa
    from sygnify import CloudDataConnector
    kind, options, target, mode = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
    first = int(sys.argv[5])
    lake = CloudDataConnector().connect(kind, **options)
    regions = ["eu", "us", "apac", "latam", "mea"]
    print("ready", flush=True)
    for number in range(first, first + 10_000):
        table = pa.table({"batch": [number] * 5000, "region": [regions[i % 5] for i in range(5000)],
                          "v": list(range(5000))})
        lake.write(table, target, mode=mode, partition_by=["region"])
        print(number, flush=True)
    """
)


def kill_writers(kind: str, options: dict[str, Any], mode: str, rounds: int, seed: int) -> list[int]:
    """Run a writer ``rounds`` times, SIGKILLed at a random point each time; returns, per
    round, (writes it reported done, of which the last was still running or not)."""
    rng = random.Random(seed)
    done: list[int] = []
    for round_ in range(rounds):
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                kind,
                json.dumps(options),
                "ds/",
                mode,
                str(100_000 * (round_ + 1)),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 1.5))
        process.send_signal(signal.SIGKILL)
        lines = process.stdout.read().split()
        process.wait()
        done.append(len(lines))
    return done


def check_after_kills(lake: Any, mode: str, reported: list[int]) -> None:
    try:
        seen = batches_seen(lake, "ds/")
    except NotFoundError:  # killed before any write committed
        seen = Counter()
    assert all(rows == 5000 for rows in seen.values()), f"a torn write is visible: {seen}"
    if mode == "append":  # every write reported done is there once; a killed one at most once
        finished = sum(reported)
        assert finished <= len(seen) <= finished + len(reported)
    else:
        assert len(seen) <= 1


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_local_writers_killed_at_random_points_leave_whole_writes(
    connector: CloudDataConnector, tmp_path: Path, mode: str
) -> None:
    seed = random.randrange(1 << 30)
    reported = kill_writers("local", {"root": str(tmp_path)}, mode, rounds=4, seed=seed)
    lake = connector.connect("local", root=tmp_path)
    check_after_kills(lake, mode, reported)
    assert sum(reported) > 0, f"seed {seed}: no write finished before a kill"


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_s3_writers_killed_at_random_points_leave_whole_writes(
    connector: CloudDataConnector, s3_server: MotoServer, bucket: str, mode: str
) -> None:
    seed = random.randrange(1 << 30)
    options = {"bucket": bucket, **base_options(s3_server.endpoint)}
    reported = kill_writers("s3", options, mode, rounds=3, seed=seed)
    lake = connector.connect("s3", **options)
    check_after_kills(lake, mode, reported)


# -- write options and the handler's reads ------------------------------------------------


def check_write_options(lake: Any, read_bytes: Callable[[str], bytes]) -> None:
    import io

    import pyarrow.parquet as pq

    from sygnify.errors import ConfigurationError

    table = batch(7, rows=20_000)
    result = lake.write(table, "opts/", compression="zstd", row_group_size=1_000, max_file_size="100KB")
    assert len(result.paths) > 1  # split by size
    for path in result.paths:
        metadata = pq.ParquetFile(io.BytesIO(read_bytes(path))).metadata
        assert metadata.row_group(0).column(0).compression == "ZSTD"
        assert metadata.row_group(0).num_rows <= 1_000
    assert batches_seen(lake, "opts/") == Counter({7: 20_000})
    with pytest.raises(ConfigurationError, match="compression"):
        lake.write(table, "bad/", compression="zip")
    with pytest.raises(ConfigurationError, match="max_file_size"):
        lake.write(table, "bad/", max_file_size="lots")
    with pytest.raises(ConfigurationError, match="row_group_size"):
        lake.write(table, "bad/", row_group_size=0)


def test_write_options_shape_the_files_on_object_stores(stores: tuple[Any, Any, FaultProxy]) -> None:
    clean, _, _ = stores
    check_write_options(clean, clean.get)


def test_write_options_shape_the_files_locally(connector: CloudDataConnector, tmp_path: Path) -> None:
    lake = connector.connect("local", root=tmp_path)
    check_write_options(lake, lambda path: (tmp_path / path).read_bytes())


def test_the_handler_reads_committed_data_only(
    connector: CloudDataConnector, tmp_path: Path, s3_server: MotoServer, bucket: str
) -> None:
    import pyarrow.fs as pafs

    from sygnify import LargeDataHandler
    from sygnify.processing import FileSource

    s3 = connector.connect("s3", bucket=bucket, **base_options(s3_server.endpoint))
    local = connector.connect("local", root=tmp_path)
    filesystem = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing-secret",
        endpoint_override=s3_server.endpoint.removeprefix("http://"),
        scheme="http",
        region="us-east-1",
    )
    for lake in (s3, local):
        lake.write(batch(1), "h/", partition_by=["region"])
        lake.write(batch(2), "h/", mode="overwrite", partition_by=["region"])
        # A part no commit names (a writer killed mid-write) and an old file left behind.
        lake.write(
            batch(3, 10).drop_columns(["region"]), f"h/region=eu/part-00000-{uuid.uuid4().hex}.parquet"
        )
    sources = {
        "s3 dir": (f"s3://{bucket}/h/", filesystem),
        "s3 partition": (f"s3://{bucket}/h/region=eu/", filesystem),
        "local dir": (str(tmp_path / "h"), None),
        "local glob": (str(tmp_path / "h" / "*" / "*.parquet"), None),
    }
    for name, (path, fs) in sources.items():
        result = LargeDataHandler().process(
            FileSource(path, filesystem=fs), transform=lambda f: f.select("batch")
        )
        assert result.output is not None
        assert set(result.output["batch"].to_list()) == {2}, name
        assert result.rows_in == ROWS or "partition" in name


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_azure_writers_killed_at_random_points_leave_whole_writes(
    connector: CloudDataConnector, azure_server: AzuriteServer, container: str, mode: str
) -> None:
    seed = random.randrange(1 << 30)
    options = {"container": container, **key_options(azure_server.endpoint)}
    reported = kill_writers("azure_blob", options, mode, rounds=3, seed=seed)
    lake = connector.connect("azure_blob", **options)
    check_after_kills(lake, mode, reported)


# -- globs over partitioned datasets --------------------------------------------------------


def check_glob_partitions(lake: Any) -> None:
    """The documented snippet: a partitioned write read back through globs keeps its partitions."""
    lake.write(batch(1, rows=10), "gp/", partition_by=["region"])
    for source in ("gp/", "gp/**/*.parquet", "gp/region=*/*.parquet", "gp/region=eu/*.parquet"):
        frame = lake.scan(source).collect()
        streamed = pa.Table.from_batches(list(lake.stream(source)))
        assert "region" in frame.columns, source
        assert "region" in streamed.column_names, source
        expected = {"eu"} if "region=eu" in source else set(REGIONS)
        assert set(frame["region"].to_list()) == expected, source
        assert set(streamed.column("region").to_pylist()) == expected, source


def test_globs_over_a_partitioned_dataset_have_its_partition_columns(
    stores: tuple[Any, Any, FaultProxy],
) -> None:
    clean, _, _ = stores
    check_glob_partitions(clean)


def test_local_globs_over_a_partitioned_dataset_have_its_partition_columns(
    connector: CloudDataConnector, tmp_path: Path
) -> None:
    from sygnify import LargeDataHandler
    from sygnify.processing import FileSource

    lake = connector.connect("local", root=tmp_path)
    check_glob_partitions(lake)
    result = LargeDataHandler().process(FileSource(str(tmp_path / "gp" / "**" / "*.parquet")))
    assert result.output is not None
    assert set(result.output["region"].to_list()) == set(REGIONS)
