"""Remote backends against httpx.MockTransport: wire formats, retries, breaker, errors, secrets."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest

from sygnify.errors import (
    AuthenticationError,
    CircuitOpenError,
    ModelError,
    NotFoundError,
    OperationTimeoutError,
    TransientError,
)
from sygnify.ml import RealTimeML
from tests.ml.conftest import FakeClock

FAST = {"retry": {"max_attempts": 3, "initial_delay": 0.01, "jitter": 0}, "features": ["a", "b"]}

# backend, options, expected path, answer for rows [[1,2],[3,4]] -> predictions [0, 1]
CASES: list[tuple[str, dict[str, Any], str, Any]] = [
    (
        "tfserving",
        {"url": "http://tfs", "model_version": 2},
        "/v1/models/m/versions/2:predict",
        {"predictions": [[0], [1]]},
    ),
    (
        "kserve_v2",
        {"url": "http://kv2"},
        "/v2/models/m/infer",
        {
            "model_name": "m",
            "outputs": [{"name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 1]}],
        },
    ),
    ("torchserve", {"url": "http://ts", "model_version": "1.0"}, "/predictions/m/1.0", [0, 1]),
    (
        "vertex",
        {
            "project": "p",
            "location": "europe-west4",
            "endpoint_id": "42",
            "base_url": "http://vx",
            "access_token": "tok-SECRET",
        },
        "/v1/projects/p/locations/europe-west4/endpoints/42:predict",
        {"predictions": [0, 1], "deployedModelId": "d1"},
    ),
    (
        "azureml",
        {"scoring_uri": "http://aml/score", "api_key": "key-SECRET", "deployment": "blue"},
        "/score",
        [0, 1],
    ),
]


def _client(handler: Any) -> RealTimeML:
    return RealTimeML(
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        sleep=lambda _: None,
        rng=random.Random(1),
    )


@pytest.mark.parametrize(("backend", "options", "path", "answer"), CASES, ids=[c[0] for c in CASES])
def test_wire_format_and_answer(backend: str, options: dict[str, Any], path: str, answer: Any) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=answer)

    ml = _client(handler)
    ml.register("m", backend=backend, **options, **FAST)
    out = ml.predict("m", {"a": [1.0, 3.0], "b": [2.0, 4.0]})
    assert out.column("prediction").to_pylist() == [0, 1]
    [request] = requests
    assert request.url.path == path
    assert request.method == "POST"
    body = json.loads(request.content)
    rows = [[1.0, 2.0], [3.0, 4.0]]
    if backend == "kserve_v2":
        assert body["inputs"][0] == {
            "name": "input-0",
            "shape": [2, 2],
            "datatype": "FP64",
            "data": [1, 2, 3, 4],
        }
    elif backend == "azureml":
        assert body == {"input_data": {"columns": ["a", "b"], "index": [0, 1], "data": rows}}
        assert request.headers["authorization"] == "Bearer key-SECRET"
        assert request.headers["azureml-model-deployment"] == "blue"
    elif backend == "torchserve":
        assert body == rows
    else:
        assert body["instances"] == rows
    if backend == "vertex":
        assert request.headers["authorization"] == "Bearer tok-SECRET"


@pytest.mark.parametrize(("backend", "options", "path", "answer"), CASES, ids=[c[0] for c in CASES])
def test_5xx_is_retried_then_succeeds(backend: str, options: dict[str, Any], path: str, answer: Any) -> None:
    statuses = iter([503, 500, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        return httpx.Response(status, json=answer if status == 200 else {"error": "overloaded"})

    ml = _client(handler)
    ml.register("m", backend=backend, **options, **FAST)
    assert ml.predict("m", {"a": [1.0, 3.0], "b": [2.0, 4.0]}).column("prediction").to_pylist() == [0, 1]


@pytest.mark.parametrize(("backend", "options", "path", "answer"), CASES, ids=[c[0] for c in CASES])
def test_malformed_answers_are_model_errors(
    backend: str, options: dict[str, Any], path: str, answer: Any
) -> None:
    bodies = iter([b"<html>oops", json.dumps({"predictions": [1], "outputs": []}).encode(), b"[1]"])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=next(bodies))

    ml = _client(handler)
    ml.register("m", backend=backend, **options, **FAST)
    for _ in range(3):
        with pytest.raises(ModelError):
            ml.predict("m", {"a": [1.0, 3.0], "b": [2.0, 4.0]})


def test_timeouts_are_retried_and_typed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    ml = _client(handler)
    ml.register("m", backend="torchserve", url="http://ts", timeout=0.5, **FAST)
    with pytest.raises(OperationTimeoutError, match=r"timed out after 0\.5 s"):
        ml.predict("m", {"a": [1.0], "b": [2.0]})
    assert ml.metrics("m")["m:1"]["errors"] == 1


def test_breaker_opens_and_fallback_answers_then_recovers() -> None:
    clock = FakeClock()
    healthy = {"on": False}
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if healthy["on"]:
            return httpx.Response(200, json=[5])
        return httpx.Response(502, text="bad gateway")

    ml = RealTimeML(
        http_client=httpx.Client(transport=httpx.MockTransport(handler)), clock=clock, sleep=lambda _: None
    )
    ml.register(
        "m",
        backend="torchserve",
        url="http://ts",
        version="remote",
        retry={"max_attempts": 1},
        breaker={"failure_threshold": 2, "reset_timeout": 30},
        features=["a"],
    )
    for _ in range(2):
        with pytest.raises(TransientError):
            ml.predict_one("m", {"a": 1.0})
    with pytest.raises(CircuitOpenError):
        ml.predict_one("m", {"a": 1.0})
    assert calls["n"] == 2  # an open breaker does not call the server
    ml.register("m", backend="callable", fn=lambda X: X[:, 0] * 0 - 1, features=["a"], version="local")
    ml.set_fallback("m", version="local")
    assert ml.predict_one("m", {"a": 1.0})[3] == "local"
    assert ml.predict("m", {"a": [1.0]}).column("model_version").to_pylist() == ["local"]
    healthy["on"] = True
    clock.now = 31.0
    assert ml.predict_one("m", {"a": 1.0})[:4] == (5, None, "m", "remote")


@pytest.mark.parametrize(
    ("status", "error"), [(401, AuthenticationError), (404, NotFoundError), (400, ModelError)]
)
def test_client_errors_are_not_retried(status: int, error: type[Exception]) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(status, json={"error": "nope"})

    ml = _client(handler)
    ml.register("m", backend="tfserving", url="http://tfs", **FAST)
    with pytest.raises(error, match="nope"):
        ml.predict("m", {"a": [1.0], "b": [2.0]})
    assert calls["n"] == 1


def test_secrets_never_show_in_repr_or_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": "internal"})

    ml = _client(handler)
    backend = ml.register(
        "m", backend="azureml", scoring_uri="http://aml/score?sig=SAS-SECRET", api_key="key-SECRET", **FAST
    )
    vertex = ml.register(
        "v",
        backend="vertex",
        project="p",
        location="l",
        endpoint_id="e",
        base_url="http://vx",
        access_token="tok-SECRET",
        **FAST,
    )
    with pytest.raises(TransientError) as info:
        ml.predict("m", {"a": [1.0], "b": [2.0]})
    for text in (
        repr(backend),
        repr(vertex),
        str(info.value),
        repr(getattr(backend, "config", None)),
        repr(getattr(vertex, "config", None)),
    ):
        assert "SECRET" not in text


def _azure_entra_token_is_fetched_and_cached(**auth: Any) -> None:
    class Token:
        token = "aad-token"
        expires_on = 4_102_444_800  # 2100

    class Credential:
        def __init__(self) -> None:
            self.scopes: list[str] = []

        def get_token(self, scope: str) -> Token:
            self.scopes.append(scope)
            return Token()

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200, json={"predictions": [1]})

    credential = Credential()
    ml = _client(handler)
    ml.register(
        "m",
        backend="azureml",
        scoring_uri="http://aml/score",
        credential=credential,
        payload="data",
        **auth,
        **FAST,
    )
    ml.predict("m", {"a": [1.0], "b": [2.0]})
    ml.predict("m", {"a": [1.0], "b": [2.0]})
    assert seen == ["Bearer aad-token"] * 2
    assert credential.scopes == ["https://ml.azure.com/.default"]


def test_azure_entra_token_is_fetched_and_cached() -> None:
    _azure_entra_token_is_fetched_and_cached()


def test_azure_old_auth_aad_still_uses_the_entra_credential() -> None:
    with pytest.warns(DeprecationWarning, match="auth='aad' is deprecated"):
        _azure_entra_token_is_fetched_and_cached(auth="aad")


def test_kserve_probabilities_ready_and_metadata() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ready"):
            return httpx.Response(200, json={})
        if request.method == "GET":
            return httpx.Response(200, json={"name": "m", "platform": "sklearn", "inputs": []})
        body = json.loads(request.content)
        assert body["outputs"] == [{"name": "predict"}, {"name": "predict_proba"}]
        return httpx.Response(
            200,
            json={
                "outputs": [
                    {"name": "predict", "shape": [1, 1], "datatype": "INT64", "data": [1]},
                    {"name": "predict_proba", "shape": [1, 2], "datatype": "FP64", "data": [0.25, 0.75]},
                ]
            },
        )

    ml = _client(handler)
    backend = ml.register(
        "m",
        backend="kserve_v2",
        url="http://kv2",
        model_version="v1",
        outputs=["predict", "predict_proba"],
        proba_output="predict_proba",
        **FAST,
    )
    out = ml.predict("m", {"a": [1.0], "b": [2.0]})
    assert out.column("probabilities").to_pylist() == [[0.25, 0.75]]
    assert ml.health("m") == {"1": True}
    assert backend.metadata()["platform"] == "sklearn"


def test_tfserving_columnar_format_and_status() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(
                200, json={"model_version_status": [{"version": "1", "state": "AVAILABLE"}]}
            )
        assert json.loads(request.content) == {"inputs": {"a": [1.0], "b": [2.0]}}
        return httpx.Response(200, json={"outputs": {"scores": [[0.1, 0.9]]}})

    ml = _client(handler)
    ml.register("m", backend="tfserving", url="http://tfs", format="columnar", instance="dict", **FAST)
    out = ml.predict("m", {"a": [1.0], "b": [2.0]})
    assert out.column("prediction").to_pylist() == [1]
    assert out.column("probabilities").to_pylist() == [[0.1, 0.9]]
    assert ml.health("m") == {"1": True}
