"""IoT sensor monitoring end to end: Redis stream → windowed aggregation → anomaly model → alerts.

Simulated sensors publish temperature/vibration/pressure readings (plus one corrupt message)
to a Redis stream. :meth:`RealTimeML.stream <sygnify.ml.realtime.RealTimeML.stream>` in
``aggregation`` mode reads it, aggregates 10-second tumbling windows per sensor
(``Tumbling(10)`` on the readings' event time, ``Aggregate(by="sensor", ...)``), and scores
each window with an anomaly model (how far the window's mean temperature is from the
press's normal operating temperature, in tolerances). Each table of scored windows goes
to the alert rules whole (:meth:`AlertManager.observe_table`, the cool-down on event time);
the source's batches are acknowledged only once their windows were scored and alerted on,
and Prometheus metrics count what the source read and dead-lettered.

    python examples/iot_monitoring_example.py [redis://127.0.0.1:6379/0]
    python examples/iot_monitoring_example.py --offline    # the same readings from memory, no server
"""

from __future__ import annotations

import contextlib
import json
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
from prometheus_client import CollectorRegistry

from sygnify.ml.realtime import RealTimeML
from sygnify.monitoring import (
    Alert,
    AlertManager,
    AnomalyScore,
    CallbackAlertSink,
    LogAlertSink,
    PrometheusMetrics,
    Threshold,
)
from sygnify.processing import Aggregate
from sygnify.streams.windows import Tumbling

SCHEMA = pa.schema(
    [
        ("sensor", pa.string()),
        ("ts", pa.timestamp("ms")),
        ("temperature", pa.float64()),
        ("vibration", pa.float64()),
        ("pressure", pa.float64()),
    ]
)
SENSORS = ["press-1", "press-2", "press-3"]
SECONDS = 900
START_MS = 1_700_000_000_000
WINDOW_S = 10
OVERHEAT_FROM_S = 700  # press-2's cooling fan fails here
NORMAL_TEMPERATURE, TOLERANCE = 61.0, 1.0  # the presses' operating range, from their data sheet


def readings(seed: int = 7) -> list[dict[str, Any]]:
    """One reading per sensor per second; press-2 overheats from ``OVERHEAT_FROM_S``."""
    rng = np.random.default_rng(seed)
    rows = []
    for second in range(SECONDS):
        for index, sensor in enumerate(SENSORS):
            temperature = 60 + index + rng.normal(0, 0.8)
            if sensor == "press-2" and second >= OVERHEAT_FROM_S:
                temperature += 12  # a failing cooling fan
            rows.append(
                {
                    "sensor": sensor,
                    "ts": START_MS + second * 1000,
                    "temperature": temperature,
                    "vibration": abs(rng.normal(0.3, 0.05)),
                    "pressure": 101.3 + rng.normal(0, 0.2),
                }
            )
    return rows


def publish(client: Any, stream: str, rows: list[dict[str, Any]]) -> int:
    """Put the readings on a Redis stream as JSON, then one garbled frame; returns the count."""
    pipe = client.pipeline(transaction=False)
    for reading in rows:
        pipe.xadd(stream, {"data": json.dumps(reading)})
    pipe.xadd(stream, {"data": b"\x00garbled frame"})
    pipe.execute()
    return len(rows) + 1


def in_memory(rows: list[dict[str, Any]], per_batch: int = 300) -> Iterator[pa.Table]:
    """The readings as Arrow tables of ``per_batch`` rows (100 s each), as a source would read them."""
    for start in range(0, len(rows), per_batch):
        yield pa.Table.from_pylist(rows[start : start + per_batch], schema=SCHEMA)


def model() -> RealTimeML:
    ml = RealTimeML()
    ml.register(
        "temperature-deviation",
        backend="callable",
        fn=lambda X: np.abs(X[:, 0] - NORMAL_TEMPERATURE) / TOLERANCE,
        features=["temperature"],
        # the windows also carry vibration, pressure and readings, which this model does not use
        extra_features="ignore",
    )
    return ml


def main(url: str | None = "redis://127.0.0.1:6379/0") -> dict[str, Any]:
    """Run the pipeline on Redis at ``url``, or on in-memory batches when ``url`` is None."""
    metrics = PrometheusMetrics(registry=CollectorRegistry()).install()
    alerts: list[Alert] = []
    manager = AlertManager(
        [
            AnomalyScore("temperature-anomaly", field="prediction", threshold=6.0, labels=("sensor",)),
            Threshold("overpressure", field="pressure", above=104.0, labels=("sensor",)),
        ],
        sinks=[LogAlertSink(), CallbackAlertSink(alerts.append)],
        cooldown=600,  # seconds of event time (time="window_start" below): one alert per incident
    )
    options: dict[str, Any] = {
        "mode": "aggregation",
        "window": Tumbling(WINDOW_S),
        "time": "ts",
        "aggregate": Aggregate(
            by="sensor",
            temperature=("temperature", "mean"),
            vibration=("vibration", "max"),
            pressure=("pressure", "mean"),
            readings=("temperature", "len"),
        ),
    }
    windows = rows = 0
    client, stream = None, f"iot-{uuid.uuid4().hex[:8]}"
    opened: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    try:
        ml = model()
        if url is None:
            predictions = ml.stream(in_memory(readings()), model="temperature-deviation", **options)
        else:
            import redis

            from sygnify.streams.redis import RedisSource

            client = redis.Redis.from_url(url)
            publish(client, stream, readings())
            source = RedisSource(url=url, stream=stream, group="iot", consumer="worker-1", schema=SCHEMA)
            opened = source
            # idle_timeout: the demo ends once the stream is drained and its last windows closed
            predictions = ml.stream(
                source, model="temperature-deviation", idle_timeout=1.0, max_records=300, **options
            )
        with opened:
            for scored in predictions:  # one table per batch of closed windows
                manager.observe_table(scored, time="window_start")
                windows += scored.num_rows
                rows += int(pa.compute.sum(scored.column("readings")).as_py() or 0)
        dead = metrics.value("sygnify_source_dead_letters_total", source="redis") or 0
        summary = {
            "rows": rows,
            "dead_letters": int(dead),
            "windows": windows,
            "alerts": [(a.rule, a.labels.get("sensor"), a.at) for a in alerts],
            "records_metric": metrics.value("sygnify_source_records_total", source="redis"),
        }
        print(f"rows: {rows}, windows: {windows}, dead letters: {int(dead)}")
        for alert in alerts:
            print(f"ALERT {alert.rule}: {alert.message}")
        return summary
    finally:
        metrics.uninstall()
        if client is not None:
            client.delete(stream)
            client.close()


if __name__ == "__main__":
    arguments = sys.argv[1:2]
    main(None if arguments == ["--offline"] else (arguments or ["redis://127.0.0.1:6379/0"])[0])
