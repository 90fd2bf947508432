"""A local OAuth 2 token endpoint and service-account keys that point at it.

google-auth refreshes a service-account key by POSTing a signed JWT to the key's
``token_uri``; pointed at this loopback server, that refresh really runs, with no cloud.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["TokenEndpoint", "service_account_key", "token_endpoint"]

MINTED_TOKEN = "token-from-local-server"


class TokenEndpoint(http.server.BaseHTTPRequestHandler):
    """Answers every token request with ``MINTED_TOKEN``, or ``invalid_grant`` once ``accept`` is off."""

    accept = True

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if type(self).accept:
            body, status = {"access_token": MINTED_TOKEN, "expires_in": 3600}, 200
        else:
            body, status = {"error": "invalid_grant", "error_description": "bad key"}, 400
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def token_endpoint() -> Iterator[tuple[str, type[TokenEndpoint]]]:
    """A running token endpoint: its URL, and its handler class (set ``accept`` on it)."""
    handler = type("Handler", (TokenEndpoint,), {"accept": True})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token", handler
    finally:
        server.shutdown()
        server.server_close()


def service_account_key(token_uri: str, *, project: str = "test-proj") -> str:
    """A service-account key (JSON text) with a fresh RSA key, refreshed at ``token_uri``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": project,
            "private_key_id": "1",
            "private_key": pem,
            "client_email": f"sa@{project}.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        }
    )
