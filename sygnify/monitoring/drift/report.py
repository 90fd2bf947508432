"""How drift results are presented: per-feature :class:`FeatureDrift` and the :class:`DriftReport`.

A report renders as an HTML table in notebooks, plots PSI per feature and converts to Polars::

    >>> report = DriftReport([FeatureDrift("x", "numeric", "psi", {"psi": 0.3}, 0.2, True, 100, 100)])
    >>> report.drifted, report["x"].score
    (['x'], 0.3)
    >>> report.to_polars().columns
    ['feature', 'kind', 'method', 'drifted', 'threshold', 'psi']
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from sygnify.errors import ConfigurationError

__all__ = ["DriftReport", "FeatureDrift"]


@dataclass(frozen=True)
class FeatureDrift:
    """Drift statistics of one feature; ``drifted`` follows ``method`` and its ``threshold``."""

    feature: str
    kind: Literal["numeric", "categorical"]
    method: str
    statistics: dict[str, float]
    threshold: float
    drifted: bool
    reference_size: int
    current_size: int

    @property
    def score(self) -> float:
        """The statistic the decision was made on (a p-value for χ² and KS)."""
        return self.statistics[
            "chi2_pvalue" if self.method == "chi2" else ("ks_pvalue" if self.method == "ks" else self.method)
        ]


@dataclass
class DriftReport:
    """Per-feature drift results, with an HTML table in notebooks and a bar plot."""

    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def drifted(self) -> list[str]:
        """Names of the features that drifted."""
        return [f.feature for f in self.features if f.drifted]

    @property
    def any_drift(self) -> bool:
        return bool(self.drifted)

    def __getitem__(self, feature: str) -> FeatureDrift:
        for result in self.features:
            if result.feature == feature:
                return result
        raise KeyError(feature)

    def to_polars(self) -> pl.DataFrame:
        """One row per feature: kind, method, drifted, and every statistic as a column."""
        rows = [
            {
                "feature": f.feature,
                "kind": f.kind,
                "method": f.method,
                "drifted": f.drifted,
                "threshold": f.threshold,
                **f.statistics,
            }
            for f in self.features
        ]
        return pl.DataFrame(rows) if rows else pl.DataFrame()

    def _repr_html_(self) -> str:
        header = (
            "<tr>"
            + "".join(
                f"<th>{name}</th>" for name in ("feature", "kind", "method", "score", "threshold", "drifted")
            )
            + "</tr>"
        )
        body = "".join(
            f"<tr style='color:{'#b00' if f.drifted else 'inherit'}'><td>{html.escape(f.feature)}</td>"
            f"<td>{f.kind}</td><td>{f.method}</td><td>{f.score:.4g}</td><td>{f.threshold:.4g}</td>"
            f"<td>{'yes' if f.drifted else 'no'}</td></tr>"
            for f in self.features
        )
        caption = f"<caption>Drift: {len(self.drifted)} of {len(self.features)} features</caption>"
        return f"<table>{caption}{header}{body}</table>"

    def __repr__(self) -> str:
        return f"DriftReport(features={len(self.features)}, drifted={self.drifted})"

    def plot(self, ax: Any = None) -> Any:
        """A bar chart of PSI per feature with the drift threshold (needs matplotlib)."""
        try:
            import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
        except ImportError as exc:
            raise ConfigurationError(
                "DriftReport.plot needs matplotlib, which is optional: pip install matplotlib"
            ) from exc
        if ax is None:
            _, ax = plt.subplots(figsize=(max(4, len(self.features) * 0.8), 3))
        names = [f.feature for f in self.features]
        values = [f.statistics.get("psi", math.nan) for f in self.features]
        ax.bar(names, values, color=["#c33" if f.drifted else "#4a7" for f in self.features])
        ax.axhline(0.2, linestyle="--", color="grey")
        ax.set_ylabel("PSI")
        ax.set_title("Drift against reference")
        return ax
