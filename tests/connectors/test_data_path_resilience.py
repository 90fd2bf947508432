"""The retry policy and breaker govern data reads too: faults over the wire, moto and Azurite.

A fault proxy in front of each emulator answers data GETs (never listings) with 503s; reads
through pyarrow (``stream``, ``query``, the footers ``scan`` checks) must end in about the
policy's time, with a sygnify transient or circuit-open error, and recover with the exact
rows when the outage is shorter than the policy.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pyarrow as pa
import pytest
from azure.storage.blob import BlobServiceClient

from sygnify import CloudDataConnector
from sygnify.connectors._objectstore.datasets import ObjectStoreConnector
from sygnify.errors import CircuitOpenError, TransientError
from sygnify.resilience import RetryPolicy
from tests.connectors._emulated import emulator_fixtures
from tests.connectors._fault_proxy import Fault, FaultProxy, fault_proxy
from tests.emulators.azurite import ACCOUNT_KEY, ACCOUNT_NAME, AzuriteServer, azurite_server
from tests.emulators.moto import MotoServer, moto_server

pytestmark = pytest.mark.emulator

RETRY = {"max_attempts": 4, "initial_delay": 0.05, "max_delay": 0.2, "jitter": 0.0}
POLICY = RetryPolicy(**RETRY)  # type: ignore[arg-type]
#: generous: three times the policy's backoff, plus a second per attempt for the requests themselves
TIME_BOUND = 3 * POLICY.total_delay() + POLICY.max_attempts * 1.0
OBJECTS = 3
ROWS = 20_000

moto, s3_server = emulator_fixtures(
    moto_server, "moto server could not be installed or started", session="moto", name="s3_server"
)
azurite, azure_server = emulator_fixtures(
    azurite_server, "Azurite could not be installed or started", session="azurite", name="azure_server"
)


def _table(part: int) -> pa.Table:
    start = part * ROWS
    return pa.table(
        {"id": pa.array(range(start, start + ROWS), pa.int64()), "v": [float(i) for i in range(ROWS)]}
    )


@pytest.fixture(params=["s3", "azure_blob"])
def store(request: pytest.FixtureRequest, connector: CloudDataConnector) -> Iterator[tuple[Any, FaultProxy]]:
    """A connection through a fault proxy, with OBJECTS parquet objects under ``tx/``."""
    breaker = {"failure_threshold": 5, "reset_timeout": 3600}
    if request.param == "s3":
        server: MotoServer = request.getfixturevalue("s3_server")
        bucket = f"sygnify-{uuid.uuid4().hex[:12]}"
        boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing-secret",
        ).create_bucket(Bucket=bucket)
        upstream = server.endpoint
        with fault_proxy(upstream) as proxy:
            connection = connector.connect(
                "s3",
                bucket=bucket,
                endpoint_url=proxy.url,
                region="us-east-1",
                access_key_id="testing",
                secret_access_key="testing-secret",
                retry=RETRY,
                breaker=breaker,
                tables={"tx": "tx/", "big": "big/"},
            )
            yield _filled(connection), proxy
    else:
        azure: AzuriteServer = request.getfixturevalue("azure_server")
        container = f"sygnify-{uuid.uuid4().hex[:12]}"
        BlobServiceClient.from_connection_string(azure.connection_string).create_container(container)
        with fault_proxy(f"http://{azure.host}:{azure.port}") as proxy:
            connection = connector.connect(
                "azure_blob",
                container=container,
                account_url=f"{proxy.url}/{ACCOUNT_NAME}",
                account_name=ACCOUNT_NAME,
                account_key=ACCOUNT_KEY,
                retry=RETRY,
                breaker=breaker,
                tables={"tx": "tx/", "big": "big/"},
            )
            yield _filled(connection), proxy


def _filled(connection: Any) -> Any:
    assert isinstance(connection, ObjectStoreConnector)
    for part in range(OBJECTS):
        connection.write(_table(part), f"tx/part-{part}.parquet")
    return connection


def _data_get(method: str, path: str) -> bool:
    """A GET of an object's bytes (not a listing, not container properties)."""
    return method == "GET" and "list-type" not in path and "comp=" not in path and "restype=" not in path


def _after_first(key: str) -> Callable[[str, str], bool]:
    """GETs of ``key`` after its first one (the footer read when the dataset opens)."""
    seen = [0]

    def matches(method: str, path: str) -> bool:
        if not (_data_get(method, path) and key in path):
            return False
        seen[0] += 1
        return seen[0] > 1

    return matches


def _fault(connection: Any) -> Fault:
    return "s3_slowdown" if connection.type_name == "s3" else "azure_busy"


def _expected() -> pa.Table:
    return pa.concat_tables([_table(part) for part in range(OBJECTS)])


READS: dict[str, Callable[[Any], object]] = {
    "stream": lambda connection: list(connection.stream("tx/", batch_size=1000)),
    "query": lambda connection: connection.query("SELECT id, v FROM tx"),
    "scan": lambda connection: connection.scan("tx/").collect(),
}


@pytest.mark.parametrize("read", ["stream", "query", "scan"])
def test_a_persistent_outage_of_data_reads_ends_in_the_policys_time(
    store: tuple[Any, FaultProxy], read: str
) -> None:
    connection, proxy = store
    proxy.clear()
    READS[read](connection)  # how many data GETs the read makes when the store answers
    requests = max(OBJECTS, sum(1 for method, path in proxy.seen if _data_get(method, path)))
    proxy.clear()
    proxy.inject(_fault(connection), times=None, when=_data_get)
    started = time.perf_counter()
    with pytest.raises((TransientError, CircuitOpenError)):
        READS[read](connection)
    elapsed = time.perf_counter() - started
    assert elapsed < TIME_BOUND, f"{read} took {elapsed:.1f} s (bound {TIME_BOUND:.1f} s)"
    gets = sum(1 for method, path in proxy.seen if _data_get(method, path))
    # Each request of a pyarrow/SDK read is tried max_attempts times at most. Polars retries its
    # range requests on its own and re-issues some while it fails: bounded in time (above) and
    # in requests, but not to the policy's count.
    bound = POLICY.max_attempts * requests * (5 if read == "scan" else 1)
    assert gets <= bound, f"{read} sent {gets} data GETs ({requests} when answered)"


