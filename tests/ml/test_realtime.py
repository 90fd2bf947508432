from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from sygnify import events
from sygnify.errors import CircuitOpenError, ConfigurationError, ModelError, NotFoundError, SchemaError
from sygnify.ml import RealTimeML


def _const(value: float) -> Any:
    return lambda X: np.full(len(X), value)


@pytest.fixture
def ab(ml: RealTimeML) -> RealTimeML:
    ml.register("m", backend="callable", fn=_const(1.0), features=["x"], version="v1")
    ml.register("m", backend="callable", fn=_const(2.0), features=["x"], version="v2")
    return ml


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (pa.table({"x": [1.0, 2.0]}), pa.Table),
        (pa.record_batch({"x": [1.0, 2.0]}), pa.Table),
        (pl.DataFrame({"x": [1.0, 2.0]}), pl.DataFrame),
        (pd.DataFrame({"x": [1.0, 2.0]}), pa.Table),
        ({"x": [1.0, 2.0]}, pa.Table),
        ([{"x": 1.0}, {"x": 2.0}], pa.Table),
    ],
)
def test_inputs_and_output_columns(ml: RealTimeML, data: Any, kind: type) -> None:
    ml.register("double", backend="callable", fn=lambda X: X[:, 0] * 2, features=["x"], version="3")
    result = ml.predict("double", data)
    assert isinstance(result, kind)
    table = result.to_arrow() if isinstance(result, pl.DataFrame) else result
    assert table.column_names == ["prediction", "model", "model_version", "latency_ms"]
    assert table.column("prediction").to_pylist() == [2.0, 4.0]
    assert set(table.column("model_version").to_pylist()) == {"3"}


def test_probabilities_column_and_polars_output(ml: RealTimeML, classifier: Any, iris: Any) -> None:
    X, _ = iris
    features = ["a", "b", "c", "d"]
    ml.register("iris", backend="sklearn", model=classifier, features=features)
    frame = pl.DataFrame({f: X[:, i] for i, f in enumerate(features)})
    out = ml.predict("iris", frame, include_input=True)
    assert isinstance(out, pl.DataFrame)
    assert out.columns[:4] == features
    assert out["probabilities"].to_numpy().shape == (150, 3)
    assert isinstance(ml.predict("iris", frame, output="arrow"), pa.Table)


@pytest.mark.parametrize(
    ("data", "feature", "message"),
    [
        ({"x": [1.0]}, "y", "missing"),
        ({"x": [1.0], "y": [1.0], "z": [1.0]}, "z", "does not take"),
        ({"x": [1.0], "y": ["a"]}, "y", "numeric"),
    ],
)
def test_schema_errors_name_the_feature(
    ml: RealTimeML, data: Mapping[str, Any], feature: str, message: str
) -> None:
    ml.register("m", backend="callable", fn=_const(0.0), features=["x", "y"])
    with pytest.raises(SchemaError, match=message) as info:
        ml.predict("m", data)
    assert info.value.resource == feature


def test_single_record_schema_errors(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=_const(0.0), features=["x", "y"])
    with pytest.raises(SchemaError) as missing:
        ml.predict_one("m", {"x": 1.0})
    assert missing.value.resource == "y"
    with pytest.raises(SchemaError) as extra:
        ml.predict_one("m", {"x": 1.0, "y": 1.0, "q": 2})
    assert extra.value.resource == "q"
    with pytest.raises(SchemaError) as wrong:
        ml.predict_one("m", {"x": 1.0, "y": "nope"})
    assert wrong.value.resource == "y"


def test_extra_features_can_be_ignored(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=lambda X: X[:, 0], features=["x"], extra_features="ignore")
    assert ml.predict("m", {"x": [5.0], "noise": [1.0]}).column("prediction").to_pylist() == [5.0]


