"""Batched answers without copies, tensor-column input, cached validation, the ONNX fast paths."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from sygnify.errors import ConfigurationError, SchemaError
from sygnify.ml import RealTimeML, Signature
from sygnify.ml.answers import Answers
from sygnify.ml.backends import BackendOutput
from sygnify.ml.signature import table_to_matrix

FEATURES = ["a", "b", "c", "d"]


def _tensor(X: np.ndarray[Any, Any], name: str = "features") -> pa.Table:
    flat = pa.array(np.ascontiguousarray(X, dtype=np.float32).reshape(-1))
    return pa.table({name: pa.FixedSizeListArray.from_arrays(flat, X.shape[1])})


def test_answer_wraps_the_backend_buffers() -> None:
    labels = np.arange(5, dtype=np.int64)
    proba = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    table = Answers().table(BackendOutput(labels, proba), "m", "v1", latency_s=0.002, rows=5)
    prediction = table.column("prediction").chunk(0)
    assert prediction.buffers()[1].address == labels.ctypes.data
    probabilities = table.column("probabilities").chunk(0)
    assert probabilities.type == pa.list_(pa.float32(), 3)  # the model's dtype, not float64
    assert probabilities.values.buffers()[1].address == proba.ctypes.data
    assert table.column("model").to_pylist() == ["m"] * 5
    assert table.column("latency_ms").to_pylist() == [2.0] * 5


def test_constant_columns_share_one_zero_buffer_and_read_as_strings() -> None:
    answers = Answers()
    small, large = answers.constant("v1", 3), answers.constant("v2", 1000)
    again = answers.constant("v3", 10)
    assert again.indices.buffers()[1].address == large.indices.buffers()[1].address
    assert (small.to_pylist(), again.to_pylist()) == (["v1"] * 3, ["v3"] * 10)
    frame = pl.from_arrow(pa.table({"model_version": large}))
    assert isinstance(frame, pl.DataFrame)
    assert frame["model_version"].cast(pl.String).unique().to_list() == ["v2"]


def test_tensor_column_is_viewed_not_copied() -> None:
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    table = _tensor(X)
    matrix = table_to_matrix(table)
    assert matrix.tolist() == X.tolist()
    assert np.shares_memory(matrix, table.column(0).chunk(0).values.to_numpy())
    sliced = table.slice(1, 2)  # offsets are honoured
    assert table_to_matrix(sliced).tolist() == X[1:].tolist()
    chunked = pa.concat_tables([_tensor(X[:1]), _tensor(X[1:])])
    assert table_to_matrix(chunked).tolist() == X.tolist()


def test_columns_are_written_chunk_by_chunk() -> None:
    table = pa.concat_tables(
        [pa.table({"a": [1.0, 2.0], "b": [True, False]}), pa.table({"a": [3.0], "b": [True]})]
    )
    assert table_to_matrix(table).tolist() == [[1.0, 1.0], [2.0, 0.0], [3.0, 1.0]]


def test_tensor_column_predictions_match_columns(ml: RealTimeML, onnx_bytes: bytes, iris: Any) -> None:
    X, _ = iris
    ml.register("iris", backend="onnx", model_bytes=onnx_bytes, features=FEATURES)
    by_columns = ml.predict("iris", pa.table({f: X[:, i] for i, f in enumerate(FEATURES)}))
    by_tensor = ml.predict("iris", _tensor(X))
    assert by_tensor.column("prediction").equals(by_columns.column("prediction"))
    assert by_tensor.column("probabilities").equals(by_columns.column("probabilities"))
    assert by_tensor.schema.field("probabilities").type.value_type == pa.float32()
    polars_out = ml.predict("iris", pl.from_arrow(_tensor(X)))
    assert isinstance(polars_out, pl.DataFrame)
    assert polars_out["model"].cast(pl.String).to_list() == ["iris"] * len(X)


def test_tensor_column_of_the_wrong_width_names_the_column(ml: RealTimeML, onnx_bytes: bytes) -> None:
    ml.register("iris", backend="onnx", model_bytes=onnx_bytes, features=FEATURES)
    with pytest.raises(SchemaError, match="tensor column 'x' has width 3") as info:
        ml.predict("iris", _tensor(np.zeros((2, 3)), name="x"))
    assert info.value.resource == "x"


def test_tensor_column_with_null_rows_is_refused() -> None:
    array = pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0, 3.0, 4.0], pa.float32()), 2)
    with_null = pa.array([[1.0, 2.0], None], type=array.type)
    with pytest.raises(SchemaError, match="1 null rows") as info:
        table_to_matrix(pa.table({"t": with_null}))
    assert info.value.resource == "t"


def test_validation_is_cached_per_schema_and_still_raises() -> None:
    sig = Signature.of(["x", "y"])
    good = pa.table({"y": [1.0], "x": [2.0]})
    assert sig.validate(good, model="m").column_names == ["x", "y"]
    assert sig.validate(pa.table({"y": [3.0], "x": [4.0]}), model="m").column("x").to_pylist() == [4.0]
    assert len(sig._plans) == 1
    for _ in range(2):  # an error is not remembered as a success
        with pytest.raises(SchemaError, match="missing"):
            sig.validate(pa.table({"x": [1.0]}), model="m")
    in_order = pa.table({"x": [1.0], "y": [2.0]})
    assert sig.validate(in_order, model="m") is in_order


def test_onnx_session_can_be_given_ready(ml: RealTimeML, onnx_bytes: bytes, iris: Any) -> None:
    import onnxruntime as ort

    X, _ = iris
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    ml.register("iris", backend="onnx", session=session, features=FEATURES)
    expected = session.run(None, {session.get_inputs()[0].name: X[:1]})[0][0]
    assert ml.predict_one("iris", dict(zip(FEATURES, X[0].tolist()))).prediction == expected
    with pytest.raises(ConfigurationError, match="intra_op_num_threads would be ignored"):
        ml.register("other", backend="onnx", session=session, intra_op_num_threads=2)
    with pytest.raises(ConfigurationError, match="exactly one of path=, model_bytes= or session="):
        ml.register("none", backend="onnx")


def test_onnx_session_config_entries_are_applied(ml: RealTimeML, onnx_bytes: bytes) -> None:
    backend = ml.register(
        "iris",
        backend="onnx",
        model_bytes=onnx_bytes,
        features=FEATURES,
        session_config={"session.intra_op.allow_spinning": "0"},
    )
    options = backend.session.get_session_options()  # type: ignore[attr-defined]
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_predict_one_matches_batched(ml: RealTimeML, onnx_bytes: bytes, iris: Any) -> None:
    X, _ = iris
    ml.register("iris", backend="onnx", model_bytes=onnx_bytes, features=FEATURES)
    batched = ml.predict("iris", _tensor(X[:10]))
    singles = [ml.predict_one("iris", row.tolist()) for row in X[:10]]
    assert [s.prediction for s in singles] == batched.column("prediction").to_pylist()
    np.testing.assert_allclose(
        np.stack([s.probabilities for s in singles]),
        np.array(batched.column("probabilities").to_pylist()),
        rtol=1e-5,  # float32 kernels for one row and for many round differently
    )
