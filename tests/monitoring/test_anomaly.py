"""A conformance suite every anomaly detector passes, plus statistical properties."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sygnify.errors import ConfigurationError
from sygnify.monitoring import EWMA, IQR, AnomalyDetector, IsolationForestDetector, RollingZScore

FACTORIES: dict[str, Callable[[], Any]] = {
    "zscore": lambda: RollingZScore(window=200, threshold=4.0),
    "ewma": lambda: EWMA(alpha=0.05, threshold=4.0),
    "iqr": lambda: IQR(threshold=3.0),
    "isolation_forest": lambda: IsolationForestDetector(
        window=256, refit_every=128, threshold=0.7, n_estimators=100, random_state=0
    ),
}
# In one dimension an isolation forest scores every point beyond the window's range alike, so
# its far tail (about 1% of normal data) reaches the same score as a real spike.
FALSE_POSITIVE_BOUND: dict[type, float] = {IsolationForestDetector: 0.03}


@pytest.fixture(params=sorted(FACTORIES))
def detector(request: pytest.FixtureRequest) -> Any:
    return FACTORIES[request.param]()


def normal_stream(n: int, seed: int = 0, mean: float = 10.0) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).normal(mean, 1.0, n)


def test_conforms_to_the_protocol(detector: Any) -> None:
    assert isinstance(detector, AnomalyDetector)
    assert detector.update(10.0) == 0.0  # nothing learned yet: no score
    assert not detector.is_anomaly
    assert type(detector).__name__ in repr(detector)


def test_scores_are_finite_and_rarely_flag_normal_data(detector: Any) -> None:
    flags = 0
    for value in normal_stream(1000):
        score = detector.update(value)
        assert np.isfinite(score)
        assert score >= 0
        flags += detector.is_anomaly
    assert flags / 1000 < FALSE_POSITIVE_BOUND.get(type(detector), 0.01)


def test_flags_a_spike_after_warm_up(detector: Any) -> None:
    for value in normal_stream(500):
        detector.update(value)
    assert detector.update(30.0) >= detector.threshold
    assert detector.is_anomaly
    detector.update(10.0)
    assert not detector.is_anomaly


def test_is_deterministic(detector: Any) -> None:
    name = type(detector).__name__
    twin = next(factory() for factory in FACTORIES.values() if type(factory()).__name__ == name)
    stream = normal_stream(300, seed=3)
    assert [detector.update(v) for v in stream] == [twin.update(v) for v in stream]


def test_state_stays_bounded(detector: Any) -> None:
    for value in normal_stream(600):
        detector.update(value)
    sizes = [len(v) for v in vars(detector).values() if isinstance(v, list | dict | deque | np.ndarray)]
    assert max(sizes, default=0) <= 256


@pytest.mark.parametrize(
    "make",
    [
        lambda: RollingZScore(window=0),
        lambda: EWMA(alpha=1.5),
        lambda: EWMA(alpha=0),
        lambda: IQR(threshold=-1),
        lambda: IsolationForestDetector(window=0),
    ],
)
def test_invalid_settings_are_configuration_errors(make: Callable[[], Any]) -> None:
    with pytest.raises(ConfigurationError):
        make()


@pytest.mark.parametrize("name", ["zscore", "ewma", "iqr"])
def test_detects_a_shifted_mean_within_a_few_events(name: str) -> None:
    detector = FACTORIES[name]()
    for value in normal_stream(1000, seed=5):
        detector.update(value)
    shifted = normal_stream(50, seed=6, mean=18.0)  # +8 sigma
    first_flag = next((i for i, v in enumerate(shifted) if detector.update(v) >= detector.threshold), None)
    assert first_flag is not None
    assert first_flag < 5


def test_rolling_zscore_matches_numpy_over_its_window() -> None:
    detector = RollingZScore(window=50, threshold=3.0)
    values = normal_stream(500, seed=9)
    for value in values:
        detector.update(value)
    window = values[-50:]
    expected = abs(12.0 - window.mean()) / window.std(ddof=1)
    assert detector.update(12.0) == pytest.approx(expected, rel=1e-9)


def test_iqr_quartiles_approximate_the_true_ones() -> None:
    detector = IQR()
    values = np.random.default_rng(4).uniform(0, 100, 20_000)
    for value in values:
        detector.update(value)
    q1, q3 = detector.quartiles
    assert q1 == pytest.approx(25, abs=1.5)
    assert q3 == pytest.approx(75, abs=1.5)


def test_ewma_mean_tracks_a_level_shift() -> None:
    detector = EWMA(alpha=0.2)
    for _ in range(200):
        detector.update(5.0)
    for _ in range(100):
        detector.update(7.0)
    assert detector.mean == pytest.approx(7.0, abs=1e-6)


def test_isolation_forest_handles_multivariate_points() -> None:
    detector = IsolationForestDetector(window=128, refit_every=64, threshold=0.7, random_state=1)
    rng = np.random.default_rng(1)
    for point in rng.normal(0, 1, size=(300, 3)):
        detector.update(point)
    assert detector.update([6.0, 6.0, -6.0]) >= 0.7
    assert detector.update([0.0, 0.1, -0.1]) < 0.6
