"""The KServe v2 / Open Inference Protocol (Triton, MLServer, KServe) over REST.

``POST /v2/models/NAME[/versions/V]/infer`` with one tensor holding the feature matrix
(``input_name``, ``datatype``) or several named tensors (``inputs``, each taking some of the
feature columns); ``outputs`` names the tensors to ask for: the first is the prediction,
``proba_output`` the class probabilities. A prediction tensor of shape ``[rows, k]`` with no
separate ``proba_output`` is read as class scores (prediction: the arg-max index); with one,
it is a per-row vector (a list column). ``binary=True`` sends and receives tensors with the
binary tensor data extension (``Inference-Header-Content-Length``); a server that ignores it
for outputs answers JSON, which is read as well. ``GET .../ready`` and
``GET /v2/models/NAME[/versions/V]`` answer readiness and metadata; :meth:`KServeV2Backend.apredict`
is the async path. Example (needs a server, so not run)::

    ml.register("iris", backend="kserve_v2", url="http://mlserver:8080", features=[...],
                outputs=["predict", "predict_proba"], proba_output="predict_proba")
    ml.register("ranker", backend="kserve_v2", url="http://triton:8000", binary=True,
                inputs=[{"name": "dense", "features": ["a", "b"], "datatype": "FP32"},
                        {"name": "query", "features": ["q"], "datatype": "BYTES", "shape": []}])
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sygnify.errors import ModelError, NotFoundError, SchemaError
from sygnify.ml.backends._remote import RemoteBackend, RemoteConfig, parse_answer
from sygnify.ml.backends.base import BackendOutput
from sygnify.ml.signature import FeatureKind, table_to_matrix

__all__ = ["KServeV2Backend", "KServeV2Config", "KServeV2Input", "decode_response"]

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip

#: the protocol's tensor datatypes as little-endian NumPy dtypes (the binary layout); BYTES is
#: a sequence of 4-byte little-endian lengths, each followed by that many bytes
_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
_HEADER = "Inference-Header-Content-Length"


class KServeV2Input(BaseModel):
    """One input tensor: the feature columns it takes, its datatype and each row's shape.

    ``shape`` is the shape of one row's tensor (default ``[len(features)]``; ``[]`` sends one
    value per row, as a ``[rows]`` tensor); ``parameters`` go with the tensor as they are.

    >>> KServeV2Input(name="text", features=["q"], datatype="BYTES", shape=[]).datatype
    'BYTES'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    features: list[str] = Field(min_length=1)
    datatype: Datatype = "FP64"
    shape: list[int] | None = None
    parameters: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _shape_fits(self) -> KServeV2Input:
        if self.shape is not None and (
            any(d < 1 for d in self.shape) or math.prod(self.shape) != len(self.features)
        ):
            raise ValueError(
                f"input {self.name!r}: shape {self.shape} does not hold its {len(self.features)} features"
            )
        return self

    @property
    def row_shape(self) -> list[int]:
        return list(self.shape) if self.shape is not None else [len(self.features)]


