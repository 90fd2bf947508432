"""Alert rules on a table: ``AlertManager.observe`` row by row vs ``observe_table`` at once.

Run: ``python benchmarks/bench_alerts.py --rows 100000 --rounds 9``. Sensor readings (four
sensors, two lines) go through five rules (two thresholds, a rate of change per sensor and
line, an anomaly score, a breaker rule) with a 60 s cool-down, in two scenarios: *some*
alerts (limits outside normal readings; the fastest pressure changes cross the rate limit) and
*frequent* ones (limits inside the noise, so most rows fire and the cool-down suppresses
most). Row by row reads the rows as dicts (``table.to_pylist()``, included in its time, as a
consumer of Arrow batches would); both paths run once per round, rounds interleaved, and the
table gives medians with the spread (min-max) over rounds. Each round checks that both paths
sent the same alerts.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import pyarrow as pa

from sygnify.monitoring import (
    Alert,
    AlertManager,
    AnomalyScore,
    BreakerOpen,
    CallbackAlertSink,
    RateOfChange,
    Rule,
    Threshold,
)


def readings(rows: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "sensor": rng.choice(["s1", "s2", "s3", "s4"], size=rows),
            "line": rng.integers(1, 3, rows),
            "temperature": 60 + rng.normal(0, 3, rows),
            "pressure": 101 + rng.normal(0, 0.5, rows),
            "score": rng.exponential(1.0, rows),
            "t": np.arange(rows) * 0.1,
        }
    )


def rules(frequent: bool) -> list[Rule]:
    hot, rate, score = (61.0, 5.0, 1.0) if frequent else (70.0, 6.0, 9.0)
    return [
        Threshold("hot", field="temperature", above=hot, labels=("sensor",)),
        Threshold("pressure", field="pressure", above=104.0, below=98.0, labels=("sensor",)),
        RateOfChange("jump", field="pressure", max_per_second=rate, labels=("sensor", "line")),
        AnomalyScore("anomaly", field="score", threshold=score, labels=("sensor",)),
        BreakerOpen(),
    ]


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def row_by_row(table: pa.Table, frequent: bool) -> tuple[float, list[dict[str, Any]]]:
    fired: list[Alert] = []
    clock = Clock()
    manager = AlertManager(rules(frequent), sinks=[CallbackAlertSink(fired.append)], cooldown=60, clock=clock)
    started = time.perf_counter()
    for row in table.to_pylist():
        clock.now = row["t"]
        manager.observe(row)
    return time.perf_counter() - started, [a.to_dict() for a in fired]


def whole_table(table: pa.Table, frequent: bool) -> tuple[float, list[dict[str, Any]]]:
    fired: list[Alert] = []
    manager = AlertManager(rules(frequent), sinks=[CallbackAlertSink(fired.append)], cooldown=60)
    started = time.perf_counter()
    manager.observe_table(table, time="t")
    return time.perf_counter() - started, [a.to_dict() for a in fired]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    table = readings(args.rows)
    times: dict[tuple[str, str], list[float]] = {}
    alerts: dict[str, int] = {}
    for _ in range(args.rounds):
        for scenario in ("some", "frequent"):
            slow, expected = row_by_row(table, scenario == "frequent")
            fast, fired = whole_table(table, scenario == "frequent")
            if fired != expected:
                raise SystemExit(f"{scenario}: observe_table sent other alerts than observe row by row")
            times.setdefault((scenario, "row by row"), []).append(slow)
            times.setdefault((scenario, "table"), []).append(fast)
            alerts[scenario] = len(fired)
    print(f"rows: {args.rows:,}, rules: 5, rounds: {args.rounds} (interleaved; medians, min-max)")
    print("| scenario | alerts sent | path | median ms | min-max ms | rows/s | speed-up |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for scenario in ("some", "frequent"):
        base = statistics.median(times[(scenario, "row by row")])
        for path in ("row by row", "table"):
            runs = times[(scenario, path)]
            median = statistics.median(runs)
            print(
                f"| {scenario} | {alerts[scenario]:,} | {path} | {median * 1e3:,.1f} | "
                f"{min(runs) * 1e3:,.1f}-{max(runs) * 1e3:,.1f} | {args.rows / median:,.0f} | "
                f"{base / median:.1f}x |"
            )


if __name__ == "__main__":
    main()
