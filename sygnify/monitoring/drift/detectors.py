"""Data and prediction drift against a reference dataset: PSI, Kolmogorov-Smirnov, Jensen-Shannon, χ².

Numeric features get PSI (on the reference's quantile bins), the two-sample KS test and the
Jensen-Shannon divergence; categorical (string, boolean, dictionary) features get χ² on
category counts, PSI and Jensen-Shannon. A feature has drifted when its ``method`` says so
(default: PSI > 0.2 for numeric, χ² p-value < 0.05 for categorical)::

    >>> import numpy as np, polars as pl
    >>> rng = np.random.default_rng(0)
    >>> reference = pl.DataFrame({"temp": rng.normal(20, 2, 5000), "site": ["a", "b"] * 2500})
    >>> detector = DriftDetector(reference)
    >>> same = detector.compare(pl.DataFrame({"temp": rng.normal(20, 2, 5000), "site": ["a", "b"] * 2500}))
    >>> same.drifted
    []
    >>> shifted = detector.compare(pl.DataFrame({"temp": rng.normal(23, 2, 5000), "site": ["a"] * 5000}))
    >>> shifted.drifted
    ['temp', 'site']

For streams, :class:`StreamingDrift` keeps a window of the most recent values and compares it
on demand. The statistics live in ``_drift_stats`` and the report in ``_drift_report``; both
are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from sygnify.errors import ConfigurationError, SchemaError
from sygnify.io.arrow import to_arrow_table
from sygnify.monitoring.drift.report import DriftReport, FeatureDrift
from sygnify.monitoring.drift.stats import (
    category_counts,
    chi2_from_counts,
    chi_square,
    jensen_shannon,
    js_from_counts,
    ks_test,
    psi,
    psi_from_counts,
    quantile_edges,
)

__all__ = [
    "DriftDetector",
    "DriftReport",
    "FeatureDrift",
    "StreamingDrift",
    "chi_square",
    "jensen_shannon",
    "ks_test",
    "psi",
]

NumericMethod = Literal["psi", "ks", "js"]


def _is_categorical(dtype: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_dictionary(dtype)
    )


class DriftDetector:
    """Compare batches against a reference dataset, per feature (predictions are one more column).

    ``features`` defaults to every numeric or categorical column of the reference.
    ``numeric_method`` picks how numeric drift is decided: ``"psi"`` (statistic > threshold,
    default 0.2), ``"ks"`` or ``"js"``; categoricals use χ² (p-value < ``alpha``).
    """

    def __init__(
        self,
        reference: Any,
        *,
        features: Sequence[str] | None = None,
        numeric_method: NumericMethod = "psi",
        psi_threshold: float = 0.2,
        js_threshold: float = 0.1,
        alpha: float = 0.05,
        bins: int = 10,
    ) -> None:
        table = to_arrow_table(reference)
        if numeric_method not in ("psi", "ks", "js"):
            raise ConfigurationError(f"numeric_method must be psi, ks or js, got {numeric_method!r}")
        names = (
            list(features)
            if features is not None
            else [
                f.name
                for f in table.schema
                if _is_categorical(f.type) or pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
            ]
        )
        missing = [n for n in names if n not in table.column_names]
        if missing:
            raise SchemaError(f"reference has no column(s) {missing}; it has {table.column_names}")
        self.numeric_method = numeric_method
        self.psi_threshold, self.js_threshold, self.alpha, self.bins = (
            psi_threshold,
            js_threshold,
            alpha,
            bins,
        )
        self._kinds: dict[str, Literal["numeric", "categorical"]] = {}
        self._numeric: dict[str, np.ndarray[Any, Any]] = {}
        self._categorical: dict[str, list[Any]] = {}
        self._edges: dict[str, np.ndarray[Any, Any]] = {}
        for name in names:
            column = table.column(name)
            if _is_categorical(column.type):
                self._kinds[name] = "categorical"
                self._categorical[name] = [v for v in column.cast(pa.string()).to_pylist() if v is not None]
            else:
                values = column.to_numpy(zero_copy_only=False).astype(float)
                values = values[~np.isnan(values)]
                if values.size == 0:
                    raise SchemaError(f"reference column {name!r} has no non-null values", resource=name)
                self._kinds[name] = "numeric"
                self._numeric[name] = values
                self._edges[name] = quantile_edges(values, bins)

    @property
    def features(self) -> list[str]:
        return list(self._kinds)

    @property
    def kinds(self) -> dict[str, Literal["numeric", "categorical"]]:
        """Each reference feature's kind (``"numeric"`` or ``"categorical"``), in reference order."""
        return dict(self._kinds)

    def compare(self, current: Any) -> DriftReport:
        """A :class:`DriftReport` of ``current`` (Arrow, Polars or pandas) against the reference."""
        table = to_arrow_table(current)
        missing = [n for n in self._kinds if n not in table.column_names]
        if missing:
            raise SchemaError(f"current data has no column(s) {missing}; it has {table.column_names}")
        results = []
        for name, kind in self._kinds.items():
            column = table.column(name)
            if kind == "numeric":
                values = column.to_numpy(zero_copy_only=False).astype(float)
                results.append(self.compare_numeric(name, values[~np.isnan(values)]))
            else:
                values_list = [v for v in column.cast(pa.string()).to_pylist() if v is not None]
                results.append(self.compare_categorical(name, values_list))
        return DriftReport(results)

    def compare_numeric(self, name: str, current: np.ndarray[Any, Any]) -> FeatureDrift:
        reference, edges = self._numeric[name], self._edges[name]
        ref_counts = np.histogram(reference, edges)[0].astype(float)
        cur_counts = np.histogram(current, edges)[0].astype(float)
        stats = {
            "psi": psi_from_counts(ref_counts, cur_counts),
            "js": js_from_counts(ref_counts, cur_counts),
        }
        if current.size:
            stats["ks"], stats["ks_pvalue"] = ks_test(reference, current)
        else:
            stats["ks"], stats["ks_pvalue"] = 0.0, 1.0
        method = self.numeric_method
        if method == "psi":
            threshold, drifted = self.psi_threshold, stats["psi"] > self.psi_threshold
        elif method == "js":
            threshold, drifted = self.js_threshold, stats["js"] > self.js_threshold
        else:
            threshold, drifted = self.alpha, stats["ks_pvalue"] < self.alpha
        return FeatureDrift(
            name,
            "numeric",
            method,
            stats,
            threshold,
            bool(drifted and current.size > 0),
            reference.size,
            int(current.size),
        )

    def compare_categorical(self, name: str, current: Sequence[Any]) -> FeatureDrift:
        ref_counts, cur_counts = category_counts(self._categorical[name], current)
        chi2, pvalue = chi2_from_counts(ref_counts, cur_counts)
        stats = {
            "chi2": chi2,
            "chi2_pvalue": pvalue,
            "psi": psi_from_counts(ref_counts, cur_counts),
            "js": js_from_counts(ref_counts, cur_counts),
        }
        drifted = pvalue < self.alpha and len(current) > 0
        return FeatureDrift(
            name,
            "categorical",
            "chi2",
            stats,
            self.alpha,
            drifted,
            len(self._categorical[name]),
            len(current),
        )


