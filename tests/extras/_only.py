"""What the per-extra test sessions share: which extra this environment holds alone.

A nox session per extra installs ``sygnify[EXTRA]`` and pytest, nothing else, and sets
``SYGNIFY_EXTRA_ONLY=EXTRA``; its tests then also check that the packages other extras
bring are really absent (the ``test`` extra installs pandas, and hid a missing dependency).
Outside such a session the same tests run in the full test environment, without that check.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tests.emulators import ManagedProcess, ensure_venv, free_port, wait_for_port
from tests.emulators.fakesnow import REQUIREMENTS, FakesnowServer, running_fakesnow

ENV = "SYGNIFY_EXTRA_ONLY"


def only_extra() -> str | None:
    """The extra this environment holds alone (``SYGNIFY_EXTRA_ONLY``), or None."""
    return os.environ.get(ENV) or None


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@contextmanager
def fakesnow_server() -> Iterator[FakesnowServer]:
    """A fakesnow server: the suite's own, or (in an extra-only session) one of its own venv.

    The suite's venv is keyed by the interpreter that made it, so an extra-only session, on
    another interpreter, would rebuild it under the suite's feet; its venv is built from the
    real interpreter behind the session's venv instead, once.
    """
    if only_extra() is None:
        with running_fakesnow() as server:
            yield server
        return
    bin_dir = ensure_venv("fakesnow-extras", REQUIREMENTS, python=os.path.realpath(sys.executable))
    port = free_port()
    process = ManagedProcess(
        "fakesnow-extras", [str(bin_dir / "fakesnow"), "-s", "-p", str(port), "--host", "127.0.0.1"]
    )
    try:
        process.wait_ready(lambda: wait_for_port(port, timeout=60, process=process.process))
        yield FakesnowServer(port)
    finally:
        process.stop()
