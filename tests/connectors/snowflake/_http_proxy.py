"""A loopback HTTP proxy in front of a fakesnow server that answers 503 to chosen requests.

Everything is forwarded unchanged except the requests whose path contains ``fail_path`` while
``failing`` is set: those get ``503 Service Unavailable`` and are counted (with their arrival
times), so a test can see how many attempts the Snowflake driver made and over how long.
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "host"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _forward(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        proxy = self.server.proxy
        if proxy.failing and proxy.fail_path in self.path:
            with proxy.lock:
                proxy.failed_at.append(time.monotonic())
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request(method, self.path, body or None, headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self._forward("POST")

    def do_GET(self) -> None:
        self._forward("GET")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: FailingProxy) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.proxy = proxy


class FailingProxy:
    """``FailingProxy(host, port)``; ``port`` to connect to; ``failing = True`` starts the 503s."""

    def __init__(self, upstream_host: str, upstream_port: int, *, fail_path: str = "/queries/") -> None:
        self.upstream_host, self.upstream_port, self.fail_path = upstream_host, upstream_port, fail_path
        self.failing = False
        self.failed_at: list[float] = []
        self.lock = threading.Lock()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
