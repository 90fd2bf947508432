"""Prometheus metrics from declared events, and a real scrape of the HTTP endpoint."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx
import pytest
from prometheus_client import CollectorRegistry

from sygnify import events
from sygnify.config import ConnectorConfig
from sygnify.errors import ConnectionFailedError
from sygnify.monitoring import PrometheusMetrics, serve_metrics
from sygnify.streams.base import BaseSource, RawMessage


@pytest.fixture
def metrics() -> Iterator[PrometheusMetrics]:
    installed = PrometheusMetrics(registry=CollectorRegistry()).install()
    yield installed
    installed.uninstall()


def test_connector_calls_errors_and_durations(metrics: PrometheusMetrics) -> None:
    events.emit(
        "connector.call",
        connector="s3",
        name="lake",
        operation="query",
        outcome="ok",
        error=None,
        duration_s=0.02,
    )
    events.emit(
        "connector.call",
        connector="s3",
        name="lake",
        operation="query",
        outcome="error",
        error="NotFoundError",
        duration_s=0.5,
    )
    assert (
        metrics.value("sygnify_connector_calls_total", connector="s3", operation="query", outcome="ok") == 1
    )
    assert metrics.value("sygnify_connector_errors_total", connector="s3", error="NotFoundError") == 1
    assert (
        metrics.value("sygnify_connector_call_duration_seconds_count", connector="s3", operation="query") == 2
    )


def test_retries_and_breaker_state_from_a_real_resilience_policy(metrics: PrometheusMetrics) -> None:
    resilience = ConnectorConfig.model_validate(
        {"retry": {"max_attempts": 2, "initial_delay": 0, "jitter": 0}, "breaker": {"failure_threshold": 2}}
    ).resilience("lake")

    def failing() -> None:
        raise ConnectionFailedError("reset")

    with pytest.raises(ConnectionFailedError):
        resilience.call(failing)
    retries = metrics.value(
        "sygnify_connector_retries_total", connector="lake", error="ConnectionFailedError"
    )
    assert retries is not None
    assert retries >= 1
    assert metrics.value("sygnify_breaker_state", breaker="lake") == 2.0  # open


def test_handler_rows_chunks_throughput_and_memory(metrics: PrometheusMetrics) -> None:
    for _ in range(3):
        events.emit("handler.chunk", mode="chunked", rows_in=100, rows_out=90, duration_s=0.01)
    events.emit(
        "handler.finish",
        mode="chunked",
        rows_in=300,
        rows_out=270,
        duration_s=2.0,
        chunks=3,
        errors=0,
        peak_memory=1_000_000,
    )
    assert metrics.value("sygnify_handler_chunks_total", mode="chunked") == 3
    assert metrics.value("sygnify_handler_rows_total", mode="chunked", direction="in") == 300
    assert metrics.value("sygnify_handler_rows_total", mode="chunked", direction="out") == 270
    assert metrics.value("sygnify_handler_throughput_rows_per_second", mode="chunked") == 150
    assert metrics.value("sygnify_handler_peak_memory_bytes", mode="chunked") == 1e6


def test_model_predictions_errors_and_latency_histogram(metrics: PrometheusMetrics) -> None:
    for latency in (0.002, 0.004, 0.3):
        events.emit(
            "model.prediction", model="m", version="v1", rows=10, latency_s=latency, outcome="ok", error=None
        )
    events.emit(
        "model.prediction",
        model="m",
        version="v1",
        rows=5,
        latency_s=1.0,
        outcome="error",
        error="ModelError",
    )
    assert metrics.value("sygnify_model_predictions_total", model="m", version="v1", outcome="ok") == 30
    assert metrics.value("sygnify_model_errors_total", model="m", version="v1", error="ModelError") == 1
    assert metrics.value("sygnify_model_latency_seconds_count", model="m", version="v1") == 4
    assert metrics.value("sygnify_model_latency_seconds_bucket", model="m", version="v1", le="0.005") == 2


def test_model_retries_and_source_reconnects(metrics: PrometheusMetrics) -> None:
    events.emit("model.retry", model="iris", attempt=1, error="TransientError", delay_s=0.1)
    events.emit("source.reconnect", source="orders", attempt=1, error="TransientError", delay_s=0.1)
    assert metrics.value("sygnify_model_retries_total", model="iris", error="TransientError") == 1
    assert metrics.value("sygnify_source_reconnects_total", source="orders") == 1


def test_metrics_listen_only_to_the_events_they_count(metrics: PrometheusMetrics) -> None:
    seen: list[str] = []
    metrics.handle = lambda event, fields: seen.append(event)  # type: ignore[method-assign]
    metrics.uninstall()
    metrics.install()  # subscribes the replaced handle, with the event filter
    events.emit("source.dead_letter", source="orders", messages=1)  # counted from source.read
    events.emit("source.ack", source="orders", messages=1)
    assert seen == ["source.ack"]


class _ListSource(BaseSource):
    name = "list"

    def __init__(self, payloads: list[bytes]) -> None:
        super().__init__()
        self.payloads = payloads

    def _fetch(self, max_records: int, timeout: float) -> list[RawMessage]:
        taken, self.payloads = self.payloads[:max_records], self.payloads[max_records:]
        return [RawMessage(p, {"i": i}) for i, p in enumerate(taken)]

    def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
        pass


def test_source_records_dead_letters_and_acks(metrics: PrometheusMetrics) -> None:
    batch = _ListSource([b'{"x": 1}', b'{"x": 2}', b"oops"]).read()
    assert batch is not None
    batch.ack()
    assert metrics.value("sygnify_source_records_total", source="list") == 2
    assert metrics.value("sygnify_source_dead_letters_total", source="list") == 1
    assert metrics.value("sygnify_source_acks_total", source="list") == 3


def test_scrape_the_http_endpoint(metrics: PrometheusMetrics) -> None:
    events.emit(
        "model.prediction", model="iris", version="v2", rows=4, latency_s=0.01, outcome="ok", error=None
    )
    with serve_metrics(metrics, port=0) as server:
        response = httpx.get(server.url, timeout=10)
    assert response.status_code == 200
    assert "text/plain" in response.headers["content-type"]
    assert 'sygnify_model_predictions_total{model="iris",outcome="ok",version="v2"} 4.0' in response.text
    assert "# TYPE sygnify_model_latency_seconds histogram" in response.text


def test_uninstalled_metrics_stop_counting(metrics: PrometheusMetrics) -> None:
    metrics.uninstall()
    events.emit("handler.chunk", mode="m", rows_in=1, rows_out=1, duration_s=0.0)
    assert metrics.value("sygnify_handler_chunks_total", mode="m") is None
    assert b"sygnify_handler_chunks_total{" not in metrics.exposition()
