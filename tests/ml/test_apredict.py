"""``RealTimeML.apredict``: the answers, routing, fallbacks, events and errors of ``predict``,
without blocking the event loop (in-process models in worker threads, ``kserve_v2`` on its
``httpx.AsyncClient``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pyarrow as pa
import pytest

from sygnify import events
from sygnify.errors import (
    CircuitOpenError,
    ConnectionFailedError,
    ModelError,
    NotFoundError,
    SchemaError,
    TransientError,
)
from sygnify.ml import RealTimeML
from tests.ml.conftest import FEATURES


def _column(answer: pa.Table | pl.DataFrame, name: str) -> list[Any]:
    return answer[name].to_list() if isinstance(answer, pl.DataFrame) else answer.column(name).to_pylist()


def _same(answer: pa.Table | pl.DataFrame) -> pa.Table:
    """An answer without its timing column (the one thing two calls may not share)."""
    table = answer.to_arrow() if isinstance(answer, pl.DataFrame) else answer
    return table.drop_columns(["latency_ms"])


class _NoThreads(concurrent.futures.ThreadPoolExecutor):
    """A default executor that refuses work: a call that needs a worker thread fails."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        raise AssertionError(f"a worker thread was asked for {fn!r}")


@contextlib.contextmanager
def no_worker_threads() -> Iterator[None]:
    """Inside: the running loop's default executor refuses work (what ``asyncio.to_thread`` uses)."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(_NoThreads())
    try:
        yield
    finally:
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor())


@pytest.fixture
def in_process(ml: RealTimeML, classifier: Any, onnx_bytes: bytes, tmp_path: Path) -> RealTimeML:
    import torch

    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_bytes)
    ml.register("sk", backend="sklearn", model=classifier, features=FEATURES)
    ml.register("ox", backend="onnx", path=str(path), features=FEATURES, intra_op_num_threads=1)
    torch.manual_seed(0)
    ml.register("pt", backend="torch", module=torch.nn.Linear(4, 1), features=FEATURES, device="cpu")
    ml.register("fn", backend="callable", fn=lambda X: X.sum(axis=1), features=FEATURES)
    return ml


@pytest.mark.parametrize("model", ["sk", "ox", "pt", "fn"])
def test_answers_equal_predicts_for_in_process_models(in_process: RealTimeML, iris: Any, model: str) -> None:
    X, _ = iris
    frame = pl.DataFrame({name: X[:25, i] for i, name in enumerate(FEATURES)})
    records = frame.head(3).to_dicts()

    async def answers() -> list[Any]:
        return list(
            await asyncio.gather(
                in_process.apredict(model, frame),
                in_process.apredict(model, frame.to_arrow(), include_input=True),
                in_process.apredict(model, records, output="polars"),
            )
        )

    polars_in, arrow_in, records_in = asyncio.run(answers())
    assert isinstance(polars_in, pl.DataFrame)
    assert isinstance(records_in, pl.DataFrame)
    assert isinstance(arrow_in, pa.Table)
    assert _same(polars_in).equals(_same(in_process.predict(model, frame)))
    assert _same(arrow_in).equals(_same(in_process.predict(model, frame.to_arrow(), include_input=True)))
    assert _same(records_in).equals(_same(in_process.predict(model, records, output="polars")))


def test_ab_routing_by_key_shadow_and_pinned_version(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=lambda X: X[:, 0] + 1, features=["x"], version="v1")
    ml.register("m", backend="callable", fn=lambda X: X[:, 0] + 2, features=["x"], version="v2")
    ml.route("m", {"v1": 0.5, "v2": 0.5})
    data = {"user": [f"u{i}" for i in range(40)], "x": [float(i) for i in range(40)]}
    answer = asyncio.run(ml.apredict("m", data, key="user"))
    assert isinstance(answer, pa.Table)
    assert _same(answer).equals(_same(ml.predict("m", data, key="user")))
    assert set(_column(answer, "model_version")) == {"v1", "v2"}  # both versions, rows in order
    pinned = asyncio.run(ml.apredict("m", {"x": [1.0]}, version="v2"))
    assert _column(pinned, "prediction") == [3.0]
    ml.route("m", {"v1": 1.0})
    ml.shadow("m", "v2")
    asyncio.run(ml.apredict("m", {"x": [1.0, 2.0]}))
    report = ml.shadow_report("m")
    assert report is not None
    assert (report["rows"], report["agreement_rate"]) == (2, 0.0)


class _Unavailable:
    """A callable that raises the breaker's error, as an open remote backend would."""

    def __call__(self, X: Any) -> Any:
        raise CircuitOpenError("breaker open", resource="m", retry_at=5.0)


