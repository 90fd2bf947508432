"""The conformance checks every monitoring detector passes: anomaly detectors and drift detectors.

An anomaly detector (:class:`~sygnify.monitoring.anomaly.AnomalyDetector`) is a tiny stateful
object whose ``update(x)`` scores ``x`` against what came before, then learns it.
:func:`check_anomaly_detector` takes a factory of fresh detectors and checks that scores are
non-negative finite floats (0.0 before any learning), that ``is_anomaly`` follows
``threshold``, that a spike after warm-up is flagged, that two detectors agree on the same
stream (deterministic), that a missing value (``None`` or NaN) does not change what the
detector learned (it is skipped, or refused with a sygnify error), and that ``reset()``, where
a detector has one, makes it as good as new::

    >>> class Distance:  # from the mean of what came before; a missing value is skipped
    ...     def __init__(self, threshold: float = 5.0) -> None:
    ...         self.threshold, self.n, self.mean, self.score = threshold, 0, 0.0, 0.0
    ...     def update(self, x: float | None) -> float:
    ...         if x is None or math.isnan(x):
    ...             self.score = 0.0
    ...             return self.score
    ...         self.score = abs(x - self.mean) if self.n else 0.0
    ...         self.n += 1
    ...         self.mean += (x - self.mean) / self.n
    ...         return self.score
    ...     @property
    ...     def is_anomaly(self) -> bool:
    ...         return self.score >= self.threshold
    ...     def __repr__(self) -> str:
    ...         return f"Distance(n={self.n})"
    >>> check_anomaly_detector(Distance)
    ['conforms_to_the_protocol', 'scores_are_finite_floats_and_follow_the_threshold', ...]

A drift detector (:class:`~sygnify.monitoring.drift.DriftDetector`) compares batches with a
reference; :func:`check_drift_detector` checks that it reports every feature, sees no drift in
the reference itself and drift in a shifted copy, is deterministic, ignores nulls and NaN, and
refuses a batch without a feature with a :class:`~sygnify.errors.SchemaError`.
:func:`check_streaming_drift` checks the windowed kind (``update(batch)``, ``report()``)::

    >>> import numpy as np, pyarrow as pa
    >>> from sygnify.monitoring.drift import DriftDetector, StreamingDrift
    >>> rng = np.random.default_rng(0)
    >>> reference = pa.table({"temp": rng.normal(20, 2, 2000), "site": ["a", "b", "c", "d"] * 500})
    >>> check_drift_detector(DriftDetector, reference)
    ['reports_every_feature_and_no_drift_on_the_reference', 'sees_a_shift', ...]
    >>> check_streaming_drift(lambda ref: StreamingDrift(ref, window=1000), reference)
    ['empty_batches_give_no_report', ...]

In pytest, subclass :class:`AnomalyDetectorConformance` (fixture ``detector_factory``),
:class:`DriftDetectorConformance` or :class:`StreamingDriftConformance` (fixtures
``drift_factory`` and ``reference``). The kit needs nothing beyond sygnify.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sygnify.errors import ConfigurationError, SchemaError, SygnifyError
from sygnify.monitoring.anomaly import AnomalyDetector
from sygnify.monitoring.drift import DriftDetector, DriftReport, StreamingDrift
from sygnify.testing._checks import expect, raises, run_checks

__all__ = [
    "AnomalyDetectorConformance",
    "DriftDetectorConformance",
    "StreamingDriftConformance",
    "check_anomaly_detector",
    "check_drift_detector",
    "check_streaming_drift",
    "normal_values",
]

DetectorFactory = Callable[[], AnomalyDetector]
DriftFactory = Callable[[pa.Table], DriftDetector]
StreamingFactory = Callable[[pa.Table], StreamingDrift]

#: values learned before a spike must be flagged
WARM_UP = 500
#: how far (in standard deviations of the normal stream) a spike lies from its mean
SPIKE_SIGMAS = 20.0


def normal_values(n: int = 1000, *, seed: int = 0, mean: float = 10.0) -> list[float]:
    """``n`` draws from a normal distribution with standard deviation 1: the kit's "normal" data.

    >>> [round(v, 2) for v in normal_values(3)]
    [10.13, 9.87, 10.64]
    """
    return [float(v) for v in np.random.default_rng(seed).normal(mean, 1.0, n)]


def _feed(detector: AnomalyDetector, values: Sequence[Any]) -> list[float]:
    return [detector.update(value) for value in values]


def _same_scores(left: Sequence[float], right: Sequence[float]) -> bool:
    return len(left) == len(right) and all(
        a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(left, right)
    )


class AnomalyDetectorConformance:
    """Behaviour every anomaly detector must show; fixture ``detector_factory`` (fresh detectors).

    ``values`` is the normal stream the checks feed (one-dimensional draws by default; give
    vectors for a detector that takes them) and ``spike`` a value far outside it.
    """

    values: Sequence[Any] = tuple(normal_values())
    spike: Any = 10.0 + SPIKE_SIGMAS

    def test_conforms_to_the_protocol(self, detector_factory: DetectorFactory) -> None:
        detector = detector_factory()
        expect(isinstance(detector, AnomalyDetector), f"{type(detector).__name__} is not an AnomalyDetector")
        expect(
            isinstance(detector.threshold, int | float), f"threshold is {detector.threshold!r}, not a number"
        )
        first = detector.update(self.values[0])
        expect(first == 0.0, f"the first update (nothing learned yet) scored {first!r}, not 0.0")
        expect(not detector.is_anomaly, "the first update was flagged as an anomaly")
        expect(type(detector).__name__ in repr(detector), f"repr {detector!r} does not name the detector")

    def test_scores_are_finite_floats_and_follow_the_threshold(
        self, detector_factory: DetectorFactory
    ) -> None:
        detector = detector_factory()
        for index, value in enumerate(self.values):
            score = detector.update(value)
            expect(isinstance(score, float), f"update #{index} returned {type(score).__name__}, not float")
            expect(math.isfinite(score) and score >= 0, f"update #{index} scored {score} on normal data")
            expect(
                detector.is_anomaly == (score >= detector.threshold),
                f"update #{index}: score {score}, threshold {detector.threshold}, "
                f"but is_anomaly is {detector.is_anomaly}",
            )

    def test_flags_a_spike_after_warm_up(self, detector_factory: DetectorFactory) -> None:
        detector = detector_factory()
        _feed(detector, self.values[:WARM_UP])
        score = detector.update(self.spike)
        expect(score >= detector.threshold, f"a spike {self.spike!r} scored {score} < {detector.threshold}")
        expect(detector.is_anomaly, "a spike was not flagged")
        detector.update(self.values[WARM_UP])
        expect(not detector.is_anomaly, "a normal value right after a spike is still flagged")

    def test_is_deterministic(self, detector_factory: DetectorFactory) -> None:
        first, second = _feed(detector_factory(), self.values), _feed(detector_factory(), self.values)
        expect(_same_scores(first, second), "two fresh detectors scored the same stream differently")

    def test_a_missing_value_does_not_change_what_was_learned(
        self, detector_factory: DetectorFactory
    ) -> None:
        half = len(self.values) // 2
        clean = _feed(detector_factory(), self.values)
        for missing in (None, math.nan):
            detector = detector_factory()
            scores = _feed(detector, self.values[:half])
            try:
                skipped = detector.update(missing)
            except SygnifyError:
                pass  # refused with a typed error: fine
            except Exception as exc:
                raise AssertionError(
                    f"update({missing!r}) raised {type(exc).__name__}: {exc}; skip a missing value "
                    "or refuse it with a sygnify error"
                ) from exc
            else:
                expect(isinstance(skipped, float), f"update({missing!r}) returned {skipped!r}, not a float")
            scores += _feed(detector, self.values[half:])
            expect(
                _same_scores(scores, clean),
                f"after update({missing!r}) the detector scores the rest of the stream differently "
                f"(first difference at update #{_first_difference(scores, clean)}): a missing value "
                "must not be learned",
            )

    def test_reset_makes_it_as_good_as_new(self, detector_factory: DetectorFactory) -> None:
        detector = detector_factory()
        reset: Callable[[], None] | None = getattr(detector, "reset", None)
        if reset is None:
            return  # reset() is optional
        _feed(detector, self.values[:WARM_UP])
        reset()
        fresh = _feed(detector_factory(), self.values)
        expect(
            _same_scores(_feed(detector, self.values), fresh), "after reset() scores differ from a new one"
        )


def _first_difference(left: Sequence[float], right: Sequence[float]) -> int:
    return next(
        (i for i, (a, b) in enumerate(zip(left, right)) if not _same_scores([a], [b])),
        min(len(left), len(right)),
    )


def _shifted(table: pa.Table) -> pa.Table:
    """``table`` with numeric columns moved by 5 standard deviations, categoricals set to their rarest."""
    columns = []
    for column in table.columns:
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            values = column.to_numpy(zero_copy_only=False).astype(float)
            std = float(np.nanstd(values)) or 1.0
            columns.append(pa.array(values + 5 * std))
        else:
            counts = pc.value_counts(column.drop_null()).to_pylist()
            rarest = min(counts, key=lambda entry: entry["counts"])["values"]
            columns.append(pa.array([rarest] * table.num_rows, column.type))
    return pa.table(columns, names=table.column_names)


def _with_missing(table: pa.Table, rows: int) -> pa.Table:
    """``table`` followed by ``rows`` rows of NaN (floating columns) and nulls (the others)."""
    extra = pa.table(
        [
            pa.array([math.nan] * rows, column.type)
            if pa.types.is_floating(column.type)
            else pa.nulls(rows, column.type)
            for column in table.columns
        ],
        names=table.column_names,
    )
    return pa.concat_tables([table, extra])


def _report(result: object, what: str) -> DriftReport:
    expect(isinstance(result, DriftReport), f"{what} returned {type(result).__name__}, not a DriftReport")
    assert isinstance(result, DriftReport)  # for the type checker
    return result


class DriftDetectorConformance:
    """Behaviour every drift detector must show; fixtures ``drift_factory`` and ``reference``.

    ``drift_factory(reference)`` returns a detector comparing batches against ``reference``
    (a table of numeric and categorical features, a few thousand rows).
    """

    def test_reports_every_feature_and_no_drift_on_the_reference(
        self, drift_factory: DriftFactory, reference: pa.Table
    ) -> None:
        detector = drift_factory(reference)
        report = _report(detector.compare(reference), "compare(reference)")
        names = [result.feature for result in report.features]
        expect(names == detector.features, f"the report covers {names}, the detector {detector.features}")
        expect(not report.drifted, f"the reference drifted from itself in {report.drifted}")

    def test_sees_a_shift(self, drift_factory: DriftFactory, reference: pa.Table) -> None:
        detector = drift_factory(reference)
        report = _report(detector.compare(_shifted(reference)), "compare(shifted)")
        expect(
            report.drifted == detector.features,
            f"every feature was shifted, but only {report.drifted} of {detector.features} drifted",
        )

    def test_is_deterministic(self, drift_factory: DriftFactory, reference: pa.Table) -> None:
        current = _shifted(reference).slice(0, reference.num_rows // 2)
        first = drift_factory(reference).compare(current)
        again = drift_factory(reference).compare(current)
        expect(first.features == again.features, "two detectors on the same data report differently")

    def test_ignores_nulls_and_nan(self, drift_factory: DriftFactory, reference: pa.Table) -> None:
        detector = drift_factory(reference)
        current = reference.slice(0, reference.num_rows // 2)
        plain = detector.compare(current)
        padded = detector.compare(_with_missing(current, 50))
        expect(
            plain.features == padded.features,
            "nulls and NaN changed the report: they must be left out of the comparison",
        )
        with_nan_reference = drift_factory(_with_missing(reference, 50)).compare(current)
        expect(
            with_nan_reference.features == plain.features,
            "nulls and NaN in the reference changed the report: they must be left out",
        )

    def test_a_missing_feature_is_a_schema_error(
        self, drift_factory: DriftFactory, reference: pa.Table
    ) -> None:
        detector = drift_factory(reference)
        feature = detector.features[0]
        with raises(SchemaError, f"compare() of a batch without feature {feature!r}", match=feature):
            detector.compare(reference.drop_columns([feature]))


class StreamingDriftConformance:
    """Behaviour every windowed drift detector must show; fixtures ``drift_factory`` and ``reference``.

    ``drift_factory(reference)`` returns a detector whose window is at most a quarter of
    ``reference``'s rows and which reports only when asked (no ``every``).
    """

    def test_empty_batches_give_no_report(self, drift_factory: StreamingFactory, reference: pa.Table) -> None:
        stream = drift_factory(reference)
        empty = stream.update(reference.slice(0, 0))
        expect(empty is None, f"update() of an empty batch returned {empty!r}, not None")

    def test_a_window_like_the_reference_has_no_drift(
        self, drift_factory: StreamingFactory, reference: pa.Table
    ) -> None:
        stream = drift_factory(reference)
        for batch in reference.to_batches(max_chunksize=max(1, reference.num_rows // 8)):
            result = stream.update(batch)
            expect(result is None or isinstance(result, DriftReport), f"update() returned {result!r}")
        report = _report(stream.report(), "report()")
        expect(not report.drifted, f"a window of reference rows drifted in {report.drifted}")

    def test_a_shifted_window_drifts_in_every_feature(
        self, drift_factory: StreamingFactory, reference: pa.Table
    ) -> None:
        stream = drift_factory(reference)
        stream.update(reference)
        stream.update(_shifted(reference))  # fills the window
        report = _report(stream.report(), "report()")
        expected = [result.feature for result in report.features]
        expect(report.drifted == expected, f"a shifted window drifted in {report.drifted} of {expected}")

    def test_is_deterministic(self, drift_factory: StreamingFactory, reference: pa.Table) -> None:
        reports = []
        for _ in range(2):
            stream = drift_factory(reference)
            stream.update(_shifted(reference).slice(0, reference.num_rows // 3))
            reports.append(stream.report().features)
        expect(reports[0] == reports[1], "two windowed detectors fed the same rows report differently")


def _checked_reference(reference: pa.Table) -> pa.Table:
    if reference.num_rows < 100:
        raise ConfigurationError(
            f"the drift kit needs a reference of at least 100 rows, got {reference.num_rows}"
        )
    return reference


def check_anomaly_detector(
    detector_factory: DetectorFactory, *, values: Sequence[Any] | None = None, spike: Any = None
) -> list[str]:
    """Run every check of :class:`AnomalyDetectorConformance`; returns the names of those that ran.

    ``values`` replaces the normal stream (at least ``WARM_UP + 1`` values) and ``spike`` the
    outlier, e.g. for a detector of vectors. The first failing check raises AssertionError.
    """
    suite = AnomalyDetectorConformance()
    if values is not None:
        if len(values) <= WARM_UP:
            raise ConfigurationError(
                f"check_anomaly_detector needs more than {WARM_UP} values, got {len(values)}"
            )
        suite.values = tuple(values)
    if spike is not None:
        suite.spike = spike
    return run_checks(suite, detector_factory)


def check_drift_detector(drift_factory: DriftFactory, reference: pa.Table) -> list[str]:
    """Run every check of :class:`DriftDetectorConformance` against ``reference`` (>= 100 rows)."""
    return run_checks(DriftDetectorConformance(), drift_factory, _checked_reference(reference))


def check_streaming_drift(drift_factory: StreamingFactory, reference: pa.Table) -> list[str]:
    """Run every check of :class:`StreamingDriftConformance` against ``reference`` (>= 100 rows)."""
    return run_checks(StreamingDriftConformance(), drift_factory, _checked_reference(reference))
