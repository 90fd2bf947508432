from __future__ import annotations

import runpy
from pathlib import Path

from tests.services import require
from tests.streams.backends import port_open

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iot_monitoring_example.py"


def test_iot_example_end_to_end_against_redis() -> None:
    require(port_open(6379), "redis server on 127.0.0.1:6379")
    main = runpy.run_path(str(EXAMPLE))["main"]
    summary = main("redis://127.0.0.1:6379/0")
    assert summary["rows"] == 2700
    assert summary["dead_letters"] == 1
    assert summary["windows"] == 270
    assert summary["alerts"] == [("temperature-anomaly", "press-2")]  # once, thanks to the cool-down
    assert summary["records_metric"] == 2700
