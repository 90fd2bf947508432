"""fakesnow in server mode (a Snowflake stand-in over HTTP, on DuckDB), run from its own venv.

fakesnow breaks with snowflake-connector-python 5.x, so its venv pins ``<5``.
Known server-mode bugs (worked around in the tests, never in sygnify): a NULL
TIMESTAMP_NTZ comes back as 1970-01-01; SUM(int) returns REAL;
``write_pandas(auto_create_table=True)`` fails.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.emulators import ManagedProcess, ensure_venv, free_port, wait_for_port

REQUIREMENTS = ["fakesnow[server]", "snowflake-connector-python<5"]


@dataclass(frozen=True)
class FakesnowServer:
    port: int
    host: str = "127.0.0.1"

    def connect_options(self) -> dict[str, object]:
        """Options for ``connect("snowflake", ...)`` that reach this server."""
        return {
            "account": "fakesnow",
            "user": "fake",
            "password": "snow",
            "host": self.host,
            "port": self.port,
            "protocol": "http",
        }


@contextmanager
def running_fakesnow() -> Iterator[FakesnowServer]:
    """Start a fakesnow server on a free port; stop it on exit (raises EmulatorUnavailable)."""
    bin_dir = ensure_venv("fakesnow", REQUIREMENTS, python=sys.executable)
    port = free_port()
    process = ManagedProcess(
        "fakesnow", [str(bin_dir / "fakesnow"), "-s", "-p", str(port), "--host", "127.0.0.1"]
    )
    try:
        process.wait_ready(lambda: wait_for_port(port, timeout=60, process=process.process))
        yield FakesnowServer(port)
    finally:
        process.stop()
