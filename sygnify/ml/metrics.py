"""Per-model metrics: counts, errors, a latency histogram and throughput.

Kept in plain Python (a few increments per call) so the single-record path stays cheap;
``snapshot()`` computes percentiles from the histogram on demand. Every call is also sent
to :mod:`sygnify.events` as ``model.prediction`` for exporters such as Prometheus.

    >>> now = [0.0]
    >>> m = ModelMetrics(clock=lambda: now[0])
    >>> m.record(rows=10, latency_s=0.002, ok=True); now[0] = 2.0
    >>> m.record(rows=10, latency_s=0.004, ok=False)
    >>> snap = m.snapshot()
    >>> snap["count"], snap["errors"], snap["throughput_rows_per_s"]
    (20, 1, 10.0)
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LATENCY_BUCKETS_S", "ModelMetrics"]

#: upper bounds (seconds) of the latency histogram buckets; the last one is +inf
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    math.inf,
)


class ModelMetrics:
    """Counters for one model version (thread-safe)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.calls = 0
        self.count = 0
        self.errors = 0
        self.latency_sum = 0.0
        self.buckets = [0] * len(LATENCY_BUCKETS_S)
        self.first_at: float | None = None
        self.last_at: float | None = None

    def record(self, *, rows: int, latency_s: float, ok: bool) -> None:
        now = self._clock()
        index = bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)
        with self._lock:
            self.calls += 1
            self.count += rows
            if not ok:
                self.errors += 1
            self.latency_sum += latency_s
            self.buckets[index] += 1
            if self.first_at is None:
                self.first_at = now
            self.last_at = now

    def quantile(self, q: float) -> float:
        """The latency quantile ``q`` (upper bound of the histogram bucket it falls in)."""
        total = sum(self.buckets)
        if not total:
            return 0.0
        rank = q * total
        seen = 0
        for bound, n in zip(LATENCY_BUCKETS_S, self.buckets):
            seen += n
            if seen >= rank:
                return bound
        return LATENCY_BUCKETS_S[-1]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            elapsed = (self.last_at or 0.0) - (self.first_at or 0.0)
            return {
                "calls": self.calls,
                "count": self.count,
                "errors": self.errors,
                "error_rate": self.errors / self.calls if self.calls else 0.0,
                "latency_mean_s": self.latency_sum / self.calls if self.calls else 0.0,
                "latency_p50_s": self.quantile(0.5),
                "latency_p99_s": self.quantile(0.99),
                "latency_histogram": dict(zip(LATENCY_BUCKETS_S, self.buckets)),
                "throughput_rows_per_s": self.count / elapsed if elapsed > 0 else 0.0,
            }
