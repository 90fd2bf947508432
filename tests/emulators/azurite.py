"""Azurite (Azure Blob Storage emulator, npm) in its own prefix, on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.emulators import ManagedProcess, ensure_npm_package, free_port, wait_for_port

PACKAGE = "azurite@3.37.0"
#: The documented well-known development account of Azurite (not a secret).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class AzuriteServer:
    """A running Azurite blob service."""

    host: str
    port: int
    process: ManagedProcess

    @property
    def endpoint(self) -> str:
        """The blob endpoint URL (path style: account name in the path)."""
        return f"http://{self.host}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.endpoint};"
        )


@contextmanager
def azurite_server(*, name: str = "azurite") -> Iterator[AzuriteServer]:
    """Install (once) and start ``azurite-blob`` in memory; stop it on exit."""
    bin_dir = ensure_npm_package("azurite", PACKAGE)
    port = free_port()
    command = [
        str(bin_dir / "azurite-blob"),
        "--blobHost", "127.0.0.1",
        "--blobPort", str(port),
        "--inMemoryPersistence",
        "--skipApiVersionCheck",
        "--loose",
        "--silent",
        "--disableTelemetry",
        "--extentMemoryLimit", "512",
    ]  # fmt: skip
    process = ManagedProcess(name, command)
    process.wait_ready(lambda: wait_for_port(port, timeout=60, process=process.process))
    try:
        yield AzuriteServer("127.0.0.1", port, process)
    finally:
        process.stop()
