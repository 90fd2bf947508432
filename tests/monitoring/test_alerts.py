"""Alert rules, de-duplication with an injected clock, and sinks (a real local webhook)."""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from sygnify.errors import ConfigurationError, ConnectionFailedError, SchemaError
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
    Rule,
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


# -- whole tables -----------------------------------------------------------------------------
def readings(rows: int = 4000, seed: int = 3, *, gaps: bool = True) -> pa.Table:
    """Sensor readings with spikes, jumps, repeated times, null labels and (if ``gaps``) nulls/NaNs."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.choice([0.0, 0.5, 1.0, 2.5], size=rows))  # some rows share a time
    temp = 60 + rng.normal(0, 6, rows)
    pressure = 101 + np.cumsum(rng.normal(0, 1.2, rows)) / 10 + rng.choice([0, 0, 0, 8], size=rows)
    sensor: list[str | None] = [str(s) for s in rng.choice(["a", "b", "c"], size=rows)]
    pressure_values: list[float | None] = pressure.tolist()
    if gaps:
        for i in rng.choice(rows, size=rows // 50, replace=False):
            sensor[i] = None
        for i in rng.choice(rows, size=rows // 40, replace=False):
            pressure_values[i] = None
        for i in rng.choice(rows, size=rows // 80, replace=False):
            pressure_values[i] = float("nan")
    return pa.table(
        {
            "sensor": sensor,
            "line": rng.integers(1, 3, rows),
            "temp": temp,
            "pressure": pa.array(pressure_values, pa.float64()),
            "score": rng.exponential(0.6, rows),
            "t": t,
        }
    )


def rules() -> list[Rule]:
    return [
        Threshold("range", field="temp", above=72, below=48, labels=("sensor",)),
        RateOfChange("jump", field="pressure", max_per_second=4.0, labels=("sensor", "line")),
        AnomalyScore("anomaly", field="score", threshold=3.0),  # no labels: one key for all rows
        Threshold("range", field="pressure", above=108, labels=("sensor",)),  # shares keys with the first
        BreakerOpen(),  # an event rule: a readings table holds no events
    ]


def row_by_row(table: pa.Table, cooldown: float, *, time: str | None = "t") -> tuple[list[Alert], int]:
    clock, fired = Clock(), list[Alert]()
    manager = AlertManager(rules(), sinks=[CallbackAlertSink(fired.append)], cooldown=cooldown, clock=clock)
    for row in table.to_pylist():
        if time is not None:
            clock.now = float(row[time])
        manager.observe(row)
    return fired, manager.suppressed


def by_table(
    table: Any, cooldown: float, *, time: str | None = "t", slices: int = 1
) -> tuple[list[Alert], list[Alert], int]:
    fired = list[Alert]()
    manager = AlertManager(rules(), sinks=[CallbackAlertSink(fired.append)], cooldown=cooldown, clock=Clock())
    returned: list[Alert] = []
    bounds = np.linspace(0, len(table), slices + 1).astype(int)
    for start, stop in itertools.pairwise(bounds):
        returned += manager.observe_table(table[start:stop], time=time)
    return fired, returned, manager.suppressed


@pytest.mark.parametrize("cooldown", [0.0, 30.0, 200.0])
@pytest.mark.parametrize("slices", [1, 7])
def test_table_fires_what_row_by_row_fires(cooldown: float, slices: int) -> None:
    table = readings()
    expected, suppressed = row_by_row(table, cooldown)
    fired, returned, table_suppressed = by_table(table, cooldown, slices=slices)
    assert len(expected) > 50
    assert {a.rule for a in expected} == {"range", "jump", "anomaly"}
    assert [a.to_dict() for a in fired] == [a.to_dict() for a in expected]
    assert returned == fired
    assert table_suppressed == suppressed
    if cooldown:
        assert suppressed > 0


def test_table_matches_rows_when_time_goes_back_and_forth() -> None:
    table = readings(2000, seed=11)
    shuffled = np.random.default_rng(5).permutation(table.column("t").to_numpy())
    table = table.set_column(table.schema.get_field_index("t"), "t", pa.array(shuffled))
    expected, suppressed = row_by_row(table, 40.0)
    fired, _, table_suppressed = by_table(table, 40.0, slices=3)
    assert len(expected) > 10
    assert [a.to_dict() for a in fired] == [a.to_dict() for a in expected]
    assert table_suppressed == suppressed


def test_without_time_every_row_is_observed_at_one_clock_reading() -> None:
    table = readings(3000, seed=2)
    expected, suppressed = row_by_row(table, 60.0, time=None)
    fired, _, table_suppressed = by_table(table, 60.0, time=None)
    assert [a.to_dict() for a in fired] == [a.to_dict() for a in expected]
    assert table_suppressed == suppressed
    assert {a.at for a in fired} == {0.0}


def test_timestamp_time_column_counts_seconds_since_the_epoch() -> None:
    table = readings(1500, seed=4)
    millis = (table.column("t").to_numpy() * 1000).astype("int64") + 1_700_000_000_000
    stamped = table.append_column("ts", pa.array(millis, pa.timestamp("ms")))
    as_seconds = table.append_column("ts", pa.array(millis / 1000.0))
    fired, _, _ = by_table(stamped, 30.0, time="ts")
    expected, _ = row_by_row(as_seconds, 30.0, time="ts")
    assert len(fired) > 10
    assert [a.to_dict() for a in fired] == [a.to_dict() for a in expected]


@pytest.mark.parametrize("kind", ["batch", "polars", "pandas", "dicts"])
def test_every_table_kind_fires_the_same_alerts(kind: str) -> None:
    table = readings(2500, seed=9, gaps=False)
    data: Any
    if kind == "batch":
        data = table.combine_chunks().to_batches()[0]
    elif kind == "polars":
        data = pl.from_arrow(table)
    elif kind == "pandas":
        data = table.to_pandas()
    else:
        data = table.to_pylist()
    expected, suppressed = row_by_row(table, 30.0)
    manager_fired = list[Alert]()
    manager = AlertManager(rules(), sinks=[CallbackAlertSink(manager_fired.append)], cooldown=30.0)
    manager.observe_table(data, time="t")
    assert len(expected) > 20
    assert [a.to_dict() for a in manager_fired] == [a.to_dict() for a in expected]
    assert manager.suppressed == suppressed


def test_a_rule_with_only_check_works_on_tables_row_by_row() -> None:
    class Even(Rule):
        def check(self, observation: Any, now: float) -> Alert | None:
            n = observation.get("n")
            return self._alert(observation, f"{n} is even", n, now) if n % 2 == 0 else None

    fired = list[Alert]()
    manager = AlertManager(
        [Even("even", labels=("k",))], sinks=[CallbackAlertSink(fired.append)], cooldown=3, clock=Clock()
    )
    manager.observe_table([{"k": "x", "n": n, "t": float(n)} for n in range(10)], time="t")
    assert [(a.value, a.at) for a in fired] == [(0, 0.0), (4, 4.0), (8, 8.0)]
    assert manager.suppressed == 2


def test_bad_tables_raise_schema_errors_naming_rule_and_column() -> None:
    manager = AlertManager(rules(), sinks=[CallbackAlertSink(lambda a: None)], clock=Clock())
    table = readings(10)
    with pytest.raises(SchemaError, match="'jump' reads column 'pressure', which the table lacks"):
        manager.observe_table(table.drop_columns(["pressure"]))
    text = table.set_column(2, "temp", pa.array([str(v) for v in table.column("temp").to_pylist()]))
    with pytest.raises(SchemaError, match="'range' compares column 'temp' with numbers, but it holds string"):
        manager.observe_table(text)
    flags = table.set_column(4, "score", pa.array([True] * 10))
    with pytest.raises(SchemaError, match="column 'score' with numbers, but it holds bool"):
        manager.observe_table(flags)
    with pytest.raises(SchemaError, match="time column 'when' is not in the table"):
        manager.observe_table(table, time="when")
    with pytest.raises(SchemaError, match="time column 'sensor' holds string"):
        manager.observe_table(table, time="sensor")
    holes = table.set_column(5, "t", pa.array([None, *table.column("t").to_pylist()[1:]], pa.float64()))
    with pytest.raises(SchemaError, match="time column 't' has nulls or NaNs"):
        manager.observe_table(holes, time="t")
    with pytest.raises(SchemaError, match="each key must hold one type"):
        manager.observe_table([{"temp": 1.0}, {"temp": "hot"}])
    with pytest.raises(SchemaError, match="each key must hold one type"):
        manager.observe_table([{"temp": 1.0, "drift": object()}])
    with pytest.raises(ConfigurationError, match="not dict"):
        manager.observe_table({"temp": [1.0]})
    assert manager.observe_table([]) == []
    # nothing ran: a bad table moves no rule's state and counts nothing
    assert manager.suppressed == 0
