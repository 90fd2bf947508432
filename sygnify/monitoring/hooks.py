"""Deprecated path: moved to :mod:`sygnify.events` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.events import *  # noqa: F403
from sygnify.events import __all__ as __all__

warn_moved("sygnify.monitoring.hooks", "sygnify.events")
