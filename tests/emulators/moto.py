"""moto server (S3, STS, IAM) in its own virtual environment, on a free loopback port."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.emulators import ManagedProcess, ensure_venv, free_port, wait_for_http

REQUIREMENTS = ("moto[server]==5.2.5",)


@dataclass(frozen=True)
class MotoServer:
    """A running moto server: its endpoint URL and the process behind it."""

    endpoint: str
    process: ManagedProcess

    def reset(self) -> None:
        """Forget every bucket, user and object (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def set_no_auth_count(self, count: int) -> None:
        """Let the next ``count`` requests through without IAM checks, then enforce them."""
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            method="POST",
            data=json.dumps(count).encode(),
            headers={"Content-Type": "text/plain"},  # a form content type would hide the body
        )
        with urllib.request.urlopen(request, timeout=10):
            pass


@contextmanager
def moto_server(*, name: str = "moto", env: dict[str, str] | None = None) -> Iterator[MotoServer]:
    """Install (once) and start ``moto_server``; stop it on exit."""
    bin_dir = ensure_venv("moto", REQUIREMENTS)
    port = free_port()
    process = ManagedProcess(
        name, [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env=env
    )
    endpoint = f"http://127.0.0.1:{port}"
    process.wait_ready(lambda: wait_for_http(f"{endpoint}/moto-api/", timeout=60, process=process.process))
    try:
        yield MotoServer(endpoint, process)
    finally:
        process.stop()
