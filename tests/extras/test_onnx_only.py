"""``pip install "sygnify[onnx]"`` alone serves an ONNX model with ONNX Runtime.

The model (``fixtures/linear.onnx``, y = 2·a + 3·b + 1) is checked in: this environment has
onnxruntime but neither ``onnx`` nor skl2onnx to build one. In the ``onnx``-only session
(``SYGNIFY_EXTRA_ONLY=onnx``: sygnify[onnx] and pytest, nothing else) it also checks that no
other extra's packages (scikit-learn, skl2onnx, onnx, pandas) are there.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from sygnify.ml import RealTimeML
from tests.extras._only import check_alone, only_extra

MODEL = Path(__file__).with_name("fixtures") / "linear.onnx"


@pytest.mark.skipif(only_extra() != "onnx", reason="only in the onnx-only environment")
def test_the_environment_holds_the_onnx_extra_alone() -> None:
    check_alone("onnx")


def test_register_an_onnx_file_and_predict_with_the_onnx_extra() -> None:
    with RealTimeML(sleep=lambda _: None) as ml:
        ml.register("linear", backend="onnx", path=str(MODEL), features=["a", "b"], intra_op_num_threads=1)
        scored = ml.predict("linear", {"a": [1.0, 0.0], "b": [2.0, -1.0]})
        assert isinstance(scored, pa.Table)
        assert scored.column("prediction").to_pylist() == pytest.approx([9.0, -2.0])
        assert ml.predict_one("linear", {"a": 0.5, "b": 0.5}).prediction == pytest.approx(3.5)
