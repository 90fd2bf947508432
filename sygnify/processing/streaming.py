"""Deprecated path: moved to :mod:`sygnify.processing.modes.streaming` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.processing.modes.streaming import *  # noqa: F403
from sygnify.processing.modes.streaming import __all__ as __all__

warn_moved("sygnify.processing.streaming", "sygnify.processing.modes.streaming")
