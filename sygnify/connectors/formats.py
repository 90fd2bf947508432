"""Deprecated path: moved to :mod:`sygnify.io.formats` (kept for one release)."""

from sygnify._moved import warn_moved
from sygnify.io.formats import *  # noqa: F403
from sygnify.io.formats import __all__ as __all__

warn_moved("sygnify.connectors.formats", "sygnify.io.formats")
