"""The mongoeco wire server: a MongoDB stand-in speaking real OP_MSG (needs Python 3.13).

Started from its own virtual environment through ``_mongoeco_launcher.py``; pymongo
connects to :attr:`MongoEcoServer.uri` (``?directConnection=true``). Users given to
:func:`start` log in with SCRAM-SHA-256. mongoeco has no change streams.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from tests.emulators import HOME, EmulatorUnavailable, ManagedProcess, ensure_venv, free_port

PYTHON = os.environ.get("SYGNIFY_PYTHON313", "/root/.pyenv/versions/3.13.0/bin/python3")
REQUIREMENTS = ["mongoeco[wire]"]
# Run with -P: the launcher's folder holds this module, which would shadow the mongoeco package.
LAUNCHER = Path(__file__).with_name("_mongoeco_launcher.py")


@dataclass
class MongoEcoServer:
    uri: str
    port: int
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()


def start(users: dict[str, str] | None = None, *, timeout: float = 60) -> MongoEcoServer:
    """Start a server on a free port; raises :class:`EmulatorUnavailable` if it cannot."""
    bin_dir = ensure_venv("mongoeco", REQUIREMENTS, python=PYTHON)
    port = free_port()
    uri_file = HOME / "logs" / f"mongoeco-{port}.uri"
    uri_file.parent.mkdir(parents=True, exist_ok=True)
    uri_file.unlink(missing_ok=True)
    credentials = [f"{name}:{password}" for name, password in (users or {}).items()]
    process = ManagedProcess(
        f"mongoeco-{port}",
        [str(bin_dir / "python"), "-P", str(LAUNCHER), str(port), str(uri_file), *credentials],
    )

    def ready() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.process.poll() is not None:
                raise EmulatorUnavailable(f"exited with {process.process.returncode}")
            if uri_file.exists():
                return
            time.sleep(0.1)
        raise EmulatorUnavailable(f"no URI written within {timeout} s")

    process.wait_ready(ready)
    uri = uri_file.read_text().strip()
    uri_file.unlink(missing_ok=True)
    return MongoEcoServer(uri=uri, port=port, process=process)
