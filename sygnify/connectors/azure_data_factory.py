"""Deprecated path: moved to :mod:`sygnify.orchestrators.azure_data_factory` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.orchestrators.azure_data_factory import *  # noqa: F403
from sygnify.orchestrators.azure_data_factory import __all__ as __all__

warn_moved("sygnify.connectors.azure_data_factory", "sygnify.orchestrators.azure_data_factory")
