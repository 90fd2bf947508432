from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.services import require
from tests.streams.backends import port_open

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iot_monitoring_example.py"


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return runpy.run_path(str(EXAMPLE))


def expected(example: dict[str, Any]) -> tuple[int, int, list[tuple[str, str, float]]]:
    """Rows and windows the simulation makes, and the one alert its overheating press deserves."""
    sensors, seconds, window = example["SENSORS"], example["SECONDS"], example["WINDOW_S"]
    # the first window wholly after the fan failed is the first whose mean is far off
    overheat_window = example["START_MS"] / 1000 + example["OVERHEAT_FROM_S"] // window * window
    return (
        seconds * len(sensors),
        seconds // window * len(sensors),
        [("temperature-anomaly", "press-2", overheat_window)],
    )


def test_iot_example_end_to_end_against_redis(example: dict[str, Any]) -> None:
    require(port_open(6379), "redis server on 127.0.0.1:6379")
    rows, windows, alerts = expected(example)
    summary = example["main"]("redis://127.0.0.1:6379/0")
    assert summary["rows"] == rows == 2700  # the readings counted inside the windows
    assert summary["dead_letters"] == 1  # the garbled frame
    assert summary["windows"] == windows == 270
    assert summary["alerts"] == alerts  # once, thanks to the cool-down
    assert summary["records_metric"] == rows


def test_iot_example_offline_scores_the_same_windows(example: dict[str, Any]) -> None:
    rows, windows, alerts = expected(example)
    summary = example["main"](None)
    assert (summary["rows"], summary["windows"], summary["dead_letters"]) == (rows, windows, 0)
    assert summary["alerts"] == alerts
    assert summary["records_metric"] is None  # no source read anything: no Redis


def test_the_windows_are_the_readings_aggregated_per_sensor(example: dict[str, Any]) -> None:
    # brute force over the simulated readings vs what the library's aggregation mode scored
    readings = example["readings"]()
    window_ms = example["WINDOW_S"] * 1000
    ml = example["model"]()
    tables = list(
        ml.stream(
            example["in_memory"](readings),
            model="temperature-deviation",
            mode="aggregation",
            window=example["Tumbling"](example["WINDOW_S"]),
            time="ts",
            aggregate=example["Aggregate"](by="sensor", temperature=("temperature", "mean")),
        )
    )
    scored = {(r["sensor"], r["window_start"]): r for t in tables for r in t.to_pylist()}
    groups: dict[tuple[str, float], list[float]] = {}
    for r in readings:
        start = (r["ts"] - r["ts"] % window_ms) / 1000
        groups.setdefault((r["sensor"], start), []).append(r["temperature"])
    assert scored.keys() == groups.keys()
    for key, temperatures in groups.items():
        mean = float(np.mean(temperatures))
        assert scored[key]["temperature"] == pytest.approx(mean)
        assert scored[key]["prediction"] == pytest.approx(
            abs(mean - example["NORMAL_TEMPERATURE"]) / example["TOLERANCE"]
        )
