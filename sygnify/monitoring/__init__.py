"""Monitoring: metrics, drift, anomaly detection and alerts, fed by :mod:`sygnify.events`.

Everything here is imported lazily: ``sygnify.events`` is used by every layer and
must stay free of optional dependencies, while metrics need ``prometheus-client`` and drift
needs ``scipy`` (``pip install 'sygnify[monitoring]'``).

>>> from sygnify.monitoring import EWMA
>>> EWMA(alpha=0.2).update(1.0)
0.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sygnify.monitoring.alerts import (
        Alert,
        AlertManager,
        AlertSink,
        AnomalyScore,
        BreakerOpen,
        CallbackAlertSink,
        DriftDetected,
        LogAlertSink,
        RateOfChange,
        Rule,
        RuleHits,
        Threshold,
        WebhookAlertSink,
    )
    from sygnify.monitoring.anomaly import EWMA, IQR, AnomalyDetector, IsolationForestDetector, RollingZScore
    from sygnify.monitoring.drift import (
        DriftDetector,
        DriftReport,
        FeatureDrift,
        StreamingDrift,
        chi_square,
        jensen_shannon,
        ks_test,
        psi,
    )
    from sygnify.monitoring.metrics import MetricsServer, PrometheusMetrics, serve_metrics

_EXPORTS = {
    "alerts": [
        "Alert",
        "AlertManager",
        "AnomalyScore",
        "BreakerOpen",
        "CallbackAlertSink",
        "DriftDetected",
        "LogAlertSink",
        "RateOfChange",
        "Rule",
        "RuleHits",
        "AlertSink",
        "Threshold",
        "WebhookAlertSink",
    ],
    "anomaly": ["EWMA", "IQR", "AnomalyDetector", "IsolationForestDetector", "RollingZScore"],
    "drift": [
        "DriftDetector",
        "DriftReport",
        "FeatureDrift",
        "StreamingDrift",
        "chi_square",
        "jensen_shannon",
        "ks_test",
        "psi",
    ],
    "metrics": ["MetricsServer", "PrometheusMetrics", "serve_metrics"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
# Old alert-sink names: sygnify.monitoring.alerts resolves them with a DeprecationWarning.
_WHERE.update(dict.fromkeys(("Sink", "LogSink", "CallbackSink", "WebhookSink"), "alerts"))

__all__ = [
    "Alert",
    "AlertManager",
    "AnomalyDetector",
    "AnomalyScore",
    "BreakerOpen",
    "CallbackAlertSink",
    "DriftDetected",
    "DriftDetector",
    "DriftReport",
    "EWMA",
    "FeatureDrift",
    "IQR",
    "IsolationForestDetector",
    "LogAlertSink",
    "MetricsServer",
    "PrometheusMetrics",
    "RateOfChange",
    "RollingZScore",
    "Rule",
    "RuleHits",
    "AlertSink",
    "StreamingDrift",
    "Threshold",
    "WebhookAlertSink",
    "chi_square",
    "jensen_shannon",
    "ks_test",
    "psi",
    "serve_metrics",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sygnify.monitoring' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sygnify.monitoring.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
