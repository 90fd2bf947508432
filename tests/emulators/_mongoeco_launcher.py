"""Serve a mongoeco wire server until killed (run by the mongoeco venv's Python 3.13).

Usage: python _mongoeco_launcher.py PORT URI_FILE [USER:PASSWORD ...]

Writes the server's URI to URI_FILE once it listens; users given on the command line
(or none: no authentication) can log in with SCRAM-SHA-256/SCRAM-SHA-1 against ``admin``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path


async def serve(port: int, uri_file: Path, users: list[str]) -> None:
    from mongoeco.wire.auth import WireAuthUser
    from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

    auth_users = tuple(
        WireAuthUser(username=name, password=password, roles=({"role": "root", "db": "admin"},))
        for name, _, password in (entry.partition(":") for entry in users)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with AsyncMongoEcoProxyServer(
        engine=None, host="127.0.0.1", port=port, auth_users=auth_users
    ) as server:
        temporary = uri_file.with_suffix(".tmp")
        temporary.write_text(server.address.uri)
        temporary.replace(uri_file)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]))
