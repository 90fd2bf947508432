"""Monitoring: metrics, drift, anomaly detection and alerts (hooks live in ``hooks``)."""
