"""Deprecated path: moved to :mod:`sygnify.ml.routing` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.ml.routing import *  # noqa: F403
from sygnify.ml.routing import __all__ as __all__

warn_moved("sygnify.ml.registry", "sygnify.ml.routing")
