"""Old import paths kept for one release after the layout change; each warns once on import."""

from __future__ import annotations

import warnings

__all__ = ["warn_moved"]


def warn_moved(old: str, new: str) -> None:
    """Warn that module ``old`` now lives at ``new`` (called by the shim module ``old``)."""
    warnings.warn(
        f"{old} moved to {new}; import from {new} (the old path goes in the next release)",
        DeprecationWarning,
        stacklevel=3,
    )
