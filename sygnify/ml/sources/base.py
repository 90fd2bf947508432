"""Deprecated path: moved to :mod:`sygnify.streams.base` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.streams.base import *  # noqa: F403
from sygnify.streams.base import __all__ as __all__

warn_moved("sygnify.ml.sources.base", "sygnify.streams.base")
