"""Fixtures every connector test module uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sygnify import CloudDataConnector


@pytest.fixture
def connector() -> Iterator[CloudDataConnector]:
    """A facade that ignores the environment (no SYGNIFY_* variables leak into a test)."""
    with CloudDataConnector(environ={}) as facade:
        yield facade