class KServeV2Config(RemoteConfig):
    """Options of a ``kserve_v2`` model.

    Without ``inputs``, all features go in one tensor ``input_name`` of ``datatype``. With
    ``inputs`` and no ``features``, the features are the inputs' columns in order (BYTES ones
    take any values). ``parameters`` are the request's own (``{"content_type": "pd"}`` makes
    MLServer read several inputs as the columns of one DataFrame). ``binary`` is ``True``
    (inputs and outputs as binary tensor data), ``"inputs"``, ``"outputs"`` or ``False``.
    """

    #: names (numeric) or ``{name: kind}``; the inputs' columns when only ``inputs`` is given
    features: list[str] | dict[str, FeatureKind] | None = None  # type: ignore[assignment]
    url: str
    model: str | None = None
    model_version: str | None = None
    input_name: str = "input-0"
    datatype: Datatype = "FP64"
    inputs: list[KServeV2Input] | None = Field(None, min_length=1)
    #: outputs to ask for; the first is the prediction, ``proba_output`` the probabilities
    outputs: list[str] | None = None
    proba_output: str | None = None
    parameters: dict[str, Any] | None = None
    binary: bool | Literal["inputs", "outputs"] = False

    @model_validator(mode="before")
    @classmethod
    def _features_from_inputs(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not data.get("inputs") or data.get("features") is not None:
            return data
        kinds: dict[str, FeatureKind] = {}
        for spec in data["inputs"]:
            spec = spec if isinstance(spec, KServeV2Input) else KServeV2Input.model_validate(spec)
            for name in spec.features:
                kinds.setdefault(name, "any" if spec.datatype == "BYTES" else "numeric")
        return {**data, "features": kinds}

    @property
    def binary_inputs(self) -> bool:
        return self.binary in (True, "inputs")

    @property
    def binary_outputs(self) -> bool:
        return self.binary in (True, "outputs")


class KServeV2Backend(RemoteBackend):
    """A model served over the Open Inference Protocol (REST)."""

    backend_name = "kserve_v2"
    config_model = KServeV2Config
    config: KServeV2Config

    def _base(self) -> str:
        cfg = self.config
        url = f"{cfg.url.rstrip('/')}/v2/models/{cfg.model or self.model_name}"
        return url + (f"/versions/{cfg.model_version}" if cfg.model_version else "")

    # -- request ------------------------------------------------------------------------------
    def _request(self, features: pa.Table) -> tuple[bytes, dict[str, str]]:
        """The infer request's body and headers (JSON, or JSON header + binary tensors)."""
        cfg = self.config
        tensors: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        for spec in self._inputs(features):
            tensor, raw = self._encode(spec, features)
            tensors.append(tensor)
            if raw is not None:
                chunks.append(raw)
        payload: dict[str, Any] = {"inputs": tensors}
        parameters = dict(cfg.parameters or {})
        if cfg.outputs:
            wanted = {"parameters": {"binary_data": True}} if cfg.binary_outputs else {}
            payload["outputs"] = [{"name": name, **wanted} for name in cfg.outputs]
        elif cfg.binary_outputs:
            parameters["binary_data_output"] = True
        if parameters:
            payload["parameters"] = parameters
        header = json.dumps(payload, separators=(",", ":")).encode()
        if not cfg.binary_inputs:
            return header, {"Content-Type": "application/json"}
        return header + b"".join(chunks), {
            "Content-Type": "application/octet-stream",
            _HEADER: str(len(header)),
        }

    def _inputs(self, features: pa.Table) -> list[KServeV2Input]:
        cfg = self.config
        if cfg.inputs:
            return cfg.inputs
        # the one tensor of every feature column (or of one tensor column): not validated here
        return [
            KServeV2Input.model_construct(
                name=cfg.input_name, features=features.column_names, datatype=cfg.datatype
            )
        ]

    def _encode(self, spec: KServeV2Input, features: pa.Table) -> tuple[dict[str, Any], bytes | None]:
        rows = features.num_rows
        if self.config.inputs:
            missing = [name for name in spec.features if name not in features.column_names]
            if missing:
                raise SchemaError(
                    f"input {spec.name!r} of model {self.model_name!r} takes column {missing[0]!r}, "
                    f"which the features table lacks (got: {', '.join(features.column_names)})",
                    resource=missing[0],
                )
            table = features.select(spec.features)
            row_shape: list[int] | None = spec.row_shape
        else:
            table, row_shape = features, None  # one [rows, features] tensor
        tensor: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype}
        binary = self.config.binary_inputs
        if spec.datatype == "BYTES":
            values = _bytes_values(table, model=self.model_name, name=spec.name, binary=binary)
            shape = [rows, *(row_shape if row_shape is not None else [table.num_columns])]
            raw = b"".join(struct.pack("<I", len(v)) + v for v in values) if binary else None
            data: Any = values
        else:
            matrix = table_to_matrix(table, _DTYPES[spec.datatype])
            if row_shape is not None:
                matrix = matrix.reshape([rows, *row_shape])
            shape = list(matrix.shape)
            raw = np.ascontiguousarray(matrix).tobytes() if binary else None
            data = matrix.ravel().tolist()
        tensor["shape"] = shape
        parameters = dict(spec.parameters or {})
        if raw is not None:
            parameters["binary_data_size"] = len(raw)
        else:
            tensor["data"] = data
        if parameters:
            tensor["parameters"] = parameters
        return tensor, raw

    # -- answer -------------------------------------------------------------------------------
    def _answer(self, response: Any, url: str, rows: int) -> BackendOutput:
        where = self.where(url, "predict")
        tensors = decode_response(
            response.content, response.headers.get(_HEADER), where=where, model=self.model_name,
            status=response.status_code,
        )  # fmt: skip
        cfg = self.config
        label_name = cfg.outputs[0] if cfg.outputs else next(iter(tensors))
        labels = self._output(tensors, label_name, rows, where)
        proba: np.ndarray[Any, Any] | None = None
        if cfg.proba_output is not None:
            proba = _probabilities(
                self._output(tensors, cfg.proba_output, rows, where), where, self.model_name
            )
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        elif labels.ndim == 2 and cfg.proba_output in (None, label_name):
            # [rows, classes] scores (an sklearn model's predict_proba asked as the prediction)
            proba = _probabilities(labels, where, self.model_name)
            labels = proba.argmax(axis=1)
        elif labels.ndim >= 2:
            labels = _row_objects(labels)
        return BackendOutput(labels, proba)

    def _output(self, tensors: dict[str, np.ndarray[Any, Any]], name: str, rows: int, where: str) -> Any:
        if name not in tensors:
            raise ModelError(
                f"{where} answered no output {name!r} (outputs: {', '.join(tensors) or 'none'}); "
                "check the model's output names (metadata()) against outputs= / proba_output=",
                resource=self.model_name,
            )
        array = tensors[name]
        if array.ndim == 0 or array.shape[0] != rows:
            raise ModelError(
                f"{where} answered output {name!r} of shape {list(array.shape)} for {rows} rows",
                resource=self.model_name,
            )
        return array

    def predict(self, features: pa.Table) -> BackendOutput:
        url = self._base() + "/infer"
        content, headers = self._request(features)
        response = self.request("POST", url, content=content, headers=headers)
        return self._answer(response, url, features.num_rows)

    async def apredict(self, features: pa.Table | Mapping[str, Sequence[Any]]) -> BackendOutput:
        """:meth:`predict` awaited on an ``httpx.AsyncClient`` (same retries, breaker and errors).

        ``features`` is a table or ``{column: values}``, checked against the model's features
        as ``RealTimeML.predict`` does. Close with ``await backend.aclose()``.
        """
        table = features if isinstance(features, pa.Table) else pa.table(dict(features))
        if self.signature is not None:
            table = self.signature.validate(table, model=self.model_name)
        url = self._base() + "/infer"
        content, headers = self._request(table)
        response = await self.arequest("POST", url, content=content, headers=headers)
        return self._answer(response, url, table.num_rows)

    def ready(self) -> bool:
        try:
            self.request_json("GET", self._base() + "/ready", what="readiness")
        except (NotFoundError, ModelError):
            return False
        return True

    def metadata(self) -> dict[str, Any]:
        body = self.request_json("GET", self._base(), what="metadata")
        return {"backend": "kserve_v2", **(body if isinstance(body, dict) else {"metadata": body})}