def test_an_outage_in_the_middle_of_a_stream_ends_in_the_policys_time(store: tuple[Any, FaultProxy]) -> None:
    connection, proxy = store
    proxy.clear()
    proxy.inject(_fault(connection), times=None, when=_after_first("part-1.parquet"))
    started = time.perf_counter()
    rows: list[int] = []

    def read() -> None:
        rows.extend(batch.num_rows for batch in connection.stream("tx/", batch_size=1000))

    with pytest.raises((TransientError, CircuitOpenError)):
        read()
    assert time.perf_counter() - started < TIME_BOUND
    assert sum(rows) <= ROWS  # what came before the failing object, never a duplicate
    # Azure's SDK filesystem retries each GET (in pyarrow's threads) inside the stream's own
    # retries; the breaker (threshold 5) cuts that short: at most attempts x attempts.
    assert proxy.count("GET", "part-1.parquet") <= 1 + POLICY.max_attempts**2


@pytest.mark.parametrize("failures", [1, 3])
def test_a_stream_resumes_after_a_short_outage_with_the_exact_rows(
    store: tuple[Any, FaultProxy], failures: int
) -> None:
    connection, proxy = store
    proxy.clear()
    proxy.inject(_fault(connection), times=failures, when=_after_first("part-1.parquet"))
    batches = list(connection.stream("tx/", batch_size=1000))
    assert proxy.rules[0].fired == failures
    assert pa.Table.from_batches(batches).equals(_expected())
    assert connection.breaker.state.value == "closed"


@pytest.mark.parametrize("read", ["query", "scan"])
def test_a_short_outage_of_data_reads_recovers_with_the_exact_rows(
    store: tuple[Any, FaultProxy], read: str
) -> None:
    connection, proxy = store
    proxy.clear()
    proxy.inject(_fault(connection), times=POLICY.max_attempts - 1, when=_data_get)
    result = READS[read](connection)
    table = result if isinstance(result, pa.Table) else result.to_arrow()  # type: ignore[attr-defined]
    assert proxy.rules[0].fired == POLICY.max_attempts - 1
    assert table.sort_by("id").cast(_expected().schema).equals(_expected())


def test_the_breaker_opens_in_a_get_only_outage_and_then_fails_fast(store: tuple[Any, FaultProxy]) -> None:
    connection, proxy = store
    proxy.clear()
    proxy.inject(_fault(connection), times=None, when=_data_get)
    connection.breaker.failure_threshold = 3  # below max_attempts: one failing read opens it
    # Each attempt to open the dataset lists the prefix (that succeeds) and then fails on a
    # footer GET: the nested listing must not reset the count of the failing outer read.
    with pytest.raises((TransientError, CircuitOpenError)):
        list(connection.stream("tx/"))
    assert connection.breaker.state.value == "open"
    before = len(proxy.seen)
    started = time.perf_counter()
    with pytest.raises(CircuitOpenError):
        connection.query("SELECT count(*) FROM tx")
    with pytest.raises(CircuitOpenError):
        connection.get("tx/part-0.parquet")
    assert time.perf_counter() - started < 1.0
    assert len(proxy.seen) == before  # an open breaker sends nothing


def test_collecting_a_scan_in_an_outage_is_a_sygnify_error_that_counts_on_the_breaker(
    store: tuple[Any, FaultProxy],
) -> None:
    connection, proxy = store
    proxy.clear()
    frame = connection.scan("tx/")  # opened while the store answers
    connection.breaker.failure_threshold = 2
    proxy.inject(_fault(connection), times=None, when=_data_get)
    for _ in range(2):
        started = time.perf_counter()
        with pytest.raises(TransientError):
            frame.select("id").collect()
        assert time.perf_counter() - started < TIME_BOUND
    assert connection.breaker.state.value == "open"
    before = len(proxy.seen)
    with pytest.raises(CircuitOpenError):
        frame.collect()
    assert len(proxy.seen) == before


def test_a_limit_query_over_one_large_object_reads_its_first_row_groups_only(
    store: tuple[Any, FaultProxy],
) -> None:
    import io

    import pyarrow.parquet as pq

    connection, proxy = store
    table = pa.table(
        {"id": pa.array(range(400_000), pa.int64()), "v": pa.array(range(400_000), pa.float64())}
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=20_000)  # 20 row groups
    connection.put("big/one.parquet", buffer.getvalue())
    proxy.clear()
    rows = connection.query("SELECT * FROM big LIMIT 5")
    assert rows.num_rows == 5
    size = len(buffer.getvalue())
    if connection.type_name == "s3":  # pyarrow's S3 reads: the first row groups only
        assert proxy.bytes_out < 0.4 * size, f"{proxy.bytes_out} of {size} bytes"
    else:  # Azure reads go in part_size blocks through the SDK: the object once, never again
        assert proxy.bytes_out < 1.2 * size, f"{proxy.bytes_out} of {size} bytes"
    assert connection.query("SELECT count(*) AS n, sum(id) AS s FROM big").to_pylist() == [
        {"n": 400_000, "s": sum(range(400_000))}
    ]
