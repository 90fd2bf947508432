"""The shipped detector kit (sygnify.testing.detectors) over every detector sygnify ships."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from sygnify.monitoring.anomaly import AnomalyDetector
from sygnify.monitoring.drift import DriftDetector, StreamingDrift
from sygnify.testing.detectors import (
    AnomalyDetectorConformance,
    DriftDetectorConformance,
    StreamingDriftConformance,
    check_anomaly_detector,
    check_drift_detector,
    check_streaming_drift,
)
from tests.monitoring.test_anomaly import FACTORIES

#: every shipped anomaly detector, configured as in its own tests
ANOMALY: dict[str, Callable[[], AnomalyDetector]] = FACTORIES

DRIFT: dict[str, Callable[[pa.Table], DriftDetector]] = {
    "psi": DriftDetector,
    "ks": lambda reference: DriftDetector(reference, numeric_method="ks"),
    "js": lambda reference: DriftDetector(reference, numeric_method="js"),
}


def test_every_shipped_anomaly_detector_is_covered() -> None:
    import sygnify.monitoring.anomaly as anomaly

    shipped = {getattr(anomaly, name) for name in anomaly.__all__} - {AnomalyDetector}
    assert shipped == {type(make()) for make in ANOMALY.values()}


@pytest.fixture(scope="module")
def reference() -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "temperature": rng.normal(20, 2, 4000),
            "count": rng.poisson(5, 4000),
            "site": ["north", "south", "east", "west"] * 1000,
        }
    )


class TestAnomalyDetectorConformance(AnomalyDetectorConformance):
    @pytest.fixture(params=sorted(ANOMALY))
    def detector_factory(self, request: pytest.FixtureRequest) -> Callable[[], AnomalyDetector]:
        return ANOMALY[request.param]


class TestDriftDetectorConformance(DriftDetectorConformance):
    @pytest.fixture(params=sorted(DRIFT))
    def drift_factory(self, request: pytest.FixtureRequest) -> Callable[[pa.Table], DriftDetector]:
        return DRIFT[request.param]


class TestStreamingDriftConformance(StreamingDriftConformance):
    @pytest.fixture(params=[500, 1000])
    def drift_factory(self, request: pytest.FixtureRequest) -> Callable[[pa.Table], StreamingDrift]:
        return lambda reference: StreamingDrift(reference, window=request.param)


def test_the_check_functions_run_every_check(reference: pa.Table) -> None:
    assert len(check_drift_detector(DriftDetector, reference)) == 5
    assert len(check_streaming_drift(lambda ref: StreamingDrift(ref, window=800), reference)) == 4


def test_the_anomaly_kit_catches_a_detector_that_learns_missing_values() -> None:
    class Mean:
        threshold = 5.0

        def __init__(self) -> None:
            self.n, self.mean, self.score = 0, 0.0, 0.0

        def update(self, x: float) -> float:
            value = float(x)  # NaN goes into the mean
            self.score = abs(value - self.mean) if self.n else 0.0
            self.n += 1
            self.mean += (value - self.mean) / self.n
            return self.score

        @property
        def is_anomaly(self) -> bool:
            return self.score >= self.threshold

    with pytest.raises(AssertionError, match=r"update\(None\) raised TypeError"):
        check_anomaly_detector(Mean)
    with pytest.raises(AssertionError, match=r"after update\(nan\) the detector scores the rest"):
        AnomalyDetectorConformance().test_a_missing_value_does_not_change_what_was_learned(
            lambda: _SkipsNone(Mean())
        )


class _SkipsNone:
    """Wraps a detector, dropping None (but not NaN)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.threshold = 5.0

    def update(self, x: float | None) -> float:
        if x is None:
            return 0.0
        return float(self.inner.update(x))  # type: ignore[attr-defined]

    @property
    def is_anomaly(self) -> bool:
        return bool(self.inner.is_anomaly)  # type: ignore[attr-defined]


def test_vectors_can_replace_the_normal_stream() -> None:
    rng = np.random.default_rng(1)
    points = list(rng.normal(0, 1, size=(600, 2)))
    suite = AnomalyDetectorConformance()
    suite.values, suite.spike = tuple(points), np.array([9.0, -9.0])
    suite.test_flags_a_spike_after_warm_up(ANOMALY["isolation_forest"])
    assert math.isfinite(ANOMALY["isolation_forest"]().update(points[0]))
