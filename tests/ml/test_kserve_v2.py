"""The KServe v2 client over real HTTP: every datatype, several inputs and outputs, the binary
tensor extension, async, fail-fast breaker, and a typed error for every malformed answer.

The loopback server decodes and encodes tensors on its own (NumPy, ``struct``) as the Open
Inference Protocol and the binary tensor data extension describe them; one test checks the
client's binary layout against the reference implementation (``tritonclient``, installed in
MLServer's emulator venv). MLServer itself is tested in ``test_remote_integration.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from sygnify.errors import (
    CircuitOpenError,
    ConfigurationError,
    ConnectionFailedError,
    ModelError,
    NotFoundError,
    SchemaError,
    TransientError,
)
from sygnify.ml import RealTimeML
from sygnify.ml.backends.kserve_v2 import KServeV2Backend, decode_response
from sygnify.plugins import PluginContext

DTYPES = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
HEADER = "Inference-Header-Content-Length"


def _unpack_bytes(raw: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        out.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return out


def _pack(datatype: str, array: np.ndarray[Any, Any]) -> bytes:
    if datatype == "BYTES":
        items = [v if isinstance(v, bytes) else str(v).encode() for v in array.ravel()]
        return b"".join(struct.pack("<I", len(v)) + v for v in items)
    return np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()


class V2Server:
    """A loopback Open Inference Protocol server.

    Model ``echo`` answers each input as an output of the same name, datatype and shape;
    model ``scores`` answers ``scores`` [rows, 3] (a softmax of the first input) and ``label``.
    ``reply`` (status, headers, body), when set, is answered to every request instead;
    ``status_queue`` answers those statuses first (a 503 then a 200...).
    """

    def __init__(self) -> None:
        self.reply: tuple[int, dict[str, str], bytes] | None = None
        self.status_queue: list[int] = []
        self.requests: list[dict[str, Any]] = []
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(200, b'{"name": "echo", "platform": "loopback"}', {})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                owner.hits += 1
                if owner.status_queue:
                    status = owner.status_queue.pop(0)
                    if status != 200:
                        self._send(status, b'{"error": "overloaded"}', {"Content-Type": "application/json"})
                        return
                if owner.reply is not None:
                    status, headers, body = owner.reply
                    self._send(status, body, headers)
                    return
                self._send(200, *owner.infer(self.path, dict(self.headers), raw))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def infer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[bytes, dict[str, str]]:
        size = headers.get(HEADER)
        header, buffer = (raw, b"") if size is None else (raw[: int(size)], raw[int(size) :])
        request = json.loads(header)
        inputs: dict[str, tuple[str, np.ndarray[Any, Any]]] = {}
        offset = 0
        for tensor in request["inputs"]:
            datatype, shape = tensor["datatype"], tensor["shape"]
            chunk = (tensor.get("parameters") or {}).get("binary_data_size")
            if chunk is not None:
                part = buffer[offset : offset + chunk]
                offset += chunk
                if datatype == "BYTES":
                    array = np.array(_unpack_bytes(part), dtype=object)
                else:
                    array = np.frombuffer(part, dtype=DTYPES[datatype])
            else:
                array = np.array(tensor["data"], dtype=object if datatype == "BYTES" else DTYPES[datatype])
            inputs[tensor["name"]] = (datatype, array.reshape(shape))
        self.requests.append(
            {"path": path, "headers": headers, "body": request, "inputs": inputs, "raw": raw}
        )
        if path.startswith("/v2/models/scores/"):
            first = (
                next(iter(inputs.values()))[1]
                .astype(np.float64)
                .reshape(len(next(iter(inputs.values()))[1]), -1)
            )
            logits = np.stack([first.sum(axis=1), -first.sum(axis=1), np.zeros(len(first))], axis=1)
            scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            answers = {"scores": ("FP64", scores), "label": ("INT64", scores.argmax(axis=1))}
        else:
            answers = inputs
        wanted = request.get("outputs") or [{"name": name} for name in answers]
        everything_binary = bool((request.get("parameters") or {}).get("binary_data_output"))
        outputs, chunks = [], []
        for output in wanted:
            datatype, array = answers[output["name"]]
            answer: dict[str, Any] = {
                "name": output["name"],
                "datatype": datatype,
                "shape": list(array.shape),
            }
            if everything_binary or (output.get("parameters") or {}).get("binary_data"):
                packed = _pack(datatype, array)
                answer["parameters"] = {"binary_data_size": len(packed)}
                chunks.append(packed)
            elif datatype == "BYTES":
                answer["data"] = [v.decode() if isinstance(v, bytes) else v for v in array.ravel()]
            else:
                answer["data"] = array.ravel().tolist()
            outputs.append(answer)
        body = json.dumps({"model_name": path.split("/")[3], "outputs": outputs}).encode()
        if not chunks:
            return body, {"Content-Type": "application/json"}
        return body + b"".join(chunks), {"Content-Type": "application/octet-stream", HEADER: str(len(body))}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def v2() -> Iterator[V2Server]:
    server = V2Server()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _reset(v2: V2Server) -> None:
    v2.reply, v2.status_queue[:], v2.requests[:], v2.hits = None, [], [], 0


FAST: dict[str, Any] = {"retry": {"max_attempts": 1}}


def _predict(ml: RealTimeML, name: str, data: Any) -> pa.Table:
    out = ml.predict(name, data)
    assert isinstance(out, pa.Table)
    return out


VALUES: dict[str, list[Any]] = {
    "BOOL": [True, False, True],
    "UINT8": [0, 200, 255],
    "UINT16": [1, 60000, 7],
    "UINT32": [1, 4_000_000_000, 3],
    "UINT64": [1, 2**63 + 5, 3],
    "INT8": [-128, 0, 127],
    "INT16": [-30000, 1, 30000],
    "INT32": [-(2**31), 5, 2**31 - 1],
    "INT64": [-(2**62), 9, 2**62],
    "FP16": [0.5, -1.25, 1024.0],
    "FP32": [0.1, -2.5, 3.25],
    "FP64": [1e-300, -2.5, 1e300],
    "BYTES": ["héllo", "", "w o r l d"],
}


def _arrow(datatype: str, values: list[Any]) -> pa.Array:
    if datatype == "BYTES":
        return pa.array(values, pa.string())
    if datatype == "BOOL":
        return pa.array(values, pa.bool_())
    return pa.array(np.array(values, dtype=DTYPES[datatype]))


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", list(VALUES))
def test_every_datatype_goes_and_comes_back(v2: V2Server, datatype: str, binary: bool) -> None:
    ml = RealTimeML()
    ml.register(
        "echo",
        backend="kserve_v2",
        url=v2.url,
        inputs=[{"name": "x", "features": ["x"], "datatype": datatype, "shape": []}],
        outputs=["x"],
        binary=binary,
        **FAST,
    )
    out = _predict(ml, "echo", pa.table({"x": _arrow(datatype, VALUES[datatype])}))
    received_type, received = v2.requests[-1]["inputs"]["x"]
    assert received_type == datatype
    assert received.shape == (3,)
    headers = v2.requests[-1]["headers"]
    assert (HEADER in headers) is binary
    expected = VALUES[datatype]
    if datatype == "BYTES":
        assert [v.decode() if isinstance(v, bytes) else v for v in received] == expected
        assert out.column("prediction").to_pylist() == expected
    elif datatype.startswith("FP"):
        np.testing.assert_allclose(received.astype(np.float64), expected, rtol=1e-3)
        np.testing.assert_allclose(out.column("prediction").to_numpy(), expected, rtol=1e-3)
    else:
        assert received.tolist() == expected
        assert out.column("prediction").to_pylist() == expected
    ml.close()


@pytest.mark.parametrize("binary", [False, True, "inputs", "outputs"])
def test_several_inputs_and_outputs(v2: V2Server, binary: Any) -> None:
    ml = RealTimeML()
    ml.register(
        "echo",
        backend="kserve_v2",
        url=v2.url,
        inputs=[
            {"name": "dense", "features": ["a", "b", "c", "d"], "datatype": "FP32", "shape": [2, 2]},
            {"name": "count", "features": ["n"], "datatype": "INT16", "parameters": {"content_type": "np"}},
            {"name": "query", "features": ["q"], "datatype": "BYTES", "shape": []},
        ],
        outputs=["query", "dense", "count"],
        parameters={"tag": "t1"},
        binary=binary,
        **FAST,
    )
    data = {"a": [1.0, 5.0], "b": [2.0, 6.0], "c": [3.0, 7.0], "d": [4.0, 8.0], "n": [3, 4], "q": ["x", "yz"]}
    out = _predict(ml, "echo", data)
    request = v2.requests[-1]
    assert request["body"]["parameters"]["tag"] == "t1"
    dense_type, dense = request["inputs"]["dense"]
    assert dense_type == "FP32"
    assert dense.tolist() == [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    assert request["inputs"]["count"][1].tolist() == [[3], [4]]
    assert request["body"]["inputs"][1]["parameters"]["content_type"] == "np"
    wants_binary = [o.get("parameters", {}).get("binary_data") for o in request["body"]["outputs"]]
    assert wants_binary == [True] * 3 if binary in (True, "outputs") else wants_binary == [None] * 3
    assert (HEADER in request["headers"]) is (binary in (True, "inputs"))
    assert out.column("prediction").to_pylist() == ["x", "yz"]


def test_features_come_from_the_inputs_and_shapes_are_checked(v2: V2Server) -> None:
    ml = RealTimeML()
    backend = ml.register(
        "echo",
        backend="kserve_v2",
        url=v2.url,
        inputs=[{"name": "a", "features": ["x", "y"]}, {"name": "t", "features": ["s"], "datatype": "BYTES"}],
        outputs=["a"],
        **FAST,
    )
    assert backend.signature is not None
    assert backend.signature.names == ["x", "y", "s"]
    with pytest.raises(SchemaError, match="'z'"):
        _predict(ml, "echo", {"x": [1.0], "y": [2.0], "s": ["t"], "z": [0]})
    with pytest.raises(ConfigurationError, match="does not hold its 2 features"):
        ml.register(
            "bad",
            backend="kserve_v2",
            url=v2.url,
            inputs=[{"name": "a", "features": ["x", "y"], "shape": [3]}],
        )
    with pytest.raises(ConfigurationError, match="datatype"):
        ml.register("bad", backend="kserve_v2", url=v2.url, features=["x"], datatype="FP8")


def test_bytes_that_are_not_utf8_need_binary(v2: V2Server) -> None:
    ml = RealTimeML()
    spec = [{"name": "blob", "features": ["b"], "datatype": "BYTES", "shape": []}]
    table = pa.table({"b": pa.array([b"\xff\x00", b"ok"], pa.binary())})
    ml.register("text", backend="kserve_v2", url=v2.url, model="echo", inputs=spec, outputs=["blob"], **FAST)
    with pytest.raises(SchemaError, match=r"not UTF-8.*binary=True"):
        _predict(ml, "text", table)
    ml.register(
        "raw", backend="kserve_v2", url=v2.url, model="echo", inputs=spec, outputs=["blob"], binary=True
    )
    assert _predict(ml, "raw", table).column("prediction").to_pylist() == [b"\xff\x00", b"ok"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_two_dimensional_outputs(v2: V2Server, binary: bool) -> None:
    ml = RealTimeML()
    data = {"a": [2.0, -3.0, 0.0], "b": [1.0, 0.0, 0.0]}
    ml.register(
        "scores", backend="kserve_v2", url=v2.url, features=["a", "b"], outputs=["scores"], binary=binary
    )
    out = _predict(ml, "scores", data)
    proba = np.array(out.column("probabilities").to_pylist())
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert out.column("prediction").to_pylist() == proba.argmax(axis=1).tolist() == [0, 1, 0]
    # with the probabilities elsewhere, a [rows, k] prediction is one vector per row
    ml.register(
        "label",
        model="scores",
        backend="kserve_v2",
        url=v2.url,
        features=["a", "b"],
        outputs=["scores", "label"],
        proba_output="scores",
        binary=binary,
    )
    out = _predict(ml, "label", data)
    assert out.column("prediction").to_pylist() == [0, 1, 0]
    ml.register(
        "vector",
        model="scores",
        backend="kserve_v2",
        url=v2.url,
        features=["a", "b"],
        outputs=["scores", "label"],
        proba_output="label",
        binary=binary,
    )
    vectors = _predict(ml, "vector", data).column("prediction").to_pylist()
    np.testing.assert_allclose(np.array(vectors), proba)
    assert ml.predict_one("vector", {"a": 2.0, "b": 1.0}).prediction == pytest.approx(vectors[0])


def _reply(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return status, {"Content-Type": "application/json", **(headers or {})}, raw


def _out(**tensor: Any) -> dict[str, Any]:
    return {"outputs": [{"name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 1], **tensor}]}


_BIN = json.dumps(
    {
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": 16}}
        ]
    }
).encode()
_BYTES = json.dumps(
    {
        "outputs": [
            {"name": "predict", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 6}}
        ]
    }
).encode()

MALFORMED: list[tuple[str, tuple[int, dict[str, str], bytes], type[Exception], str]] = [
    ("no-outputs", _reply({"model_name": "m"}), ModelError, "without outputs"),
    ("empty-outputs", _reply({"outputs": []}), ModelError, "without outputs"),
    ("outputs-not-list", _reply({"outputs": {"predict": [0, 1]}}), ModelError, "without outputs"),
    ("not-an-object", _reply([0, 1]), ModelError, "without outputs"),
    ("output-missing", _reply(_out(name="other")), ModelError, "no output 'predict' .outputs: other"),
    ("output-not-tensor", _reply({"outputs": ["predict"]}), ModelError, "not a named tensor"),
    ("data-vs-shape", _reply(_out(shape=[2, 2])), ModelError, r"2 values for shape \[2, 2\]"),
    ("rows", _reply(_out(shape=[3], data=[0, 1, 2])), ModelError, r"shape \[3\] for 2 rows"),
    ("scalar", _reply(_out(shape=[], data=[1])), ModelError, r"shape \[\] for 2 rows"),
    ("bad-shape", _reply(_out(shape="2")), ModelError, "invalid shape"),
    ("unknown-datatype", _reply(_out(datatype="FP8")), ModelError, "unknown datatype 'FP8'"),
    ("no-datatype", _reply(_out(datatype=None)), ModelError, "unknown datatype"),
    ("data-vs-datatype", _reply(_out(data=["a", "b"])), ModelError, "does not fit INT64"),
    ("bytes-not-strings", _reply(_out(datatype="BYTES", data=[1, 2])), ModelError, "does not fit BYTES"),
    (
        "no-data",
        _reply({"outputs": [{"name": "predict", "datatype": "INT64", "shape": [2]}]}),
        ModelError,
        "neither data nor binary_data_size",
    ),
    ("not-json", _reply(b"<html>bad gateway</html>"), ModelError, r"malformed JSON \(HTTP 200\)"),
    ("empty-body", _reply(b""), ModelError, "malformed JSON"),
    (
        "header-beyond-body",
        _reply(b'{"outputs": []}', headers={HEADER: "999"}),
        ModelError,
        f"{HEADER} 999 for a body of 15 bytes",
    ),
    ("header-not-int", _reply(b"{}", headers={HEADER: "ten"}), ModelError, "non-integer"),
    (
        "binary-beyond-buffer",
        _reply(_BIN + b"\x00" * 8, headers={HEADER: str(len(_BIN))}),
        ModelError,
        "binary_data_size 16 beyond the 8 bytes",
    ),
    (
        "binary-json-header-cut",
        _reply(_BIN + b"\x00" * 16, headers={HEADER: "10"}),
        ModelError,
        "malformed JSON",
    ),
    (
        "bytes-truncated",
        _reply(_BYTES + b"\x01\x00\x00\x00a\x05", headers={HEADER: str(len(_BYTES))}),
        ModelError,
        "truncated BYTES length prefix",
    ),
    (
        "bytes-beyond",
        _reply(_BYTES + b"\x09\x00\x00\x00ab", headers={HEADER: str(len(_BYTES))}),
        ModelError,
        "BYTES element beyond",
    ),
    ("error-200", _reply({"error": "input x has wrong shape"}), ModelError, "answered an error: input x"),
    ("error-400", _reply({"error": "unknown output zzz"}, 400), ModelError, "HTTP 400: unknown output zzz"),
    ("error-404", _reply({"error": "Model m not found"}, 404), NotFoundError, "HTTP 404: Model m not found"),
    ("error-422", _reply({"error": "bad datatype"}, 422), SchemaError, "HTTP 422: bad datatype"),
]


@pytest.mark.parametrize(("case", "reply", "error", "match"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_every_malformed_answer_is_a_typed_error(
    v2: V2Server, case: str, reply: tuple[int, dict[str, str], bytes], error: type[Exception], match: str
) -> None:
    ml = RealTimeML()
    url = v2.url.replace("http://", "http://user:hunter2@")
    ml.register("m", backend="kserve_v2", url=url + "/", features=["a"], outputs=["predict"], **FAST)
    v2.reply = reply
    with pytest.raises(error, match=match) as info:
        _predict(ml, "m", {"a": [1.0, 2.0]})
    message = str(info.value)
    assert f"model 'm' at {v2.url}/v2/models/m/infer" in message
    assert "hunter2" not in message
    assert "user" not in message
    assert info.value.__cause__ is None or not type(info.value.__cause__).__module__.startswith("httpx")


def test_probabilities_must_be_numbers(v2: V2Server) -> None:
    ml = RealTimeML()
    ml.register(
        "m",
        backend="kserve_v2",
        url=v2.url,
        features=["a"],
        outputs=["predict", "p"],
        proba_output="p",
        **FAST,
    )
    strings = {"name": "p", "datatype": "BYTES", "shape": [2], "data": ["x", "y"]}
    v2.reply = _reply({"outputs": [_out()["outputs"][0], strings]})
    with pytest.raises(ModelError, match="probabilities of datatype object"):
        _predict(ml, "m", {"a": [1.0, 2.0]})


def test_open_breaker_falls_back_without_sleeping(v2: V2Server) -> None:
    slept: list[float] = []
    ml = RealTimeML(sleep=slept.append)
    ml.register(
        "echo",
        backend="kserve_v2",
        url=v2.url,
        features=["x"],
        version="remote",
        retry={"max_attempts": 4, "initial_delay": 0.3, "jitter": 0},
        breaker={"failure_threshold": 2, "reset_timeout": 60},
    )
    ml.register("echo", backend="callable", fn=lambda X: X[:, 0] * 0 - 1, features=["x"], version="local")
    ml.set_fallback("echo", version="local")
    v2.status_queue[:] = [503] * 10
    answer = ml.predict_one("echo", {"x": 1.0})
    assert answer.model_version == "local"
    assert v2.hits == 2
    assert slept == [0.3]
    assert _predict(ml, "echo", {"x": [1.0]}).column("model_version").to_pylist() == ["local"]
    assert v2.hits == 2
    assert slept == [0.3]


def test_last_attempt_failure_keeps_its_own_error(v2: V2Server) -> None:
    slept: list[float] = []
    ml = RealTimeML(sleep=slept.append)
    ml.register(
        "echo",
        backend="kserve_v2",
        url=v2.url,
        features=["x"],
        retry={"max_attempts": 2, "initial_delay": 0.1, "jitter": 0},
        breaker={"failure_threshold": 2},
    )
    v2.status_queue[:] = [503, 503]
    with pytest.raises(TransientError, match="HTTP 503: overloaded"):
        _predict(ml, "echo", {"x": [1.0]})
    assert slept == [0.1]
    with pytest.raises(CircuitOpenError):
        _predict(ml, "echo", {"x": [1.0]})


def test_async_predict_retries_falls_fast_and_types_errors(v2: V2Server) -> None:
    slept: list[float] = []
    ml = RealTimeML(sleep=slept.append)
    backend = ml.register(
        "scores",
        backend="kserve_v2",
        url=v2.url,
        features=["a"],
        outputs=["scores"],
        binary=True,
        retry={"max_attempts": 4, "initial_delay": 0.2, "jitter": 0},
        breaker={"failure_threshold": 3, "reset_timeout": 60},
    )
    assert isinstance(backend, KServeV2Backend)

    async def scenario() -> None:
        outs = await asyncio.gather(*(backend.apredict({"a": [float(i), -float(i)]}) for i in range(8)))
        for i, out in enumerate(outs):
            assert out.probabilities is not None
            assert out.probabilities.shape == (2, 3)
            assert list(out.predictions) == ([0, 1] if i else [0, 0])
        v2.status_queue[:] = [503, 200]
        retried = await backend.apredict(pa.table({"a": [1.0]}))
        assert list(retried.predictions) == [0]
        assert slept == [0.2]
        with pytest.raises(SchemaError, match="needs feature 'a'"):
            await backend.apredict({"b": [1.0]})
        v2.status_queue[:] = [503] * 5
        with pytest.raises(CircuitOpenError):
            await backend.apredict({"a": [1.0]})
        assert slept == [0.2, 0.2, 0.4]  # the third failure opened the breaker: no sleep after it
        await backend.aclose()

    asyncio.run(scenario())


def test_async_connection_failure_is_typed() -> None:
    backend = KServeV2Backend.from_config(
        {"url": "http://127.0.0.1:9", "features": ["a"], "retry": {"max_attempts": 1}},
        context=PluginContext("gone"),
    )

    async def scenario() -> None:
        with pytest.raises(
            ConnectionFailedError, match=r"model 'gone' at http://127.0.0.1:9/v2/models/gone/infer"
        ):
            await backend.apredict({"a": [1.0]})
        await backend.aclose()

    asyncio.run(scenario())


_REFERENCE = r"""
import base64, json, sys
import numpy as np
import tritonclient.http as th

