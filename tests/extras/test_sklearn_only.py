"""``pip install "sygnify[sklearn]"`` alone serves a scikit-learn model it was given and one from a file.

In the ``sklearn``-only session (``SYGNIFY_EXTRA_ONLY=sklearn``: sygnify[sklearn] and pytest,
nothing else) it also checks that no other extra's packages (pandas and joblib's test-only
company, above all) are there.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from sygnify.ml import RealTimeML
from tests.extras._only import check_alone, only_extra


@pytest.mark.skipif(only_extra() != "sklearn", reason="only in the sklearn-only environment")
def test_the_environment_holds_the_sklearn_extra_alone() -> None:
    check_alone("sklearn")


def test_register_a_trained_model_and_predict_with_the_sklearn_extra(tmp_path: Path) -> None:
    X = np.array([[0.0, 0.1], [0.2, 0.0], [5.0, 5.2], [5.1, 4.9]])
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    with RealTimeML(sleep=lambda _: None) as ml:
        ml.register("given", backend="sklearn", model=model, features=["a", "b"])
        ml.register("file", backend="sklearn", path=str(path), trusted=True, features=["a", "b"])
        for name in ("given", "file"):
            scored = ml.predict(name, {"a": [0.1, 5.0], "b": [0.0, 5.0]})
            assert isinstance(scored, pa.Table)
            assert scored.column("prediction").to_pylist() == [0, 1]
            assert ml.predict_one(name, {"a": 4.8, "b": 5.3}).prediction == 1
