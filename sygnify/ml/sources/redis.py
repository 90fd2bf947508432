"""Deprecated path: moved to :mod:`sygnify.streams.redis` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.streams.redis import *  # noqa: F403
from sygnify.streams.redis import __all__ as __all__

warn_moved("sygnify.ml.sources.redis", "sygnify.streams.redis")
