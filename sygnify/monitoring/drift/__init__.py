"""Data and model drift: PSI, KS, Jensen-Shannon and chi-square against a reference."""

from sygnify.monitoring.drift.detectors import (
    DriftDetector,
    DriftReport,
    FeatureDrift,
    StreamingDrift,
    chi_square,
    jensen_shannon,
    ks_test,
    psi,
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
