"""Alert rules, de-duplication with an injected clock, and sinks (a real local webhook)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import numpy as np
import polars as pl
import pytest

from sygnify.errors import ConfigurationError, ConnectionFailedError
from sygnify.monitoring import (
    Alert,
    AlertManager,
    AlertSink,
    AnomalyScore,
    BreakerOpen,
    CallbackAlertSink,
    DriftDetected,
    DriftDetector,
    LogAlertSink,
    RateOfChange,
    Threshold,
    WebhookAlertSink,
)
from sygnify.resilience import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_threshold_fires_above_and_below_with_labels() -> None:
    rule = Threshold("range", field="t", above=10, below=0, labels=("sensor",))
    assert rule.check({"t": 5, "sensor": "a"}, 0) is None
    high = rule.check({"t": 11, "sensor": "a"}, 1)
    low = rule.check({"t": -1, "sensor": "b"}, 2)
    assert high is not None
    assert high.labels == {"sensor": "a"}
    assert high.value == 11
    assert low is not None
    assert "below" in low.message
    assert rule.check({"other": 1}, 3) is None
    with pytest.raises(ConfigurationError):
        Threshold("nothing", field="t")


def test_cooldown_deduplicates_per_rule_and_labels() -> None:
    clock, fired = Clock(), list[Alert]()
    manager = AlertManager(
        [Threshold("hot", field="t", above=50, labels=("sensor",))],
        sinks=[CallbackAlertSink(fired.append)],
        cooldown=30,
        clock=clock,
    )
    manager.observe({"sensor": "a", "t": 60})
    manager.observe({"sensor": "a", "t": 61})  # duplicate within cool-down
    manager.observe({"sensor": "b", "t": 70})  # other labels: its own alert
    clock.now = 29.9
    manager.observe({"sensor": "a", "t": 62})
    clock.now = 30.0
    manager.observe({"sensor": "a", "t": 63})
    assert [(a.labels["sensor"], a.value, a.at) for a in fired] == [
        ("a", 60, 0.0),
        ("b", 70, 0.0),
        ("a", 63, 30.0),
    ]
    assert manager.suppressed == 2


def test_rate_of_change_uses_the_clock_between_observations() -> None:
    clock, fired = Clock(), list[Alert]()
    manager = AlertManager(
        [RateOfChange("jump", field="p", max_per_second=2, labels=("sensor",))],
        sinks=[CallbackAlertSink(fired.append)],
        clock=clock,
    )
    for t, p in [(0, 100), (1, 101), (2, 103), (3, 110)]:
        clock.now = t
        manager.observe({"sensor": "s", "p": p})
    assert [a.value for a in fired] == [7.0]


def test_drift_and_anomaly_rules() -> None:
    gen = np.random.default_rng(0)
    detector = DriftDetector(pl.DataFrame({"x": gen.normal(0, 1, 3000)}))
    fired: list[Alert] = []
    manager = AlertManager(
        [DriftDetected(), AnomalyScore("anomaly", threshold=4.0)],
        sinks=[CallbackAlertSink(fired.append)],
        cooldown=0,
    )
    manager.observe({"drift": detector.compare(pl.DataFrame({"x": gen.normal(0, 1, 3000)}))})
    manager.observe({"drift": detector.compare(pl.DataFrame({"x": gen.normal(2, 1, 3000)}))})
    manager.observe({"anomaly_score": 1.0})
    manager.observe({"anomaly_score": 6.5})
    assert [(a.rule, a.message) for a in fired] == [
        ("drift", "drift in x"),
        ("anomaly", "anomaly score 6.5 >= 4"),
    ]


def test_breaker_open_fires_from_hook_events_of_a_real_breaker() -> None:
    from sygnify.config import ConnectorConfig

    fired: list[Alert] = []
    manager = AlertManager([BreakerOpen()], sinks=[CallbackAlertSink(fired.append)]).attach_hooks()
    try:
        resilience = ConnectorConfig.model_validate(
            {"retry": {"max_attempts": 1}, "breaker": {"failure_threshold": 1}}
        ).resilience("warehouse")

        def failing() -> None:
            raise ConnectionFailedError("down")

        with pytest.raises(ConnectionFailedError):
            resilience.call(failing)
    finally:
        manager.detach_hooks()
    assert [(a.rule, a.severity, a.labels) for a in fired] == [
        ("breaker-open", "critical", {"breaker": "warehouse"})
    ]
    assert isinstance(resilience.breaker, CircuitBreaker)


def test_attached_rules_see_only_the_events_asked_for() -> None:
    from sygnify import events

    seen: list[str] = []
    manager = AlertManager(
        [Threshold("slow", field="latency_s", above=1.0, labels=("model",))],
        sinks=[CallbackAlertSink(lambda alert: seen.append(alert.message))],
    ).attach_hooks(events=["model.prediction"])
    try:
        events.emit("model.retry", model="m", attempt=1, error="TransientError", delay_s=5.0)
        events.emit(
            "model.prediction", model="m", version="1", rows=1, latency_s=2.5, outcome="ok", error=None
        )
    finally:
        manager.detach_hooks()
    assert seen == ["latency_s=2.5 above 1 (model=m)"]
    with pytest.raises(ConfigurationError, match="undeclared event"):
        AlertManager([BreakerOpen()]).attach_hooks(events=["breaker.open"])  # type: ignore[list-item]


class _Broken(AlertSink):
    def send(self, alert: Alert) -> None:
        raise RuntimeError("sink down")


def test_a_failing_sink_does_not_silence_the_others(caplog: pytest.LogCaptureFixture) -> None:
    fired: list[Alert] = []
    manager = AlertManager(
        [Threshold("hot", field="t", above=1)],
        sinks=[_Broken(), CallbackAlertSink(fired.append), LogAlertSink()],
    )
    with caplog.at_level(logging.WARNING):
        manager.observe({"t": 2})
    assert len(fired) == 1
    assert manager.sink_errors == 1
    assert "alert hot [warning]: t=2 above 1" in caplog.text


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-token", received
    server.shutdown()
    server.server_close()


def test_webhook_sink_posts_json(webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    sink = WebhookAlertSink(url)
    assert "secret-token" not in repr(sink)
    AlertManager([Threshold("hot", field="t", above=1, labels=("sensor",))], sinks=[sink]).observe(
        {"t": 5, "sensor": "s1"}
    )
    assert received == [
        {
            "rule": "hot",
            "message": "t=5 above 1 (sensor=s1)",
            "severity": "warning",
            "value": 5.0,
            "labels": {"sensor": "s1"},
            "at": received[0]["at"],
        }
    ]


def test_old_alert_sink_names_warn_and_resolve() -> None:
    import sygnify.monitoring as monitoring
    from sygnify.monitoring import alerts

    for old, new in [
        ("Sink", "AlertSink"),
        ("LogSink", "LogAlertSink"),
        ("CallbackSink", "CallbackAlertSink"),
    ]:
        with pytest.warns(DeprecationWarning, match=f"{old} is now {new}"):
            assert getattr(alerts, old) is getattr(alerts, new)
        monitoring.__dict__.pop(old, None)
        with pytest.warns(DeprecationWarning, match=new):
            assert getattr(monitoring, old) is getattr(alerts, new)
