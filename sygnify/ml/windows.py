"""Deprecated path: moved to :mod:`sygnify.streams.windows` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.streams.windows import *  # noqa: F403
from sygnify.streams.windows import __all__ as __all__

warn_moved("sygnify.ml.windows", "sygnify.streams.windows")
