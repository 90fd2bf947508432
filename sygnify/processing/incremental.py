"""Deprecated path: moved to :mod:`sygnify.processing.modes.incremental` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.processing.modes.incremental import *  # noqa: F403
from sygnify.processing.modes.incremental import __all__ as __all__

warn_moved("sygnify.processing.incremental", "sygnify.processing.modes.incremental")