def decode_response(
    content: bytes, header_length: str | None, *, where: str, model: str, status: int | None = None
) -> dict[str, np.ndarray[Any, Any]]:
    """An infer answer's output tensors by name, shaped (JSON ``data`` or binary tensor data).

    ``header_length`` is the ``Inference-Header-Content-Length`` header (``None``: all JSON).
    Every malformed answer is a :class:`~sygnify.errors.ModelError` naming ``where``.

    >>> body = b'{"outputs": [{"name": "p", "datatype": "FP32", "shape": [2, 2], "data": [1, 0, 0, 1]}]}'
    >>> decode_response(body, None, where="server", model="m")["p"].tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    >>> y = {"name": "y", "datatype": "INT8", "shape": [2], "parameters": {"binary_data_size": 2}}
    >>> binary = json.dumps({"outputs": [y]}).encode()
    >>> decode_response(binary + bytes([7, 9]), str(len(binary)), where="server", model="m")["y"].tolist()
    [7, 9]
    >>> decode_response(b'{"error": "no such input"}', None, where="server", model="m")
    Traceback (most recent call last):
    ...
    sygnify.errors.ModelError: server answered an error: no such input
    """

    def malformed(message: str) -> ModelError:
        return ModelError(f"{where} answered {message}", resource=model)

    buffer = b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise malformed(f"a non-integer {_HEADER} header {header_length[:40]!r}") from None
        if not 0 <= size <= len(content):
            raise malformed(f"{_HEADER} {size} for a body of {len(content)} bytes")
        content, buffer = content[:size], content[size:]
    body = parse_answer(content, where=where, model=model, status=status)
    if isinstance(body, dict) and "error" in body and "outputs" not in body:
        raise malformed(f"an error: {str(body['error'])[:300]}")
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(outputs, list) or not outputs:
        raise malformed("without outputs (expected a JSON object with a non-empty 'outputs' list)")
    tensors: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    for output in outputs:
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise malformed(f"an output that is not a named tensor: {str(output)[:100]}")
        name = output["name"]
        datatype = output.get("datatype")
        if datatype not in _DTYPES:
            raise malformed(
                f"output {name!r} of unknown datatype {str(datatype)[:20]!r} "
                f"(the protocol's are {', '.join(_DTYPES)})"
            )
        shape = output.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise malformed(f"output {name!r} with an invalid shape {str(shape)[:60]}")
        parameters = output.get("parameters") or {}
        chunk = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if chunk is not None:
            if not isinstance(chunk, int) or chunk < 0 or offset + chunk > len(buffer):
                raise malformed(
                    f"output {name!r} with binary_data_size {chunk} beyond the {len(buffer)} bytes "
                    "of binary data after the JSON header"
                )
            flat = _from_binary(buffer[offset : offset + chunk], datatype, name, malformed)
            offset += chunk
        elif "data" in output:
            flat = _from_json(output["data"], datatype, name, malformed)
        else:
            raise malformed(f"output {name!r} with neither data nor binary_data_size")
        if flat.size != math.prod(shape):
            raise malformed(f"output {name!r} with {flat.size} values for shape {shape}")
        tensors[name] = flat.reshape(shape)
    return tensors


