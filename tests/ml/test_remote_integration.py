"""Remote backends over real HTTP: MLServer (real KServe v2 server) and loopback servers
speaking the documented TF Serving, TorchServe, Vertex AI, Azure ML and SageMaker formats."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from sygnify.errors import ModelError, OperationTimeoutError, TransientError
from sygnify.ml import RealTimeML
from tests.ml.conftest import FEATURES


class Loopback:
    """Answers every serving format; ``faults`` is a queue of 'error', 'slow' or 'garbage'."""

    def __init__(self) -> None:
        self.faults: list[str] = []
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/ping":
                    self._send(200, b'{"status": "Healthy"}')
                else:
                    self._send(200, json.dumps({"model_version_status": [{"state": "AVAILABLE"}]}).encode())

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                owner.requests.append((self.path, dict(self.headers), raw))
                fault = owner.faults.pop(0) if owner.faults else None
                if fault == "slow":
                    time.sleep(0.5)
                if fault == "error":
                    self._send(503, b'{"message": "overloaded"}', {"x-amzn-ErrorType": "ServiceUnavailable"})
                    return
                if fault == "garbage":
                    self._send(200, b"<html>proxy error</html>")
                    return
                body = json.loads(raw)
                rows = body
                if isinstance(body, dict):
                    rows = body.get("instances") or body.get("input_data", {}).get("data") or body.get("data")
                scores = [float(sum(r)) for r in rows]
                if self.path.endswith(":predict") and "/v1/projects/" in self.path:
                    answer: Any = {"predictions": scores, "deployedModelId": "123"}
                elif self.path.endswith(":predict"):
                    answer = {"predictions": [[s] for s in scores]}
                else:
                    answer = scores
                self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def loopback() -> Iterator[Loopback]:
    server = Loopback()
    yield server
    server.close()


def _options(backend: str, url: str) -> dict[str, Any]:
    return {
        "tfserving": {"url": url},
        "torchserve": {"url": url},
        "vertex": {"project": "p", "location": "l", "endpoint_id": "e", "base_url": url, "access_token": "t"},
        "azureml": {"scoring_uri": f"{url}/score", "api_key": "k"},
        "sagemaker": {
            "endpoint_name": "ep",
            "endpoint_url": url,
            "region": "us-east-1",
            "access_key_id": "AKIDTEST",
            "secret_access_key": "secret",
        },
    }[backend]


BACKENDS = ["tfserving", "torchserve", "vertex", "azureml", "sagemaker"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_loopback_round_trip_faults_and_recovery(backend: str, loopback: Loopback) -> None:
    ml = RealTimeML(sleep=lambda _: None)
    ml.register(
        "m",
        backend=backend,
        features=["a", "b"],
        timeout=0.25,
        retry={"max_attempts": 2, "initial_delay": 0, "jitter": 0},
        breaker={"failure_threshold": 50},
        **_options(backend, loopback.url),
    )
    data = {"a": [1.0, 2.0], "b": [3.0, 5.0]}
    assert ml.predict("m", data).column("prediction").to_pylist() == [4.0, 7.0]
    loopback.faults[:] = ["error"]  # one 5xx, retried
    assert ml.predict_one("m", {"a": 1.0, "b": 1.0}).prediction == 2.0
    loopback.faults[:] = ["error", "error"]
    with pytest.raises(TransientError):
        ml.predict("m", data)
    loopback.faults[:] = ["slow", "slow"]
    with pytest.raises(OperationTimeoutError):
        ml.predict("m", data)
    time.sleep(0.6)  # let the slow handlers finish before the next test
    loopback.faults[:] = ["garbage"]
    with pytest.raises(ModelError):
        ml.predict("m", data)
    loopback.faults.clear()
    ml.close()


@pytest.mark.emulator
def test_kserve_v2_against_real_mlserver(mlserver: Any, iris: Any) -> None:
    X, _ = iris
    ml = RealTimeML()
    ml.register(
        "iris",
        backend="kserve_v2",
        url=mlserver.url,
        features=FEATURES,
        datatype="FP32",
        outputs=["predict", "predict_proba"],
        proba_output="predict_proba",
    )
    data = {name: X[:20, i].tolist() for i, name in enumerate(FEATURES)}
    out = ml.predict("iris", data)
    assert out.column("prediction").to_pylist() == mlserver.model.predict(X[:20]).tolist()
    np.testing.assert_allclose(
        np.array(out.column("probabilities").to_pylist()), mlserver.model.predict_proba(X[:20]), atol=1e-5
    )
    assert (
        ml.predict_one("iris", dict(zip(FEATURES, X[3].tolist()))).prediction
        == mlserver.model.predict(X[3:4])[0]
    )
    assert ml.health("iris") == {"1": True}
    ml.register(
        "missing", backend="kserve_v2", url=mlserver.url, features=FEATURES, retry={"max_attempts": 1}
    )
    assert ml.health("missing") == {"1": False}
    ml.close()


@pytest.mark.emulator
def test_kserve_v2_probabilities_as_the_only_output_on_mlserver(mlserver: Any, iris: Any) -> None:
    import pyarrow as pa

    X, _ = iris
    ml = RealTimeML()
    ml.register(
        "iris",
        backend="kserve_v2",
        url=mlserver.url,
        features=FEATURES,
        datatype="FP32",
        outputs=["predict_proba"],
    )
    out = ml.predict("iris", {name: X[:30, i].tolist() for i, name in enumerate(FEATURES)})
    assert isinstance(out, pa.Table)
    proba = np.array(out.column("probabilities").to_pylist())
    np.testing.assert_allclose(proba, mlserver.model.predict_proba(X[:30]), atol=1e-5)
    assert out.column("prediction").to_pylist() == mlserver.model.predict(X[:30]).tolist()
    ml.close()


@pytest.mark.emulator
def test_kserve_v2_several_inputs_and_outputs_on_mlserver(mlserver: Any, iris: Any) -> None:
    import pyarrow as pa

    X, _ = iris
    ml = RealTimeML()
    ml.register(
        "iris",
        backend="kserve_v2",
        url=mlserver.url,
        # one tensor per feature, read by MLServer as the columns of one DataFrame
        inputs=[
            {"name": name, "features": [name], "datatype": datatype}
            for name, datatype in zip(FEATURES, ["FP32", "FP64", "FP16", "FP64"])
        ],
        parameters={"content_type": "pd"},
        outputs=["predict", "predict_proba"],
        proba_output="predict_proba",
        binary="outputs",  # MLServer ignores the extension and answers JSON, which is read as well
    )
    rows = X[40:60].astype(np.float16).astype(np.float32)  # what an FP16 tensor can carry
    out = ml.predict("iris", {name: rows[:, i].tolist() for i, name in enumerate(FEATURES)})
    assert isinstance(out, pa.Table)
    assert out.column("prediction").to_pylist() == mlserver.model.predict(rows).tolist()
    np.testing.assert_allclose(
        np.array(out.column("probabilities").to_pylist()), mlserver.model.predict_proba(rows), atol=1e-3
    )
    ml.close()


@pytest.mark.emulator
def test_kserve_v2_async_and_errors_on_mlserver(mlserver: Any, iris: Any) -> None:
    import asyncio

    from sygnify.errors import NotFoundError
    from sygnify.ml.backends.kserve_v2 import KServeV2Backend

    X, _ = iris
    ml = RealTimeML()
    backend = ml.register(
        "iris",
        backend="kserve_v2",
        url=mlserver.url,
        features=FEATURES,
        outputs=["predict", "predict_proba"],
        proba_output="predict_proba",
    )
    missing = ml.register(
        "nope", backend="kserve_v2", url=mlserver.url, features=FEATURES, retry={"max_attempts": 1}
    )
    unknown = ml.register(
        "odd", backend="kserve_v2", url=mlserver.url, model="iris", features=FEATURES, outputs=["zzz"]
    )
    assert isinstance(backend, KServeV2Backend)
    assert isinstance(missing, KServeV2Backend)
    assert isinstance(unknown, KServeV2Backend)
    batches = [X[i : i + 10] for i in range(0, 50, 10)]

    async def scenario() -> None:
        outs = await asyncio.gather(
            *(backend.apredict({name: b[:, i].tolist() for i, name in enumerate(FEATURES)}) for b in batches)
        )
        for batch, out in zip(batches, outs):
            assert list(out.predictions) == mlserver.model.predict(batch).tolist()
            assert out.probabilities is not None
            np.testing.assert_allclose(out.probabilities, mlserver.model.predict_proba(batch), atol=1e-5)
        one = {name: [float(X[0, i])] for i, name in enumerate(FEATURES)}
        with pytest.raises(NotFoundError, match=rf"model 'nope' at {mlserver.url}/v2/models/nope/infer"):
            await missing.apredict(one)
        with pytest.raises(
            ModelError, match=r"model 'odd' at .*/v2/models/iris/infer answered HTTP 400: .*zzz"
        ):
            await unknown.apredict(one)
        for each in (backend, missing, unknown):
            await each.aclose()

    asyncio.run(scenario())
    ml.close()
