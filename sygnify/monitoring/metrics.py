"""Prometheus metrics for connectors, LargeDataHandler, models and stream sources.

:class:`PrometheusMetrics` subscribes to :mod:`sygnify.events`, so nothing in the
data path knows about Prometheus. Give it its own ``CollectorRegistry`` (as here) or let it
use the process-wide default one, then expose it with :func:`serve_metrics` or
:meth:`PrometheusMetrics.exposition`::

    >>> from prometheus_client import CollectorRegistry
    >>> from sygnify import events
    >>> metrics = PrometheusMetrics(registry=CollectorRegistry()).install()
    >>> events.emit("model.prediction", model="iris", version="v1", rows=3, latency_s=0.004,
    ...             outcome="ok", error=None)
    >>> metrics.value("sygnify_model_predictions_total", model="iris", version="v1", outcome="ok")
    3.0
    >>> metrics.uninstall()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from sygnify.errors import ConfigurationError

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from prometheus_client.exposition import start_http_server
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        "sygnify.monitoring.metrics needs prometheus-client: pip install 'sygnify[monitoring]'"
    ) from exc

from sygnify import events

__all__ = ["BREAKER_STATE_VALUES", "MetricsServer", "PrometheusMetrics", "serve_metrics"]

#: How ``sygnify_breaker_state`` encodes a breaker's state.
BREAKER_STATE_VALUES: Mapping[str, float] = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _text(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


class PrometheusMetrics:
    """Prometheus counters, gauges and histograms fed by sygnify's declared events (:mod:`sygnify.events`).

    Metrics (all prefixed ``sygnify_``): ``connector_calls_total``, ``connector_errors_total``,
    ``connector_call_duration_seconds``, ``connector_retries_total``, ``breaker_state``
    (0 closed, 1 half-open, 2 open); ``handler_rows_total`` (direction in/out),
    ``handler_chunks_total``, ``handler_throughput_rows_per_second``,
    ``handler_peak_memory_bytes``; ``model_predictions_total`` (rows), ``model_requests_total``,
    ``model_errors_total``, ``model_latency_seconds``, ``model_retries_total``; ``source_records_total``,
    ``source_dead_letters_total``, ``source_reconnects_total``, ``source_acks_total``.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, namespace: str = "sygnify") -> None:
        self.registry = registry if registry is not None else REGISTRY
        r, ns = self.registry, namespace
        self.connector_calls = Counter(
            "connector_calls",
            "Connector calls",
            ["connector", "operation", "outcome"],
            namespace=ns,
            registry=r,
        )
        self.connector_errors = Counter(
            "connector_errors",
            "Connector calls that failed",
            ["connector", "error"],
            namespace=ns,
            registry=r,
        )
        self.connector_duration = Histogram(
            "connector_call_duration_seconds",
            "Connector call duration",
            ["connector", "operation"],
            namespace=ns,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.connector_retries = Counter(
            "connector_retries", "Retried connector calls", ["connector", "error"], namespace=ns, registry=r
        )
        self.breaker_state = Gauge(
            "breaker_state",
            "Circuit breaker state (0 closed, 1 half-open, 2 open)",
            ["breaker"],
            namespace=ns,
            registry=r,
        )
        self.handler_rows = Counter(
            "handler_rows", "Rows through LargeDataHandler", ["mode", "direction"], namespace=ns, registry=r
        )
        self.handler_chunks = Counter(
            "handler_chunks", "Chunks processed", ["mode"], namespace=ns, registry=r
        )
        self.handler_throughput = Gauge(
            "handler_throughput_rows_per_second",
            "Rows per second of the last run",
            ["mode"],
            namespace=ns,
            registry=r,
        )
        self.handler_memory = Gauge(
            "handler_peak_memory_bytes", "Peak memory of the last run", ["mode"], namespace=ns, registry=r
        )
        self.model_predictions = Counter(
            "model_predictions", "Rows predicted", ["model", "version", "outcome"], namespace=ns, registry=r
        )
        self.model_requests = Counter(
            "model_requests", "Prediction calls", ["model", "version", "outcome"], namespace=ns, registry=r
        )
        self.model_errors = Counter(
            "model_errors", "Failed prediction calls", ["model", "version", "error"], namespace=ns, registry=r
        )
        self.model_latency = Histogram(
            "model_latency_seconds",
            "Prediction call latency",
            ["model", "version"],
            namespace=ns,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.source_records = Counter("source_records", "Records read", ["source"], namespace=ns, registry=r)
        self.source_dead_letters = Counter(
            "source_dead_letters",
            "Poison messages sent to dead-letter targets",
            ["source"],
            namespace=ns,
            registry=r,
        )
        self.source_reconnects = Counter(
            "source_reconnects", "Source reconnects", ["source"], namespace=ns, registry=r
        )
        self.source_acks = Counter(
            "source_acks", "Messages acknowledged", ["source"], namespace=ns, registry=r
        )
        self.model_retries = Counter(
            "model_retries", "Retried remote model calls", ["model", "error"], namespace=ns, registry=r
        )
        self._handlers: dict[events.EventName, Callable[[Mapping[str, Any]], None]] = {
            "connector.call": self._connector_call,
            "connector.retry": self._connector_retry,
            "breaker.state": self._breaker_state,
            "handler.chunk": self._handler_chunk,
            "handler.finish": self._handler_finish,
            "model.prediction": self._model_prediction,
            "model.retry": lambda f: self.model_retries.labels(f["model"], _text(f["error"])).inc(),
            "source.read": self._source_read,
            "source.reconnect": lambda f: self.source_reconnects.labels(f["source"]).inc(),
            "source.ack": lambda f: self.source_acks.labels(f["source"]).inc(f["messages"]),
        }
        self._unsubscribe: Callable[[], None] | None = None
        self._lock = threading.Lock()

    # -- event wiring -----------------------------------------------------------------------
    def install(self) -> PrometheusMetrics:
        """Start listening to its events (idempotent); returns self."""
        with self._lock:
            if self._unsubscribe is None:
                self._unsubscribe = events.subscribe(self.handle, events=list(self._handlers))
        return self

    def uninstall(self) -> None:
        """Stop listening (the collected values stay)."""
        with self._lock:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None

    def handle(self, event: str, fields: Mapping[str, Any]) -> None:
        """Update metrics for one event (events without a metric are ignored)."""
        handler = self._handlers.get(event)  # type: ignore[call-overload]
        if handler is not None:
            handler(fields)

    # -- event handlers (payloads as declared in sygnify.events.EVENTS) --------------------
    def _connector_call(self, f: Mapping[str, Any]) -> None:
        connector, operation, outcome = f["connector"], f["operation"], f["outcome"]
        self.connector_calls.labels(connector, operation, outcome).inc()
        if outcome != "ok":
            self.connector_errors.labels(connector, _text(f["error"], "unknown")).inc()
        self.connector_duration.labels(connector, operation).observe(float(f["duration_s"]))

    def _connector_retry(self, f: Mapping[str, Any]) -> None:
        self.connector_retries.labels(f["name"], _text(f["error"], "unknown")).inc()

    def _breaker_state(self, f: Mapping[str, Any]) -> None:
        self.breaker_state.labels(f["breaker"]).set(BREAKER_STATE_VALUES.get(f["new"], -1.0))

    def _handler_chunk(self, f: Mapping[str, Any]) -> None:
        mode = f["mode"]
        self.handler_chunks.labels(mode).inc()
        self.handler_rows.labels(mode, "in").inc(f["rows_in"])
        self.handler_rows.labels(mode, "out").inc(f["rows_out"])

    def _handler_finish(self, f: Mapping[str, Any]) -> None:
        mode, duration = f["mode"], float(f["duration_s"])
        self.handler_throughput.labels(mode).set(f["rows_in"] / duration if duration > 0 else 0.0)
        self.handler_memory.labels(mode).set(float(f["peak_memory"]))

    def _model_prediction(self, f: Mapping[str, Any]) -> None:
        model, version, outcome = f["model"], f["version"], f["outcome"]
        self.model_requests.labels(model, version, outcome).inc()
        self.model_predictions.labels(model, version, outcome).inc(f["rows"])
        if outcome != "ok":
            self.model_errors.labels(model, version, _text(f["error"], "unknown")).inc()
        self.model_latency.labels(model, version).observe(float(f["latency_s"]))

    def _source_read(self, f: Mapping[str, Any]) -> None:
        # Poison messages are counted here; ``source.dead_letter`` reports the same letters
        # once they reached their target, so it has no metric of its own.
        self.source_records.labels(f["source"]).inc(f["rows"])
        if f["dead_letters"]:
            self.source_dead_letters.labels(f["source"]).inc(f["dead_letters"])

    # -- reading ----------------------------------------------------------------------------
    def value(self, name: str, **labels: str) -> float | None:
        """The current value of a sample (``..._total``, ``..._count``...), or None."""
        result = self.registry.get_sample_value(name, labels)
        return None if result is None else float(result)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return bytes(generate_latest(self.registry))


class MetricsServer:
    """A running ``/metrics`` HTTP endpoint; ``close()`` stops it."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server, self._thread = server, thread
        self.host, self.port = server.server_address[0], int(server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_metrics(
    metrics: PrometheusMetrics | None = None, *, port: int = 9464, host: str = "127.0.0.1"
) -> MetricsServer:
    """Serve the metrics registry over HTTP (``port=0`` picks a free port).

    Binds to loopback by default; pass ``host="0.0.0.0"`` to expose it to a scraper elsewhere.
    ``with serve_metrics(metrics, port=0) as server: print(server.url)``
    """
    registry = metrics.registry if metrics is not None else REGISTRY
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port}: {exc}", resource=f"{host}:{port}"
        ) from exc
    return MetricsServer(server, thread)
