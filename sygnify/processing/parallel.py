"""Deprecated path: moved to :mod:`sygnify.processing.modes.parallel` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.processing.modes.parallel import *  # noqa: F403
from sygnify.processing.modes.parallel import __all__ as __all__

warn_moved("sygnify.processing.parallel", "sygnify.processing.modes.parallel")
