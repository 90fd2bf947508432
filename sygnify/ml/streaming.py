"""Deprecated path: moved to :mod:`sygnify.ml.stream` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.ml.stream import *  # noqa: F403
from sygnify.ml.stream import __all__ as __all__

warn_moved("sygnify.ml.streaming", "sygnify.ml.stream")
