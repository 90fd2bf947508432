"""A loopback HTTP proxy that injects faults in front of an emulator (moto, Azurite).

Point a client's endpoint at ``proxy.url``; requests are forwarded to ``upstream`` unless a
fault rule matches, in which case the proxy answers 503 (S3 ``SlowDown`` or Azure
``ServerBusy``), drops the connection without answering (``drop``), or forwards the request
and then drops the connection (``lost_response``: the store did it, the client never hears).
Rules fire a given number of times (or forever), so tests can prove that retries recover
and that the breaker opens.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

Fault = Literal["s3_slowdown", "azure_busy", "http_500", "drop", "lost_response"]
Matcher = Callable[[str, str], bool]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}

_BODIES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "s3_slowdown": (
        503,
        {"Content-Type": "application/xml", "Retry-After": "0"},
        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
        b"<Message>Please reduce your request rate.</Message></Error>",
    ),
    "azure_busy": (
        503,
        {"Content-Type": "application/xml", "x-ms-error-code": "ServerBusy"},
        b"<?xml version='1.0' encoding='utf-8'?><Error><Code>ServerBusy</Code>"
        b"<Message>The server is busy.</Message></Error>",
    ),
    "http_500": (500, {"Content-Type": "text/plain"}, b"internal error"),
}


@dataclass
class Rule:
    fault: Fault
    matches: Matcher
    remaining: int | None  # None: forever
    fired: int = 0


@dataclass
class FaultProxy:
    """A threaded reverse proxy with fault rules (see the module docstring)."""

    upstream: str
    rules: list[Rule] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)
    #: bytes of the response bodies forwarded, in all
    bytes_out: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def inject(self, fault: Fault, *, times: int | None = 1, when: Matcher | None = None) -> Rule:
        """Answer the next ``times`` matching requests with ``fault`` (``None``: every one)."""
        rule = Rule(fault, when or (lambda method, path: True), times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.seen.clear()
            self.bytes_out = 0

    def count(self, method: str | None = None, contains: str = "") -> int:
        """Requests seen (faulted or forwarded) with this method and path substring."""
        with self._lock:
            return sum(1 for m, path in self.seen if (method is None or m == method) and contains in path)

    def _pick(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.seen.append((method, path))
            for rule in self.rules:
                if (rule.remaining is None or rule.remaining > 0) and rule.matches(method, path):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    rule.fired += 1
                    return rule.fault
        return None

    def start(self) -> None:
        proxy = self
        target = urllib.parse.urlsplit(self.upstream)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()
                fault = proxy._pick(self.command, self.path)
                if fault == "lost_response":
                    self._forward(body, answer=False)
                    fault = "drop"
                if fault == "drop":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault is not None:
                    status, headers, payload = _BODIES[fault]
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                self._forward(body)

            def _forward(self, body: bytes, *, answer: bool = True) -> None:
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    if not answer:
                        return
                    with proxy._lock:
                        proxy.bytes_out += len(payload)
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            self.send_header(name, value)
                    length = response.getheader("Content-Length")
                    if self.command == "HEAD":
                        self.send_header("Content-Length", length or "0")
                    else:
                        self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextlib.contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
