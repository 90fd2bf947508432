"""The connector conformance suite now ships as :mod:`sygnify.testing.connectors`."""

from sygnify.testing.connectors import ConnectorConformance, sample_table

__all__ = ["ConnectorConformance", "sample_table"]
