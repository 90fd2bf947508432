"""IoT sensor monitoring end to end: Redis stream → windowed aggregation → anomaly model → alerts.

Simulated sensors publish temperature/vibration/pressure readings (plus one corrupt message)
to a Redis stream. A consumer reads Arrow micro-batches, aggregates 10-second tumbling windows
per sensor with Polars, scores each window with per-sensor anomaly detectors, raises alerts
(log + callback) with a cool-down, acknowledges each batch only after it was processed, and
exposes Prometheus metrics.

    python examples/iot_monitoring_example.py [redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import redis
from prometheus_client import CollectorRegistry

from sygnify.monitoring import (
    Alert,
    AlertManager,
    AnomalyScore,
    CallbackAlertSink,
    LogAlertSink,
    PrometheusMetrics,
    RollingZScore,
    Threshold,
)
from sygnify.streams.redis import RedisSource

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


def simulate(client: redis.Redis, stream: str, seed: int = 7) -> int:
    """Publish one reading per sensor per second; press-2 overheats from t=700 s."""
    rng = np.random.default_rng(seed)
    pipe = client.pipeline(transaction=False)
    for second in range(SECONDS):
        for index, sensor in enumerate(SENSORS):
            temperature = 60 + index + rng.normal(0, 0.8)
            if sensor == "press-2" and second >= 700:
                temperature += 12  # a failing cooling fan
            reading = {
                "sensor": sensor,
                "ts": START_MS + second * 1000,
                "temperature": temperature,
                "vibration": abs(rng.normal(0.3, 0.05)),
                "pressure": 101.3 + rng.normal(0, 0.2),
            }
            pipe.xadd(stream, {"data": json.dumps(reading)})
    pipe.xadd(stream, {"data": b"\x00garbled frame"})
    pipe.execute()
    return SECONDS * len(SENSORS) + 1


def window_means(batch: pa.RecordBatch) -> pl.DataFrame:
    """10-second tumbling windows per sensor (a batch may hold partial windows at its edges)."""
    return (
        pl.from_arrow(batch)
        .lazy()
        .sort("ts")
        .group_by_dynamic("ts", every="10s", group_by="sensor")
        .agg(
            pl.col("temperature").mean(),
            pl.col("vibration").max(),
            pl.col("pressure").mean(),
            pl.len().alias("readings"),
        )
        .collect()
    )


def main(url: str = "redis://127.0.0.1:6379/0") -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    stream = f"iot-{uuid.uuid4().hex[:8]}"
    metrics = PrometheusMetrics(registry=CollectorRegistry()).install()
    alerts: list[Alert] = []
    current_time = [0.0]  # the alert clock follows event time, not the wall clock
    manager = AlertManager(
        [
            AnomalyScore("temperature-anomaly", field="temperature_score", threshold=6.0, labels=("sensor",)),
            Threshold("overpressure", field="pressure", above=104.0, labels=("sensor",)),
        ],
        sinks=[LogAlertSink(), CallbackAlertSink(alerts.append)],
        cooldown=600,  # seconds of event time: one alert per sensor per incident
        clock=lambda: current_time[0],
    )
    detectors = {s: RollingZScore(window=30, threshold=6.0, min_samples=10) for s in SENSORS}
    try:
        produced = simulate(client, stream)
        source = RedisSource(url=url, stream=stream, group="iot", consumer="worker-1", schema=SCHEMA)
        windows = rows = dead = 0
        with source:
            while rows + dead < produced:
                batch = source.read(max_records=300, timeout=1.0)  # 100 s of readings per batch
                if batch is None:
                    break
                for window in window_means(batch.batch).iter_rows(named=True):
                    score = detectors[window["sensor"]].update(window["temperature"])
                    current_time[0] = window["ts"].timestamp()
                    manager.observe({**window, "temperature_score": score})
                    windows += 1
                rows += batch.batch.num_rows
                dead += len(batch.dead_letters)
                batch.ack()  # only after aggregation, scoring and alerting
        summary = {
            "rows": rows,
            "dead_letters": dead,
            "windows": windows,
            "alerts": [(a.rule, a.labels.get("sensor")) for a in alerts],
            "records_metric": metrics.value("sygnify_source_records_total", source="redis"),
        }
        print(f"rows: {rows}, windows: {windows}, dead letters: {dead}")
        for alert in alerts:
            print(f"ALERT {alert.rule}: {alert.message}")
        return summary
    finally:
        metrics.uninstall()
        client.delete(stream)
        client.close()


if __name__ == "__main__":
    main(*sys.argv[1:2])