def test_fallbacks_and_typed_errors_are_predicts(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=_Unavailable(), features=["x"], version="v2")

    def broken(X: Any) -> Any:
        raise ModelError("model crashed", resource="bad")

    ml.register("bad", backend="callable", fn=broken, features=["x"])

    async def scenario() -> None:
        with pytest.raises(CircuitOpenError):
            await ml.apredict("m", {"x": [1.0]})
        with pytest.raises(SchemaError, match="'x'"):
            await ml.apredict("m", {"y": [1.0]})
        with pytest.raises(NotFoundError):
            await ml.apredict("nope", {"x": [1.0]})
        with pytest.raises(NotFoundError):
            await ml.apredict("m", {"x": [1.0]}, version="v9")
        with pytest.raises(ModelError, match="model crashed"):
            await ml.apredict("bad", {"x": [1.0]})
        ml.set_fallback("m", default=-1.0)
        defaulted = await ml.apredict("m", {"x": [1.0, 2.0]})
        assert _column(defaulted, "prediction") == [-1.0, -1.0]
        assert _column(defaulted, "model_version") == ["fallback", "fallback"]
        ml.register("m", backend="callable", fn=lambda X: X[:, 0] * 0 + 7, features=["x"], version="v1")
        ml.set_fallback("m", version="v1")
        served = await ml.apredict("m", {"x": [1.0]})
        assert (_column(served, "prediction"), _column(served, "model_version")) == (
            [7.0],
            ["v1"],
        )

    asyncio.run(scenario())
    assert _column(ml.predict("m", {"x": [1.0]}), "model_version") == ["v1"]


def test_metrics_and_events_are_predicts(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=lambda X: X[:, 0], features=["x"])
    seen: list[tuple[str, Mapping[str, Any]]] = []
    unsubscribe = events.subscribe(lambda event, fields: seen.append((event, dict(fields))))
    try:
        ml.predict("m", {"x": [0.0] * 5})
        asyncio.run(ml.apredict("m", {"x": [0.0] * 5}))
    finally:
        unsubscribe()
    predictions = [
        {k: v for k, v in fields.items() if k != "latency_s"}
        for event, fields in seen
        if event == "model.prediction"
    ]
    assert len(predictions) == 2
    assert predictions[0] == predictions[1]
    snapshot = ml.metrics()["m:1"]
    assert (snapshot["calls"], snapshot["count"], snapshot["errors"]) == (2, 10, 0)


def test_slow_models_do_not_block_the_event_loop(ml: RealTimeML) -> None:
    # Each call of the model waits until the loop's heartbeat has seen all four calls inside
    # the model at once: it can only finish if the loop keeps running while models run (and
    # the four run concurrently); a blocked loop would end in the 5 s timeout instead.
    inside = 0
    lock = threading.Lock()
    release = threading.Event()

    def slow(X: Any) -> Any:
        nonlocal inside
        with lock:
            inside += 1
        if not release.wait(timeout=5):
            raise TimeoutError("the event loop never released the model")
        return X[:, 0] * 2

    ml.register("slow", backend="callable", fn=slow, features=["x"])
    ticks_while_inside: list[int] = []

    async def heartbeat() -> None:
        while not release.is_set():
            with lock:
                ticks_while_inside.append(inside)
                if inside == 4:
                    release.set()
            await asyncio.sleep(0.005)

    async def scenario() -> list[Any]:
        *answers, _ = await asyncio.gather(
            *(ml.apredict("slow", {"x": [float(i)]}) for i in range(4)), heartbeat()
        )
        return answers

    answers = asyncio.run(scenario())
    assert [_column(a, "prediction") for a in answers] == [[0.0], [2.0], [4.0], [6.0]]
    assert ticks_while_inside[-1] == 4  # the loop ticked while all four calls were inside the model


