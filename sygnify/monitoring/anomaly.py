"""Streaming anomaly detectors: tiny stateful objects with an O(1) ``update(x)``.

Each detector scores ``x`` against what it has seen *before* ``x``, then learns ``x``.
``update`` returns the score (0.0 until ``min_samples`` values were seen); ``is_anomaly`` tells
whether that score crossed the detector's ``threshold``. A missing value (``None`` or NaN)
scores 0.0 and is not learned, so one gap in a sensor feed never corrupts the state::

    >>> detector = RollingZScore(window=50, threshold=4.0)
    >>> for value in [10.0, 10.5, 9.5, 10.2, 9.8] * 10:
    ...     _ = detector.update(value)
    >>> detector.update(25.0) > 4.0, detector.is_anomaly
    (True, True)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sygnify.errors import ConfigurationError

__all__ = ["EWMA", "IQR", "AnomalyDetector", "IsolationForestDetector", "RollingZScore"]


@runtime_checkable
class AnomalyDetector(Protocol):
    """What every detector provides (the conformance tests run over all of them)."""

    threshold: float

    def update(self, x: Any) -> float:
        """Score ``x`` against the past, then learn it; returns the score."""
        ...

    @property
    def is_anomaly(self) -> bool:
        """Whether the last ``update`` scored at or above ``threshold``."""
        ...


class _Base:
    threshold: float
    min_samples: int
    score: float = 0.0
    n: int = 0

    @property
    def is_anomaly(self) -> bool:
        return self.score >= self.threshold

    def _missing(self, x: Any) -> bool:
        """True, with the score reset to 0.0, when ``x`` is None or holds a NaN (not learned)."""
        if x is None:
            missing = True
        else:
            try:
                missing = bool(np.isnan(np.asarray(x, dtype=float)).any())
            except (TypeError, ValueError):
                missing = False
        if missing:
            self.score = 0.0
        return missing

    def _check(self, **positive: float) -> None:
        for name, value in positive.items():
            if not value > 0:
                raise ConfigurationError(f"{type(self).__name__}: {name} must be > 0, got {value}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, score={self.score:.3f}, threshold={self.threshold})"


class RollingZScore(_Base):
    """|x - mean| / std over the last ``window`` values (windowed Welford: O(1) per update).

    >>> detector = RollingZScore(window=20, threshold=3.0, min_samples=5)
    >>> [round(detector.update(v), 2) for v in [1.0, 2.0, 1.0, 2.0, 1.0, 1.5]]
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.18]
    >>> round(detector.update(10.0), 1)
    17.5
    """

    def __init__(self, window: int = 100, threshold: float = 3.0, min_samples: int = 10) -> None:
        self._check(window=window, threshold=threshold)
        self.window, self.threshold, self.min_samples = window, threshold, max(2, min_samples)
        self._values: deque[float] = deque()
        self._mean = 0.0
        self._m2 = 0.0

    def update(self, x: float | None) -> float:
        if self._missing(x):
            return self.score
        x = float(x)  # type: ignore[arg-type]  # None was ruled out by _missing
        count = len(self._values)
        if count >= self.min_samples:
            std = math.sqrt(max(self._m2, 0.0) / (count - 1))
            self.score = abs(x - self._mean) / std if std > 0 else (0.0 if x == self._mean else math.inf)
        else:
            self.score = 0.0
        if count == self.window:  # remove the oldest value (reverse Welford step)
            old = self._values.popleft()
            if count == 1:
                self._mean, self._m2 = 0.0, 0.0
            else:
                mean = (self._mean * count - old) / (count - 1)
                self._m2 -= (old - self._mean) * (old - mean)
                self._mean = mean
        self._values.append(x)
        count = len(self._values)
        delta = x - self._mean
        self._mean += delta / count
        self._m2 += delta * (x - self._mean)
        self.n += 1
        return self.score


class EWMA(_Base):
    """Distance from an exponentially weighted mean in units of the EW standard deviation.

    ``alpha`` is the weight of each new value (larger adapts faster).

    >>> detector = EWMA(alpha=0.1, threshold=4.0)
    >>> for value in [5.0, 5.2, 4.8] * 20:
    ...     _ = detector.update(value)
    >>> detector.update(5.1) < 4.0, detector.update(9.0) > 4.0
    (True, True)
    """

    def __init__(self, alpha: float = 0.1, threshold: float = 3.0, min_samples: int = 10) -> None:
        self._check(alpha=alpha, threshold=threshold)
        if alpha > 1:
            raise ConfigurationError(f"EWMA: alpha must be in (0, 1], got {alpha}")
        self.alpha, self.threshold, self.min_samples = alpha, threshold, min_samples
        self.mean = 0.0
        self.variance = 0.0

    def update(self, x: float | None) -> float:
        if self._missing(x):
            return self.score
        x = float(x)  # type: ignore[arg-type]  # None was ruled out by _missing
        if self.n >= self.min_samples:
            std = math.sqrt(self.variance)
            self.score = abs(x - self.mean) / std if std > 0 else (0.0 if x == self.mean else math.inf)
        else:
            self.score = 0.0
        if self.n == 0:
            self.mean = x
        else:
            delta = x - self.mean
            self.mean += self.alpha * delta
            self.variance = (1 - self.alpha) * (self.variance + self.alpha * delta * delta)
        self.n += 1
        return self.score


class _P2Quantile:
    """The P² algorithm (Jain & Chlamtac, 1985): one quantile in O(1) time and memory."""

    def __init__(self, q: float) -> None:
        self.q = q
        self.heights: list[float] = []
        self.positions = [1.0, 2.0, 3.0, 4.0, 5.0]
        self.desired = [1.0, 1 + 2 * q, 1 + 4 * q, 3 + 2 * q, 5.0]
        self.increments = [0.0, q / 2, q, (1 + q) / 2, 1.0]

    def value(self) -> float:
        if len(self.heights) < 5:
            ordered = sorted(self.heights)
            return ordered[min(len(ordered) - 1, int(self.q * len(ordered)))] if ordered else 0.0
        return self.heights[2]

    def update(self, x: float) -> None:
        h = self.heights
        if len(h) < 5:
            h.append(x)
            if len(h) == 5:
                h.sort()
            return
        if x < h[0]:
            h[0], k = x, 0
        elif x >= h[4]:
            h[4], k = x, 3
        else:
            k = next(i for i in range(4) if h[i] <= x < h[i + 1])
        for i in range(k + 1, 5):
            self.positions[i] += 1
        for i in range(5):
            self.desired[i] += self.increments[i]
        for i in (1, 2, 3):
            d = self.desired[i] - self.positions[i]
            n, n_prev, n_next = self.positions[i], self.positions[i - 1], self.positions[i + 1]
            if (d >= 1 and n_next - n > 1) or (d <= -1 and n_prev - n < -1):
                step = 1.0 if d > 0 else -1.0
                parabolic = h[i] + step / (n_next - n_prev) * (
                    (n - n_prev + step) * (h[i + 1] - h[i]) / (n_next - n)
                    + (n_next - n - step) * (h[i] - h[i - 1]) / (n - n_prev)
                )
                if h[i - 1] < parabolic < h[i + 1]:
                    h[i] = parabolic
                else:
                    j = i + int(step)
                    h[i] += step * (h[j] - h[i]) / (self.positions[j] - n)
                self.positions[i] += step


class IQR(_Base):
    """Tukey's fences: distance beyond ``[Q1, Q3]`` in units of the IQR (O(1) P² quantiles).

    The score is 0 inside the quartiles and ``k`` at the classic fence ``Q3 + k·IQR``; the
    default threshold 1.5 is Tukey's outlier rule. Quantiles cover the whole stream.

    >>> detector = IQR(threshold=3.0)
    >>> for value in range(100):
    ...     _ = detector.update(float(value % 10))
    >>> detector.update(5.0), detector.update(40.0) > 3.0
    (0.0, True)
    """

    def __init__(self, threshold: float = 1.5, min_samples: int = 20) -> None:
        self._check(threshold=threshold)
        self.threshold, self.min_samples = threshold, max(5, min_samples)
        self._q1, self._q3 = _P2Quantile(0.25), _P2Quantile(0.75)

    @property
    def quartiles(self) -> tuple[float, float]:
        return self._q1.value(), self._q3.value()

    def update(self, x: float | None) -> float:
        if self._missing(x):
            return self.score
        x = float(x)  # type: ignore[arg-type]  # None was ruled out by _missing
        if self.n >= self.min_samples:
            q1, q3 = self.quartiles
            iqr = q3 - q1
            distance = q1 - x if x < q1 else (x - q3 if x > q3 else 0.0)
            self.score = distance / iqr if iqr > 0 else (0.0 if distance == 0 else math.inf)
        else:
            self.score = 0.0
        self._q1.update(x)
        self._q3.update(x)
        self.n += 1
        return self.score


class IsolationForestDetector(_Base):
    """scikit-learn's isolation forest refitted on a sliding window (multivariate ``x``).

    The forest is refitted every ``refit_every`` updates on the last ``window`` values, so the
    cost per update is bounded (amortised O(1) in the stream length). The score is sklearn's
    anomaly score in (0, 1): around 0.5 is normal, close to 1 is anomalous.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> detector = IsolationForestDetector(window=128, refit_every=64, threshold=0.7, random_state=0)
    >>> for point in rng.normal(0, 1, size=(200, 2)):
    ...     _ = detector.update(point)
    >>> detector.update([8.0, -8.0]) > 0.7, detector.update([0.1, 0.0]) < 0.6
    (True, True)
    """

    def __init__(
        self,
        window: int = 256,
        refit_every: int = 128,
        threshold: float = 0.7,
        n_estimators: int = 50,
        random_state: int | None = None,
    ) -> None:
        self._check(window=window, refit_every=refit_every, threshold=threshold)
        try:
            from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped, unused-ignore]
        except ImportError as exc:
            raise ConfigurationError(
                "IsolationForestDetector needs scikit-learn: pip install 'sygnify[monitoring]'"
            ) from exc
        self._forest_type = IsolationForest
        self.window, self.refit_every, self.threshold = window, refit_every, threshold
        self.min_samples = min(window, refit_every)
        self.n_estimators, self.random_state = n_estimators, random_state
        self._buffer: deque[np.ndarray[Any, Any]] = deque(maxlen=window)
        self._forest: Any = None
        self._since_fit = 0

    def update(self, x: float | Sequence[float] | np.ndarray[Any, Any] | None) -> float:
        if self._missing(x):
            return self.score
        point = np.atleast_1d(np.asarray(x, dtype=float))
        if self._forest is not None:
            self.score = float(-self._forest.score_samples(point.reshape(1, -1))[0])
        else:
            self.score = 0.0
        self._buffer.append(point)
        self._since_fit += 1
        self.n += 1
        if self._since_fit >= self.refit_every and len(self._buffer) >= self.min_samples:
            self._forest = self._forest_type(
                n_estimators=self.n_estimators, random_state=self.random_state, max_samples="auto"
            ).fit(np.vstack(list(self._buffer)))
            self._since_fit = 0
        return self.score
