"""Deprecated path: moved to :mod:`sygnify.streams.kafka` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.streams.kafka import *  # noqa: F403
from sygnify.streams.kafka import __all__ as __all__

warn_moved("sygnify.ml.sources.kafka", "sygnify.streams.kafka")
