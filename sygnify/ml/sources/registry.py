"""Deprecated path: moved to :mod:`sygnify.streams.registry` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.streams.registry import *  # noqa: F403
from sygnify.streams.registry import __all__ as __all__

warn_moved("sygnify.ml.sources.registry", "sygnify.streams.registry")
