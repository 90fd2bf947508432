"""A loopback HTTP server answering the remote model backends' documented formats.

Each answer scores a row by the sum of its features, so a test knows what to expect.
Requests are recorded (path, headers) to check what reached the server (auth headers).
Standard library only: the serving, vertex, azureml and sagemaker extras bring no numpy
or sklearn to the server side of a test (``tests/ml``'s loopback sits behind sklearn imports).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _rows(body: Any) -> list[list[float]]:
    if isinstance(body, list):
        return body
    for key in ("instances", "data"):
        if key in body:
            return list(body[key])
    return list(body["input_data"]["data"])


def _answer(path: str, body: Any) -> Any:
    if path.endswith("/infer"):  # KServe v2: one tensor, row-major data of shape [rows, features]
        tensor = body["inputs"][0]
        rows, width = tensor["shape"]
        flat = [float(v) for v in tensor["data"]]
        sums = [sum(flat[i * width : (i + 1) * width]) for i in range(rows)]
        return {
            "model_name": path.split("/")[3],
            "outputs": [{"name": "predict", "shape": [rows], "datatype": "FP64", "data": sums}],
        }
    scores = [float(sum(row)) for row in _rows(body)]
    if path.endswith(":predict") and "/v1/projects/" in path:  # Vertex AI
        return {"predictions": scores, "deployedModelId": "1"}
    if path.endswith(":predict"):  # TF Serving
        return {"predictions": [[score] for score in scores]}
    return scores  # Azure ML scoring script, SageMaker invocations


class Loopback:
    """The server on 127.0.0.1 (``url``), answering until :meth:`close`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:  # readiness and model status
                owner.requests.append((self.path, dict(self.headers)))
                self._send({"model_version_status": [{"state": "AVAILABLE"}], "ready": True})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((self.path, dict(self.headers)))
                self._send(_answer(self.path, body))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def loopback() -> Iterator[Loopback]:
    server = Loopback()
    try:
        yield server
    finally:
        server.close()