class StreamingDrift:
    """Windowed drift for streams: ``update(batch)`` keeps the last ``window`` values per feature.

    Updating costs O(rows in the batch) (ring buffers); :meth:`report` compares the window
    with the reference. ``every`` makes :meth:`update` return a report each time that many
    rows have arrived (None in between)::

        >>> import numpy as np, polars as pl
        >>> rng = np.random.default_rng(2)
        >>> stream = StreamingDrift(pl.DataFrame({"x": rng.normal(0, 1, 4000)}), window=1000, every=1000)
        >>> [stream.update(pl.DataFrame({"x": rng.normal(mu, 1, 500)})) is not None for mu in (0, 0, 3, 3)]
        [False, True, False, True]
        >>> stream.report().drifted
        ['x']
    """

    def __init__(
        self, reference: Any, *, window: int = 10_000, every: int | None = None, **options: Any
    ) -> None:
        if window < 1:
            raise ConfigurationError(f"window must be >= 1, got {window}")
        self.detector = DriftDetector(reference, **options)
        self.window, self.every = window, every
        self._numeric = {n: np.empty(window) for n, k in self.detector.kinds.items() if k == "numeric"}
        self._categorical: dict[str, list[Any]] = {
            n: [None] * window for n, k in self.detector.kinds.items() if k == "categorical"
        }
        self._next = 0
        self._size = 0
        self._since_report = 0

    def update(self, batch: Any) -> DriftReport | None:
        table = to_arrow_table(batch)
        rows = table.num_rows
        if rows == 0:
            return None
        take = min(rows, self.window)
        start = rows - take
        positions = (self._next + np.arange(take)) % self.window
        for name, buffer in self._numeric.items():
            buffer[positions] = table.column(name).slice(start).to_numpy(zero_copy_only=False).astype(float)
        for name, values in self._categorical.items():
            for position, value in zip(
                positions.tolist(), table.column(name).slice(start).cast(pa.string()).to_pylist()
            ):
                values[position] = value
        self._next = (self._next + take) % self.window
        self._size = min(self.window, self._size + take)
        self._since_report += rows
        if self.every is not None and self._since_report >= self.every:
            self._since_report = 0
            return self.report()
        return None

    def report(self) -> DriftReport:
        """Compare the current window with the reference."""
        results = []
        for name, kind in self.detector.kinds.items():
            if kind == "numeric":
                values = (
                    self._numeric[name][: self._size] if self._size < self.window else self._numeric[name]
                )
                results.append(self.detector.compare_numeric(name, values[~np.isnan(values)]))
            else:
                window = (
                    self._categorical[name]
                    if self._size == self.window
                    else self._categorical[name][: self._size]
                )
                results.append(self.detector.compare_categorical(name, [v for v in window if v is not None]))
        return DriftReport(results)
