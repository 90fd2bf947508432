"""Deprecated path: moved to :mod:`sygnify.io.arrow` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.io.arrow import *  # noqa: F403
from sygnify.io.arrow import __all__ as __all__

warn_moved("sygnify._arrow", "sygnify.io.arrow")
