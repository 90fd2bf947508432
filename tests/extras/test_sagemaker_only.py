"""``pip install "sygnify[sagemaker]"`` alone predicts with a SageMaker endpoint, requests signed by boto3.

Against a loopback HTTP server standing in for the runtime's ``invocations``. In the
``sagemaker``-only session (``SYGNIFY_EXTRA_ONLY=sagemaker``: sygnify[sagemaker] and pytest,
nothing else) it also checks that no other extra's packages (httpx above all: the other
remote backends' client) are there.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from sygnify.ml import RealTimeML
from tests.extras._loopback import loopback
from tests.extras._only import check_alone, only_extra


@pytest.mark.skipif(only_extra() != "sagemaker", reason="only in the sagemaker-only environment")
def test_the_environment_holds_the_sagemaker_extra_alone() -> None:
    check_alone("sagemaker")


def test_predict_with_signed_requests_with_the_sagemaker_extra() -> None:
    with loopback() as server, RealTimeML(sleep=lambda _: None) as ml:
        ml.register(
            "m",
            backend="sagemaker",
            endpoint_name="churn",
            endpoint_url=server.url,
            region="eu-west-1",
            access_key_id="AKIDTEST",
            secret_access_key="secret",
            features=["a", "b"],
        )
        scored = ml.predict("m", {"a": [1.0, 2.0], "b": [3.0, 5.0]})
        assert isinstance(scored, pa.Table)
        assert scored.column("prediction").to_pylist() == [4.0, 7.0]
        path, headers = server.requests[-1]
        assert path == "/endpoints/churn/invocations"
        assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