def test_unknown_model_and_version(ab: RealTimeML) -> None:
    with pytest.raises(NotFoundError, match="models: m"):
        ab.predict("nope", {"x": [1.0]})
    with pytest.raises(NotFoundError, match="no version 'v9'"):
        ab.route("m", {"v9": 1.0})
    with pytest.raises(ConfigurationError, match="already has version"):
        ab.register("m", backend="callable", fn=_const(0.0), version="v1")


def test_first_version_takes_traffic_until_routed(ab: RealTimeML) -> None:
    assert set(ab.predict("m", {"x": [0.0] * 10}).column("prediction").to_pylist()) == {1.0}
    ab.route("m", {"v1": 0.5, "v2": 0.5})
    versions = ab.predict("m", {"x": [0.0] * 400}).column("model_version").to_pylist()
    assert 120 < versions.count("v2") < 280
    ab.route("m", {"v2": 1})
    assert ab.predict_one("m", {"x": 0.0}).model_version == "v2"


def test_routing_by_key_is_sticky_and_rows_keep_their_order(ab: RealTimeML) -> None:
    ab.route("m", {"v1": 0.5, "v2": 0.5})
    data = pa.table({"user": [f"u{i}" for i in range(50)], "x": [float(i) for i in range(50)]})
    first = ab.predict("m", data, key="user", include_input=True)
    second = ab.predict("m", data, key="user")
    assert first.column("model_version").to_pylist() == second.column("model_version").to_pylist()
    assert first.column("user").to_pylist() == data.column("user").to_pylist()
    by_version = dict(zip(first.column("model_version").to_pylist(), first.column("prediction").to_pylist()))
    assert by_version == {"v1": 1.0, "v2": 2.0}
    single = [ab.predict_one("m", {"x": 0.0}, key=f"u{i}").model_version for i in range(50)]
    assert single == first.column("model_version").to_pylist()


def test_shadow_compares_but_never_answers(ab: RealTimeML) -> None:
    ab.shadow("m", "v2")
    out = ab.predict("m", {"x": [0.0, 0.0]})
    assert out.column("prediction").to_pylist() == [1.0, 1.0]
    assert ab.predict_one("m", {"x": 0.0}).prediction == 1.0
    report = ab.shadow_report("m")
    assert report == {"version": "v2", "rows": 3, "errors": 0, "agreement_rate": 0.0, "mean_abs_diff": 1.0}


def test_a_failing_shadow_does_not_affect_answers(ml: RealTimeML) -> None:
    def broken(X: Any) -> Any:
        raise RuntimeError("shadow bug")

    ml.register("m", backend="callable", fn=_const(1.0), features=["x"], version="v1")
    ml.register("m", backend="callable", fn=broken, features=["x"], version="v2")
    ml.shadow("m", "v2")
    assert ml.predict("m", {"x": [0.0]}).column("prediction").to_pylist() == [1.0]
    assert ml.predict_one("m", {"x": 0.0}).prediction == 1.0
    report = ml.shadow_report("m")
    assert report is not None
    assert report["errors"] == 2
    ml.shadow("m", None)
    ml.predict("m", {"x": [0.0]})
    assert ml.shadow_report("m") == report


def test_canary_promote_and_rollback(ab: RealTimeML) -> None:
    ab.canary("m", "v2", weight=0.1)
    assert ab.models()["m"]["routes"] == pytest.approx({"v1": 0.9, "v2": 0.1})
    ab.promote("m")
    assert ab.models()["m"]["routes"] == {"v2": 1.0}
    assert ab.rollback("m") == pytest.approx({"v1": 0.9, "v2": 0.1})
    assert ab.rollback("m") == {"v1": 1.0}
    assert ab.rollback("m") == {"v1": 1.0}


def test_promote_refuses_a_canary_with_too_many_errors(ml: RealTimeML) -> None:
    def broken(X: Any) -> Any:
        raise RuntimeError("bad release")

    ml.register("m", backend="callable", fn=_const(1.0), features=["x"], version="v1")
    ml.register("m", backend="callable", fn=broken, features=["x"], version="v2")
    ml.canary("m", "v2", weight=0.5)
    with pytest.raises(ModelError):
        ml.predict("m", {"x": [0.0]}, version="v2")
    with pytest.raises(ModelError, match="error rate"):
        ml.promote("m", max_error_rate=0.01)
    assert ml.models()["m"]["canary"] == "v2"


