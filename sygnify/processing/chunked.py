"""Deprecated path: moved to :mod:`sygnify.processing.modes.chunked` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.processing.modes.chunked import *  # noqa: F403
from sygnify.processing.modes.chunked import __all__ as __all__

warn_moved("sygnify.processing.chunked", "sygnify.processing.modes.chunked")
