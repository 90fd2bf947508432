"""Deprecated path: moved to :mod:`sygnify.streams.nats` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.streams.nats import *  # noqa: F403
from sygnify.streams.nats import __all__ as __all__

warn_moved("sygnify.ml.sources.nats", "sygnify.streams.nats")
