"""Deprecated path: moved to :mod:`sygnify.streams.mqtt` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.streams.mqtt import *  # noqa: F403
from sygnify.streams.mqtt import __all__ as __all__

warn_moved("sygnify.ml.sources.mqtt", "sygnify.streams.mqtt")