class _Unavailable:
    """A callable that raises the breaker's error, as an open remote backend would."""

    def __call__(self, X: Any) -> Any:
        raise CircuitOpenError("breaker open", resource="m", retry_at=5.0)


def test_fallbacks_when_the_breaker_is_open(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=_Unavailable(), features=["x"], version="v2")
    with pytest.raises(CircuitOpenError):
        ml.predict("m", {"x": [1.0]})
    ml.set_fallback("m", default=-1.0)
    assert ml.predict("m", {"x": [1.0, 2.0]}).column("prediction").to_pylist() == [-1.0, -1.0]
    assert ml.predict_one("m", {"x": 1.0}).model_version == "fallback"
    ml.register("m", backend="callable", fn=_const(7.0), features=["x"], version="v1")
    ml.set_fallback("m", version="v1")
    out = ml.predict("m", {"x": [1.0]})
    assert (out.column("prediction").to_pylist(), out.column("model_version").to_pylist()) == ([7.0], ["v1"])
    assert ml.predict_one("m", {"x": 1.0})[:4] == (7.0, None, "m", "v1")


def test_fallback_default_given_at_registration(ml: RealTimeML) -> None:
    ml.register("m", backend="callable", fn=_Unavailable(), features=["x"], fallback_default=0.0)
    assert ml.predict_one("m", {"x": 1.0}).prediction == 0.0


def test_ensemble_combines_models(ml: RealTimeML) -> None:
    ml.register("a", backend="callable", fn=_const(1.0), features=["x"])
    ml.register("b", backend="callable", fn=_const(3.0), features=["x"])
    out = ml.ensemble(["a", "b"], {"x": [0.0, 0.0]})
    assert out.column_names == ["prediction_a", "prediction_b", "prediction", "model"]
    assert out.column("prediction").to_pylist() == [2.0, 2.0]
    weighted = ml.ensemble(["a", "b"], pl.DataFrame({"x": [0.0]}), combine="weighted", weights=[3, 1])
    assert isinstance(weighted, pl.DataFrame)
    assert weighted["prediction"].to_list() == [1.5]
    assert ml.ensemble(["a", "b"], {"x": [0.0]}, combine="max").column("prediction").to_pylist() == [3.0]
    with pytest.raises(ConfigurationError, match="one weight per model"):
        ml.ensemble(["a", "b"], {"x": [0.0]}, combine="weighted")


def test_metrics_and_hooks(ml: RealTimeML) -> None:
    seen: list[tuple[str, Mapping[str, Any]]] = []
    unsubscribe = events.subscribe(lambda event, fields: seen.append((event, fields)))
    try:
        ml.register("m", backend="callable", fn=_const(1.0), features=["x"])
        ml.predict("m", {"x": [0.0] * 5})
        ml.predict_one("m", {"x": 0.0})
    finally:
        unsubscribe()
    snapshot = ml.metrics()["m:1"]
    assert (snapshot["calls"], snapshot["count"], snapshot["errors"]) == (2, 6, 0)
    assert sum(snapshot["latency_histogram"].values()) == 2
    predictions = [fields for event, fields in seen if event == "model.prediction"]
    assert [(e["model"], e["version"], e["rows"], e["outcome"]) for e in predictions] == [
        ("m", "1", 5, "ok"),
        ("m", "1", 1, "ok"),
    ]


def test_unregister_and_health(ab: RealTimeML) -> None:
    assert ab.health("m") == {"v1": True, "v2": True}
    ab.unregister("m", "v2")
    assert ab.models()["m"]["versions"] == ["v1"]
    ab.register("m", backend="callable", fn=_const(0.0), version="v3")
    with pytest.raises(ConfigurationError, match="still takes traffic"):
        ab.unregister("m", "v1")
    ab.unregister("m")
    assert ab.models() == {}
