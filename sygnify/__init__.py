"""sygnify: cloud data connectors, larger-than-memory processing, real-time ML and monitoring.

>>> import sygnify
>>> sorted(sygnify.__all__)
['CloudDataConnector', 'LargeDataHandler', 'RealTimeML', '__version__', 'errors']
"""

from importlib.metadata import PackageNotFoundError, version

from sygnify import errors
from sygnify.connectors import CloudDataConnector
from sygnify.ml import RealTimeML
from sygnify.processing import LargeDataHandler

try:
    __version__ = version("sygnify")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["CloudDataConnector", "LargeDataHandler", "RealTimeML", "__version__", "errors"]
