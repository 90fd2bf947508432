"""Drift statistics on known distributions."""

from __future__ import annotations

import sys

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from sygnify.errors import ConfigurationError, SchemaError
from sygnify.monitoring import DriftDetector, StreamingDrift, chi_square, jensen_shannon, ks_test, psi

rng = np.random.default_rng(42)
REF = rng.normal(0, 1, 20_000)


def test_psi_is_near_zero_for_the_same_distribution() -> None:
    assert psi(REF, np.random.default_rng(1).normal(0, 1, 20_000)) < 0.01


@pytest.mark.parametrize(("shift", "low", "high"), [(0.1, 0.005, 0.05), (0.5, 0.15, 0.4), (1.0, 0.7, 1.5)])
def test_psi_grows_with_the_mean_shift(shift: float, low: float, high: float) -> None:
    # PSI of N(0,1) vs N(shift,1) is about shift**2 (continuous limit)
    value = psi(REF, np.random.default_rng(2).normal(shift, 1, 20_000))
    assert low < value < high


def test_ks_pvalue_is_large_for_same_and_tiny_for_shifted() -> None:
    same = ks_test(REF[:5000], np.random.default_rng(3).normal(0, 1, 5000))
    shifted = ks_test(REF[:5000], np.random.default_rng(3).normal(0.3, 1, 5000))
    assert same[1] > 0.01
    assert shifted[1] < 1e-6
    assert shifted[0] > same[0]


def test_ks_pvalues_are_roughly_uniform_under_the_null() -> None:
    gen = np.random.default_rng(7)
    pvalues = [ks_test(gen.normal(size=300), gen.normal(size=300))[1] for _ in range(200)]
    assert 0.0 <= np.mean(np.array(pvalues) < 0.05) < 0.12


def test_jensen_shannon_is_bounded_symmetric_and_zero_for_identical() -> None:
    other = np.random.default_rng(4).normal(3, 1, 20_000)
    assert jensen_shannon(REF, REF) == pytest.approx(0.0, abs=1e-9)
    js = jensen_shannon(REF, other)
    assert 0.3 < js <= 1.0
    # symmetric when binned on shared edges: compare both orders on the union's bins
    assert jensen_shannon(other, REF) == pytest.approx(js, abs=0.2)


def test_chi_square_detects_changed_category_mix() -> None:
    reference = ["a"] * 500 + ["b"] * 300 + ["c"] * 200
    assert chi_square(reference, ["a"] * 50 + ["b"] * 30 + ["c"] * 20)[1] > 0.5
    statistic, pvalue = chi_square(reference, ["a"] * 20 + ["b"] * 30 + ["c"] * 50 + ["d"] * 10)
    assert pvalue < 1e-6
    assert statistic > 0


def test_detector_reports_per_feature_and_prediction_drift() -> None:
    gen = np.random.default_rng(5)
    reference = pl.DataFrame(
        {
            "temp": gen.normal(20, 2, 5000),
            "site": gen.choice(["a", "b"], 5000),
            "prediction": gen.uniform(0, 1, 5000),
        }
    )
    detector = DriftDetector(reference)
    assert detector.features == ["temp", "site", "prediction"]
    current = pa.table(
        {
            "temp": gen.normal(20, 2, 3000),
            "site": gen.choice(["a", "b"], 3000),
            "prediction": gen.uniform(0.5, 1, 3000),
        }
    )
    report = detector.compare(current)
    assert report.drifted == ["prediction"]
    assert report["temp"].statistics["psi"] < 0.05
    assert report["site"].kind == "categorical"
    assert report["prediction"].score > 0.2
    frame = report.to_polars()
    assert frame.height == 3
    assert set(frame.columns) >= {"feature", "drifted", "psi", "js", "ks_pvalue", "chi2_pvalue"}
    html = report._repr_html_()
    assert "<table>" in html
    assert "prediction" in html
    assert "1 of 3" in html


@pytest.mark.parametrize("method", ["psi", "ks", "js"])
def test_every_numeric_method_decides_drift(method: str) -> None:
    detector = DriftDetector(pl.DataFrame({"x": REF}), numeric_method=method)  # type: ignore[arg-type]
    gen = np.random.default_rng(6)
    assert not detector.compare(pl.DataFrame({"x": gen.normal(0, 1, 5000)})).any_drift
    assert detector.compare(pl.DataFrame({"x": gen.normal(2, 1, 5000)})).drifted == ["x"]


def test_missing_columns_and_bad_methods_are_clear_errors() -> None:
    with pytest.raises(SchemaError, match="nope"):
        DriftDetector(pl.DataFrame({"x": [1.0]}), features=["nope"])
    with pytest.raises(ConfigurationError):
        DriftDetector(pl.DataFrame({"x": [1.0]}), numeric_method="bogus")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="x"):
        DriftDetector(pl.DataFrame({"x": [1.0, 2.0]})).compare(pl.DataFrame({"y": [1.0]}))


def test_streaming_drift_detects_a_shift_within_one_window() -> None:
    gen = np.random.default_rng(8)
    stream = StreamingDrift(pl.DataFrame({"x": REF}), window=2000, every=500)
    reports = [stream.update(pl.DataFrame({"x": gen.normal(0, 1, 500)})) for _ in range(4)]
    assert all(r is not None and not r.any_drift for r in reports)
    flagged_after = None
    for step in range(1, 5):
        report = stream.update(pl.DataFrame({"x": gen.normal(1.5, 1, 500)}))
        if report is not None and report.any_drift:
            flagged_after = step * 500
            break
    assert flagged_after is not None
    assert flagged_after <= 1000


def test_plot_without_matplotlib_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    report = DriftDetector(pl.DataFrame({"x": REF})).compare(pl.DataFrame({"x": REF}))
    with pytest.raises(ConfigurationError, match="pip install matplotlib"):
        report.plot()


def test_plot_draws_bars_when_matplotlib_is_installed() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    report = DriftDetector(pl.DataFrame({"x": REF})).compare(pl.DataFrame({"x": REF + 1}))
    ax = report.plot()
    assert len(ax.patches) == 1
