"""Tests of ``sygnify.clouds``: each cloud's error map, table-driven over real SDK exceptions."""

from __future__ import annotations

from sygnify.clouds.base import Refine
from sygnify.errors import SygnifyError

__all__ = ["assert_translates"]


def assert_translates(
    translate: Refine, exc: BaseException, expected: type[SygnifyError] | None
) -> SygnifyError | None:
    """``translate`` makes exactly ``expected`` of ``exc`` (``None``: it leaves it), keeping the context."""
    error = translate(exc, "op failed", "res")
    assert (type(error) if error is not None else None) is expected, (exc, error)
    if error is not None:
        assert error.resource == "res"
        assert error.message.startswith("op failed")
    return error