def test_remote_backend_without_an_async_client_runs_in_a_thread_with_retries() -> None:
    statuses = [503]

    def handler(request: httpx.Request) -> httpx.Response:
        if statuses:
            return httpx.Response(statuses.pop(0), json={"error": "overloaded"})
        rows = httpx.Response(200, content=request.content).json()["instances"]
        return httpx.Response(200, json={"predictions": [[sum(r)] for r in rows]})

    ml = RealTimeML(http_client=httpx.Client(transport=httpx.MockTransport(handler)), sleep=lambda _: None)
    ml.register(
        "tf",
        backend="tfserving",
        url="http://tfs",
        features=["a", "b"],
        retry={"max_attempts": 2, "initial_delay": 0, "jitter": 0},
    )
    data = {"a": [1.0, 2.0], "b": [3.0, 5.0]}
    answer = asyncio.run(ml.apredict("tf", data))  # the 503 is retried in the worker thread
    assert _column(answer, "prediction") == [4.0, 7.0]
    assert _same(answer).equals(_same(ml.predict("tf", data)))
    statuses[:] = [503, 503]
    with pytest.raises(TransientError, match="HTTP 503"):
        asyncio.run(ml.apredict("tf", data))
    ml.close()


def test_kserve_breaker_fails_fast_to_the_fallback_on_the_async_path() -> None:
    slept: list[float] = []
    ml = RealTimeML(sleep=slept.append)
    ml.register(
        "gone",
        backend="kserve_v2",
        url="http://127.0.0.1:9",
        features=["a"],
        retry={"max_attempts": 4, "initial_delay": 30, "jitter": 0},
        breaker={"failure_threshold": 1, "reset_timeout": 600},
    )

    async def scenario() -> None:
        with no_worker_threads():  # kserve_v2 is awaited on its AsyncClient, in no worker thread
            with pytest.raises(CircuitOpenError) as refused:
                await ml.apredict("gone", {"a": [1.0]})
            assert isinstance(refused.value.__cause__, ConnectionFailedError)
            ml.set_fallback("gone", default=0.0)
            answer = await ml.apredict("gone", {"a": [1.0]})
            assert _column(answer, "model_version") == ["fallback"]
        await ml.aclose()

    asyncio.run(scenario())
    assert slept == []  # the breaker opened on the first failure: no 30 s backoff before refusing


@pytest.fixture
def served(mlserver: Any) -> Iterator[RealTimeML]:
    ml = RealTimeML()
    ml.register(
        "iris",
        backend="kserve_v2",
        url=mlserver.url,
        features=FEATURES,
        outputs=["predict", "predict_proba"],
        proba_output="predict_proba",
    )
    ml.register("nope", backend="kserve_v2", url=mlserver.url, features=FEATURES, retry={"max_attempts": 1})
    yield ml
    ml.close()


@pytest.mark.emulator
def test_kserve_answers_equal_predicts_on_mlserver(served: RealTimeML, mlserver: Any, iris: Any) -> None:
    X, _ = iris
    batches = [
        pa.table({name: X[i : i + 10, j] for j, name in enumerate(FEATURES)}) for i in range(0, 50, 10)
    ]

    expected = [served.predict("iris", batch) for batch in batches]
    with pytest.raises(NotFoundError, match=r"model 'nope' at .*/v2/models/nope/infer"):
        served.predict("nope", batches[0])

    async def scenario() -> list[Any]:
        with no_worker_threads():  # awaited on the backend's AsyncClient, in no worker thread
            answers = await asyncio.gather(*(served.apredict("iris", batch) for batch in batches))
            with pytest.raises(NotFoundError, match=r"model 'nope' at .*/v2/models/nope/infer"):
                await served.apredict("nope", batches[0])
        await served.aclose()
        return list(answers)

    answers = asyncio.run(scenario())
    for i, (answer, sync) in enumerate(zip(answers, expected)):
        assert _same(answer).equals(_same(sync))
        assert _column(answer, "prediction") == mlserver.model.predict(X[i * 10 : i * 10 + 10]).tolist()