def _from_json(data: Any, datatype: str, name: str, malformed: Any) -> np.ndarray[Any, Any]:
    try:
        if datatype == "BYTES":
            array = np.array(data, dtype=object)
            if not all(isinstance(v, str) for v in array.ravel()):
                raise ValueError("BYTES data holds non-string values")
        else:
            array = np.asarray(data, dtype=_DTYPES[datatype])
    except (TypeError, ValueError, OverflowError) as exc:
        raise malformed(f"output {name!r} whose data does not fit {datatype}: {str(exc)[:100]}") from None
    return array.reshape(-1)


def _from_binary(raw: bytes, datatype: str, name: str, malformed: Any) -> np.ndarray[Any, Any]:
    if datatype != "BYTES":
        dtype = _DTYPES[datatype]
        if len(raw) % dtype.itemsize:
            raise malformed(f"output {name!r} of {len(raw)} bytes, not a whole number of {datatype}")
        return np.frombuffer(raw, dtype=dtype)
    values: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise malformed(f"output {name!r} with a truncated BYTES length prefix")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise malformed(f"output {name!r} with a BYTES element beyond its data")
        values.append(raw[offset : offset + length])
        offset += length
    array = np.empty(len(values), dtype=object)
    try:
        array[:] = [v.decode() for v in values]
    except UnicodeDecodeError:
        array[:] = values  # not text: the raw bytes
    return array


def _bytes_values(table: pa.Table, *, model: str, name: str, binary: bool) -> list[Any]:
    """A BYTES tensor's elements in row-major order: ``bytes`` (binary) or ``str`` (JSON)."""
    columns = [column.to_pylist() for column in table.columns]
    out: list[Any] = []
    for row in zip(*columns):
        for column, value in zip(table.column_names, row):
            if value is None:
                raise SchemaError(
                    f"input {name!r} of model {model!r}: column {column!r} has a null; "
                    "fill or drop it before predicting",
                    resource=column,
                )
            if isinstance(value, bytes):
                if binary:
                    out.append(value)
                    continue
                try:
                    out.append(value.decode())
                except UnicodeDecodeError:
                    raise SchemaError(
                        f"input {name!r} of model {model!r}: column {column!r} holds bytes that are "
                        "not UTF-8, which JSON cannot carry; register the model with binary=True",
                        resource=column,
                    ) from None
                continue
            text = value if isinstance(value, str) else str(value)
            out.append(text.encode() if binary else text)
    return out


def _probabilities(array: np.ndarray[Any, Any], where: str, model: str) -> np.ndarray[Any, Any]:
    if array.dtype == object or array.ndim > 2:
        raise ModelError(
            f"{where} answered probabilities of datatype {array.dtype} and shape {list(array.shape)}; "
            "expected numbers of shape [rows, classes]",
            resource=model,
        )
    proba = array.astype(np.float64)
    return proba.reshape(len(proba), 1) if proba.ndim == 1 else proba


def _row_objects(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """One nested list per row (Arrow makes a list column of it)."""
    out = np.empty(len(array), dtype=object)
    out[:] = [row.tolist() for row in array]
    return out
