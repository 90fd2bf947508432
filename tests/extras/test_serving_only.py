"""``pip install "sygnify[serving]"`` alone predicts with models behind KServe v2 and TF Serving.

Against a loopback HTTP server speaking both protocols, over real HTTP with httpx. In the
``serving``-only session (``SYGNIFY_EXTRA_ONLY=serving``: sygnify[serving] and pytest,
nothing else) it also checks that no other extra's packages are there.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from sygnify.ml import RealTimeML
from tests.extras._loopback import loopback
from tests.extras._only import check_alone, only_extra


@pytest.mark.skipif(only_extra() != "serving", reason="only in the serving-only environment")
def test_the_environment_holds_the_serving_extra_alone() -> None:
    check_alone("serving")


@pytest.mark.parametrize("backend", ["kserve_v2", "tfserving"])
def test_predict_over_http_with_the_serving_extra(backend: str) -> None:
    with loopback() as server, RealTimeML(sleep=lambda _: None) as ml:
        ml.register("m", backend=backend, url=server.url, features=["a", "b"])
        scored = ml.predict("m", {"a": [1.0, 2.0], "b": [3.0, 5.0]})
        assert isinstance(scored, pa.Table)
        assert scored.column("prediction").to_pylist() == [4.0, 7.0]
        assert any(path.startswith(("/v2/models/m", "/v1/models/m")) for path, _ in server.requests)
