"""A loopback TCP proxy that can cut a connection after some bytes (PostgreSQL fault injection).

``tests/connectors/_fault_proxy.py`` speaks HTTP; the PostgreSQL wire protocol needs a byte
pipe, so this one forwards raw TCP to ``upstream``. Once armed with
:meth:`TcpProxy.drop_after`, it counts the bytes the server sends (over all connections)
and closes both ends of the connection that carries the last byte of that budget: a
connection lost in the middle of a result.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``upstream``; see the module docstring."""

    upstream: tuple[str, int]
    drops: int = 0
    _drop_after: int | None = None  # server bytes left before the cut; None: not armed
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None
    _sockets: list[socket.socket] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    def drop_after(self, server_bytes: int) -> None:
        """Cut the connection that carries the server's ``server_bytes``-th byte from now on."""
        with self._lock:
            self._drop_after = server_bytes

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener = listener
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_server and self._spend(len(data)):
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    end.close()

    def _spend(self, size: int) -> bool:
        """Count server bytes against an armed budget; True: cut this connection now."""
        with self._lock:
            if self._drop_after is None:
                return False
            self._drop_after -= size
            if self._drop_after > 0:
                return False
            self._drop_after = None
            self.drops += 1
            return True

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def tcp_proxy(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy((host, port))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
