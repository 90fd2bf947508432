"""``pip install "sygnify[monitoring]"`` alone serves metrics, measures drift and flags anomalies.

The Prometheus endpoint is scraped over HTTP with httpx; drift uses scipy's KS and χ² tests,
the isolation forest scikit-learn. In the ``monitoring``-only session
(``SYGNIFY_EXTRA_ONLY=monitoring``: sygnify[monitoring] and pytest, nothing else) it also
checks that no other extra's packages (pandas above all) are there.
"""

from __future__ import annotations

import httpx
import numpy as np
import polars as pl
import pytest
from prometheus_client import CollectorRegistry

from sygnify import events
from sygnify.monitoring import DriftDetector, IsolationForestDetector, PrometheusMetrics, serve_metrics
from tests.extras._only import check_alone, only_extra


@pytest.mark.skipif(only_extra() != "monitoring", reason="only in the monitoring-only environment")
def test_the_environment_holds_the_monitoring_extra_alone() -> None:
    check_alone("monitoring")


def test_scrape_the_metrics_endpoint_with_the_monitoring_extra() -> None:
    metrics = PrometheusMetrics(registry=CollectorRegistry()).install()
    try:
        events.emit(
            "model.prediction", model="iris", version="v1", rows=3, latency_s=0.01, outcome="ok", error=None
        )
        with serve_metrics(metrics, port=0) as server:
            response = httpx.get(server.url, timeout=10)
    finally:
        metrics.uninstall()
    assert response.status_code == 200
    assert 'sygnify_model_predictions_total{model="iris",outcome="ok",version="v1"} 3.0' in response.text


def test_drift_and_anomalies_with_the_monitoring_extra() -> None:
    gen = np.random.default_rng(0)
    reference = pl.DataFrame({"temp": gen.normal(20, 2, 2000), "site": gen.choice(["a", "b"], 2000)})
    detector = DriftDetector(reference, numeric_method="ks")
    current = pl.DataFrame({"temp": gen.normal(23, 2, 1000), "site": gen.choice(["a", "b"], 1000)})
    report = detector.compare(current)
    assert report.drifted == ["temp"]
    assert report["temp"].statistics["ks_pvalue"] < 0.01
    assert report["site"].kind == "categorical"
    forest = IsolationForestDetector(window=256, refit_every=128, threshold=0.7, random_state=0)
    for value in gen.normal(10, 1, 500):
        forest.update(value)
    forest.update(30.0)
    assert forest.is_anomaly
