"""A webhook URL is a credential: its repr, the failure log and httpx's lines never show it."""

from __future__ import annotations

import io
import logging
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from sygnify.monitoring import AlertManager, Threshold, WebhookAlertSink


@pytest.fixture
def failing_webhook() -> Iterator[str]:
    """A local webhook that answers every POST with 500, as ``host:port``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_sink_repr_shows_only_the_origin() -> None:
    token = uuid.uuid4().hex  # held once the sink exists: unique, so no other test sees it masked
    sink = WebhookAlertSink(f"https://bot:pw-{token}@hooks.example:8443/services/T0/B0/{token}?token=q1")
    assert repr(sink) == "WebhookAlertSink(https://hooks.example:8443/...)"


def test_a_failing_webhook_is_logged_without_its_url_credentials(failing_webhook: str) -> None:
    password, path_token, query_token = (f"{p}{uuid.uuid4().hex}" for p in ("pw", "tok", "q"))
    url = f"http://hook:{password}@{failing_webhook}/services/T0/B0/{path_token}?token={query_token}"
    sink = WebhookAlertSink(url)
    manager = AlertManager([Threshold("hot", field="t", above=1)], sinks=[sink])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # httpx's and httpcore's lines too
    try:
        manager.observe({"t": 2})
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = stream.getvalue()
    assert manager.sink_errors == 1
    assert (
        f"sygnify.monitoring.alerts ERROR alert sink WebhookAlertSink(http://{failing_webhook}/...) "
        "failed for hot: HTTPStatusError: Server error '500 Internal Server Error'"
    ) in text
    assert "Traceback (most recent call last)" in text  # the traceback is kept, masked
    assert "HTTP Request: POST" in text
    for secret in (password, path_token, query_token):
        assert secret not in text
