"""Shadow traffic runs off the serving path: bounded, dropped when full, reported after a flush."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from sygnify.errors import ConfigurationError
from sygnify.ml import RealTimeML
from sygnify.ml.shadow import ShadowRunner

WAIT = 10.0  # seconds; only a safety net so a broken test fails instead of hanging


class _Gate:
    """A shadow model that blocks until released, and says when it has started."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.started = threading.Event()
        self.release = threading.Event()
        self.threads: set[str] = set()

    def __call__(self, X: Any) -> Any:
        self.threads.add(threading.current_thread().name)
        self.started.set()
        assert self.release.wait(WAIT)
        return np.full(len(X), self.value)


def _served(value: float) -> Any:
    return lambda X: np.full(len(X), value)


def test_runner_drops_when_full_and_flush_waits() -> None:
    gate = threading.Event()
    started = threading.Event()
    ran: list[int] = []

    def blocked() -> None:
        started.set()
        assert gate.wait(WAIT)
        ran.append(0)

    runner = ShadowRunner(capacity=1)
    try:
        assert runner.submit(blocked)
        assert started.wait(WAIT)  # the worker holds job 0; the queue is empty again
        assert runner.submit(lambda: ran.append(1))
        assert not runner.submit(lambda: ran.append(2))
        assert (runner.dropped, runner.pending) == (1, 2)
        assert runner.flush(timeout=0.01) is False
        gate.set()
        assert runner.flush(timeout=WAIT)
        assert (ran, runner.completed, runner.pending) == ([0, 1], 2, 0)
    finally:
        gate.set()
        runner.close()


def test_runner_survives_a_failing_job_and_restarts_after_close() -> None:
    runner = ShadowRunner(capacity=4)

    def boom() -> None:
        raise RuntimeError("shadow bug")

    runner.submit(boom)
    runner.close()  # runs what is queued, then stops
    assert runner.completed == 1
    seen: list[str] = []
    runner.submit(lambda: seen.append("again"))
    assert runner.flush(timeout=WAIT)
    assert seen == ["again"]
    runner.close()


def test_runner_rejects_a_bad_size() -> None:
    with pytest.raises(ConfigurationError, match="capacity"):
        ShadowRunner(capacity=0)


def test_shadow_runs_off_the_serving_thread_and_never_delays_answers() -> None:
    gate = _Gate(2.0)
    with RealTimeML() as ml:
        ml.register("m", backend="callable", fn=_served(1.0), features=["x"], version="v1")
        ml.register("m", backend="callable", fn=gate, features=["x"], version="v2")
        ml.shadow("m", "v2")
        # the shadow is blocked, yet answers come back at once and are the served version's
        assert ml.predict("m", {"x": [0.0, 0.0]}).column("prediction").to_pylist() == [1.0, 1.0]
        assert gate.started.wait(WAIT)
        assert ml.predict_one("m", {"x": 0.0}).prediction == 1.0
        assert ml.shadow_report("m", wait=False) == {
            "version": "v2",
            "rows": 0,
            "errors": 0,
            "agreement_rate": None,
            "mean_abs_diff": None,
        }
        gate.release.set()
        assert ml.flush_shadows(timeout=WAIT)
        assert gate.threads == {"sygnify-shadow"}
        report = ml.shadow_report("m")
        assert report == {
            "version": "v2",
            "rows": 3,
            "errors": 0,
            "agreement_rate": 0.0,
            "mean_abs_diff": 1.0,
        }
        assert ml.metrics("m")["m:v2"]["count"] == 3  # the shadow's own calls are measured too


def test_a_full_shadow_queue_drops_and_counts_without_affecting_answers() -> None:
    gate = _Gate(1.0)
    with RealTimeML(shadow_queue=1) as ml:
        ml.register("m", backend="callable", fn=_served(1.0), features=["x"], version="v1")
        ml.register("m", backend="callable", fn=gate, features=["x"], version="v2")
        ml.shadow("m", "v2")
        assert ml.predict_one("m", {"x": 0.0}).prediction == 1.0
        assert gate.started.wait(WAIT)  # request 1 is being mirrored
        answers = [ml.predict_one("m", {"x": 0.0}).prediction for _ in range(4)]  # 1 queued, 3 dropped
        assert answers == [1.0] * 4
        gate.release.set()
        report = ml.shadow_report("m")
        assert report == {
            "version": "v2",
            "rows": 2,
            "errors": 0,
            "agreement_rate": 1.0,
            "mean_abs_diff": 0.0,
            "dropped": 3,
        }


def test_unregistering_the_shadow_version_stops_mirroring() -> None:
    with RealTimeML() as ml:
        ml.register("m", backend="callable", fn=_served(1.0), features=["x"], version="v1")
        ml.register("m", backend="callable", fn=_served(1.0), features=["x"], version="v2")
        ml.shadow("m", "v2")
        ml.predict("m", {"x": [0.0]})
        ml.unregister("m", "v2")  # waits for the mirrored request before closing v2
        assert ml.models()["m"]["shadow"] is None
        assert ml.predict("m", {"x": [0.0]}).column("prediction").to_pylist() == [1.0]
        report = ml.shadow_report("m")
        assert report is not None
        assert report["rows"] == 1
