"""How tests treat a missing emulator or service: skip locally, FAIL in CI."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(available: bool, reason: str) -> None:
    """Skip the test (outside CI) or fail it (with CI=true) when ``available`` is false."""
    if available:
        return
    if in_ci():
        pytest.fail(f"required service missing in CI: {reason}", pytrace=False)
    pytest.skip(f"{reason} (set CI=true to make this a failure)")
