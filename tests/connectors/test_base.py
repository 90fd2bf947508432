"""BaseConnector's shared machinery, without any service: per-call resilience and stream errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pyarrow as pa
import pytest

from sygnify.config import ConnectorConfig
from sygnify.connectors.base import BaseConnector
from sygnify.errors import ConnectionFailedError, DataQualityError, SygnifyError, ThrottledError
from sygnify.resilience import Resilience


class _Stub(BaseConnector[ConnectorConfig]):
    type_name = "stub"

    def _check_health(self) -> str:
        return "ok"

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        return ConnectionFailedError(f"stub {operation} failed: {exc}", resource=resource)


@pytest.fixture
def stub() -> _Stub:
    config = ConnectorConfig.model_validate({"retry": {"max_attempts": 3, "initial_delay": 0, "jitter": 0}})
    return _Stub(config, name="s")


def _batches(fail_after: int, error: Exception) -> Iterator[pa.RecordBatch]:
    for i in range(fail_after):
        yield pa.record_batch({"i": [i]})
    raise error


def test_translate_stream_translates_mid_stream_errors(stub: _Stub) -> None:
    stream = stub._translate_stream(_batches(2, OSError("reset")), "src")
    assert [next(stream).column("i")[0].as_py() for _ in range(2)] == [0, 1]
    with pytest.raises(ConnectionFailedError, match="stub stream failed: reset") as caught:
        next(stream)
    assert caught.value.resource == "src"
    assert isinstance(caught.value.__cause__, OSError)


def test_translate_stream_lets_sygnify_errors_through(stub: _Stub) -> None:
    original = DataQualityError("bad row", resource="src")
    with pytest.raises(DataQualityError) as caught:
        list(stub._translate_stream(_batches(1, original), "src"))
    assert caught.value is original


def test_call_uses_the_resilience_passed_for_that_call(stub: _Stub) -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        raise OSError("down")

    with pytest.raises(ConnectionFailedError):
        stub._call("op", flaky)
    assert len(attempts) == 3  # the connection's policy retries transient errors

    attempts.clear()
    throttled_only = Resilience(
        retry=dataclasses.replace(stub._resilience.retry, retry_on=(ThrottledError,)),
        breaker=stub.breaker,
    )
    with pytest.raises(ConnectionFailedError):
        stub._call("op", flaky, resilience=throttled_only)
    assert len(attempts) == 1
