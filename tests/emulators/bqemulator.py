"""bqemulator (a local BigQuery stand-in: REST + gRPC Storage Read API), run from its own venv.

bqemulator tries to download DuckDB extensions when it starts, which fails offline, so it
is started through ``bqemulator_launcher.py``, which turns those downloads into no-ops first.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.emulators import ManagedProcess, ensure_venv, free_port, wait_for_http, wait_for_port

REQUIREMENTS = ["bqemulator", "numpy", "google-cloud-bigquery"]
LAUNCHER = Path(__file__).with_name("bqemulator_launcher.py")
PROJECT = "test-proj"


@dataclass(frozen=True)
class BigQueryEmulator:
    rest_port: int
    grpc_port: int
    project: str = PROJECT

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


@contextmanager
def running_bqemulator() -> Iterator[BigQueryEmulator]:
    """Start bqemulator on free ports; stop it on exit (raises EmulatorUnavailable)."""
    bin_dir = ensure_venv("bqemulator", REQUIREMENTS, python=sys.executable)
    rest, grpc = free_port(), free_port()
    process = ManagedProcess(
        "bqemulator",
        [
            str(bin_dir / "python"),
            str(LAUNCHER),
            "start",
            "--rest-host",
            "127.0.0.1",
            "--rest-port",
            str(rest),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            str(grpc),
            "--project",
            PROJECT,
            "--ephemeral",
        ],
    )
    try:

        def ready() -> None:
            wait_for_port(rest, timeout=120, process=process.process)
            wait_for_port(grpc, timeout=60, process=process.process)
            wait_for_http(f"http://127.0.0.1:{rest}/bigquery/v2/projects/{PROJECT}/datasets", timeout=60)

        process.wait_ready(ready)
        yield BigQueryEmulator(rest, grpc)
    finally:
        process.stop()
