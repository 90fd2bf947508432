"""Deprecated path: moved to :mod:`sygnify.streams.decoding` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.streams.decoding import *  # noqa: F403
from sygnify.streams.decoding import __all__ as __all__

warn_moved("sygnify.ml.sources.decoding", "sygnify.streams.decoding")
