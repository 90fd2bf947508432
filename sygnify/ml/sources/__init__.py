"""Deprecated path: moved to :mod:`sygnify.streams` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.streams import *  # noqa: F403
from sygnify.streams import __all__ as __all__

warn_moved("sygnify.ml.sources", "sygnify.streams")