seen = json.loads(sys.stdin.read())
# 1. the client's request, read by the reference decoder (its layout is a response's, with
#    "inputs" where a response has "outputs")
body = base64.b64decode(seen["body"])
size = int(seen["header_length"])
header = json.loads(body[:size])
header["outputs"] = header.pop("inputs")
relabelled = json.dumps(header).encode()
result = th.InferResult.from_response_body(relabelled + body[size:], header_length=len(relabelled))
decoded = {}
for tensor in header["outputs"]:
    array = result.as_numpy(tensor["name"])
    decoded[tensor["name"]] = [v.decode() if isinstance(v, bytes) else v for v in array.ravel().tolist()]
# 2. an answer encoded by the reference encoder
tensors = []
for name, datatype, values in [
    ("predict", "FP16", np.array([[0.5, 1.5], [2.0, -4.0]], dtype=np.float16)),
    ("flags", "BOOL", np.array([True, False])),
    ("words", "BYTES", np.array([b"ab", "cé".encode()], dtype=object)),
    ("big", "UINT64", np.array([2**64 - 1, 0], dtype=np.uint64)),
]:
    tensor = th.InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values, binary_data=True)
    tensors.append(tensor)
request, json_size = th.InferenceServerClient.generate_request_body(tensors)
head = json.loads(request[:json_size])
head["outputs"] = head.pop("inputs")
head_raw = json.dumps(head).encode()
answer = head_raw + request[json_size:]
answer_text = base64.b64encode(answer).decode()
print(json.dumps({"decoded": decoded, "answer": answer_text, "header_length": len(head_raw)}))
"""


def test_binary_layout_matches_the_reference_implementation(v2: V2Server) -> None:
    from tests.emulators import EmulatorUnavailable, ensure_venv
    from tests.emulators.mlserver import REQUIREMENTS
    from tests.services import require

    try:
        python = ensure_venv("mlserver", REQUIREMENTS) / "python"
    except EmulatorUnavailable as exc:
        require(False, f"MLServer's venv (with tritonclient) unavailable: {exc}")
        return
    ml = RealTimeML()
    ml.register(
        "echo",
        backend="kserve_v2",
        url=v2.url,
        inputs=[
            {"name": "f", "features": ["f1", "f2"], "datatype": "FP16"},
            {"name": "u", "features": ["u"], "datatype": "UINT32", "shape": []},
            {"name": "s", "features": ["s"], "datatype": "BYTES", "shape": []},
            {"name": "b", "features": ["b"], "datatype": "BOOL", "shape": []},
        ],
        outputs=["f"],
        binary=True,
        **FAST,
    )
    table = pa.table(
        {
            "f1": [0.5, 3.0],
            "f2": [-1.0, 8.0],
            "u": pa.array([7, 4_000_000_000], pa.uint32()),
            "s": ["x", "ÿz"],
            "b": [False, True],
        }
    )
    _predict(ml, "echo", table)
    request = v2.requests[-1]  # the body exactly as the client sent it
    wire = {"body": base64.b64encode(request["raw"]).decode(), "header_length": request["headers"][HEADER]}
    reference = subprocess.run(
        [str(python), "-c", _REFERENCE],
        input=json.dumps(wire),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(reference.stdout)
    assert seen["decoded"] == {
        "f": [0.5, -1.0, 3.0, 8.0],
        "u": [7, 4_000_000_000],
        "s": ["x", "ÿz"],
        "b": [False, True],
    }
    tensors = decode_response(
        base64.b64decode(seen["answer"]), str(seen["header_length"]), where="reference", model="m"
    )
    assert tensors["predict"].dtype == np.float16
    assert tensors["predict"].tolist() == [[0.5, 1.5], [2.0, -4.0]]
    assert tensors["flags"].tolist() == [True, False]
    assert tensors["words"].tolist() == ["ab", "cé"]
    assert tensors["big"].tolist() == [2**64 - 1, 0]
