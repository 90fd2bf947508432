"""The two-sample drift statistics: PSI, Kolmogorov-Smirnov, Jensen-Shannon and χ².

Each public statistic takes raw reference and current values; the ``_from_counts`` helpers
take already-binned counts so :class:`~sygnify.monitoring.drift.DriftDetector` can bin a
reference once and reuse its edges for every comparison::

    >>> ref, cur = category_counts(["a", "b", "b"], ["b", "c"])
    >>> ref.tolist(), cur.tolist()
    ([1.0, 2.0, 0.0], [0.0, 1.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "category_counts",
    "chi2_from_counts",
    "chi_square",
    "jensen_shannon",
    "js_from_counts",
    "ks_test",
    "psi",
    "psi_from_counts",
    "quantile_edges",
]

_EPS = 1e-6


def quantile_edges(reference: np.ndarray[Any, Any], bins: int) -> np.ndarray[Any, Any]:
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:  # constant reference: one bin around the value
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def _proportions(counts: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    total = counts.sum()
    shares = counts / total if total else np.full(counts.shape, 1 / max(counts.size, 1))
    return np.clip(shares, _EPS, None)


def _histograms(
    reference: np.ndarray[Any, Any], current: np.ndarray[Any, Any], bins: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    edges = quantile_edges(reference, bins)
    ref_counts = np.histogram(reference, edges)[0].astype(float)
    cur_counts = np.histogram(current, edges)[0].astype(float)
    return ref_counts, cur_counts


def psi(
    reference: Sequence[float] | np.ndarray[Any, Any],
    current: Sequence[float] | np.ndarray[Any, Any],
    *,
    bins: int = 10,
) -> float:
    """Population Stability Index on the reference's quantile bins (< 0.1 stable, > 0.2 drift).

    >>> rng = np.random.default_rng(1)
    >>> round(psi(rng.normal(size=10_000), rng.normal(size=10_000)), 3) < 0.01
    True
    """
    ref_counts, cur_counts = _histograms(np.asarray(reference, float), np.asarray(current, float), bins)
    return psi_from_counts(ref_counts, cur_counts)


def psi_from_counts(ref_counts: np.ndarray[Any, Any], cur_counts: np.ndarray[Any, Any]) -> float:
    p, q = _proportions(ref_counts), _proportions(cur_counts)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_test(
    reference: Sequence[float] | np.ndarray[Any, Any], current: Sequence[float] | np.ndarray[Any, Any]
) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value.

    >>> stat, p = ks_test([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    >>> stat, p > 0.9
    (0.0, True)
    """
    from scipy.stats import ks_2samp  # type: ignore[import-untyped, unused-ignore]

    result = ks_2samp(np.asarray(reference, float), np.asarray(current, float))
    return float(result.statistic), float(result.pvalue)


def js_from_counts(ref_counts: np.ndarray[Any, Any], cur_counts: np.ndarray[Any, Any]) -> float:
    p, q = _proportions(ref_counts), _proportions(cur_counts)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return float(0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m)))


def jensen_shannon(
    reference: Sequence[float] | np.ndarray[Any, Any],
    current: Sequence[float] | np.ndarray[Any, Any],
    *,
    bins: int = 10,
) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of the binned distributions.

    >>> jensen_shannon([0.0, 1.0] * 50, [0.0, 1.0] * 50) < 1e-6
    True
    """
    ref_counts, cur_counts = _histograms(np.asarray(reference, float), np.asarray(current, float), bins)
    return js_from_counts(ref_counts, cur_counts)


def category_counts(
    reference: Sequence[Any], current: Sequence[Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    ref = pl.Series("v", list(reference), dtype=pl.String, strict=False).value_counts()
    cur = pl.Series("v", list(current), dtype=pl.String, strict=False).value_counts()
    joined = (
        ref.join(cur, on="v", how="full", coalesce=True, suffix="_cur")
        .fill_null(0)
        .sort("v", nulls_last=True)
    )
    return joined["count"].to_numpy().astype(float), joined["count_cur"].to_numpy().astype(float)


def chi_square(reference: Sequence[Any], current: Sequence[Any]) -> tuple[float, float]:
    """χ² test of homogeneity on category counts: statistic and p-value.

    >>> stat, p = chi_square(["a", "b"] * 100, ["a"] * 150 + ["b"] * 50)
    >>> p < 0.001
    True
    """
    ref_counts, cur_counts = category_counts(reference, current)
    return chi2_from_counts(ref_counts, cur_counts)


def chi2_from_counts(
    ref_counts: np.ndarray[Any, Any], cur_counts: np.ndarray[Any, Any]
) -> tuple[float, float]:
    from scipy.stats import chi2_contingency  # type: ignore[import-untyped, unused-ignore]

    table = np.vstack([ref_counts, cur_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)
