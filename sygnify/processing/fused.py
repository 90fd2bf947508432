"""Deprecated path: moved to :mod:`sygnify.processing.modes.fused` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.processing.modes.fused import *  # noqa: F403
from sygnify.processing.modes.fused import __all__ as __all__

warn_moved("sygnify.processing.fused", "sygnify.processing.modes.fused")
