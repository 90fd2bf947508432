"""Conformance kits: the suites sygnify's own plugins pass, shipped so a third party's pass them too.

One module per plugin kind, each with a pytest base class (subclass it and provide its
fixtures) and a ``check_*`` function that runs the same checks without pytest:

- :mod:`sygnify.testing.connectors`: :class:`~sygnify.testing.connectors.ConnectorConformance`,
  :func:`~sygnify.testing.connectors.check_connector`
- :mod:`sygnify.testing.sources`: :class:`~sygnify.testing.sources.SourceConformance` over a
  :class:`~sygnify.testing.sources.SourceHarness`, :func:`~sygnify.testing.sources.check_stream_source`
- :mod:`sygnify.testing.backends`: :class:`~sygnify.testing.backends.ModelBackendConformance`,
  :func:`~sygnify.testing.backends.check_model_backend`
- :mod:`sygnify.testing.detectors`: anomaly detectors
  (:func:`~sygnify.testing.detectors.check_anomaly_detector`) and drift detectors
  (:func:`~sygnify.testing.detectors.check_drift_detector`,
  :func:`~sygnify.testing.detectors.check_streaming_drift`)

A failed check raises :class:`AssertionError` saying what was expected and what was seen.
The kits need no test framework; the modules are imported on demand, so importing
``sygnify.testing`` costs nothing::

    >>> from sygnify.testing.connectors import sample_table
    >>> sample_table(2).column_names
    ['id', 'account', 'amount']
"""

__all__: list[str] = []
