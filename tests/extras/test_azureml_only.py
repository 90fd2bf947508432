"""``pip install "sygnify[azureml]"`` alone predicts with an Azure ML online endpoint.

With a key and with a Microsoft Entra token credential (azure-core's protocol), against a
loopback HTTP server standing in for the scoring URI, over real HTTP with httpx. In the
``azureml``-only session (``SYGNIFY_EXTRA_ONLY=azureml``: sygnify[azureml] and pytest,
nothing else) it also checks that no other extra's packages are there.
"""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa
import pytest
from azure.core.credentials import AccessToken

from sygnify.ml import RealTimeML
from tests.extras._loopback import loopback
from tests.extras._only import check_alone, only_extra


class EntraToken:
    """A TokenCredential handing out one fixed token (no identity to reach from a test)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("entra-token", int(time.time()) + 3600)


@pytest.mark.skipif(only_extra() != "azureml", reason="only in the azureml-only environment")
def test_the_environment_holds_the_azureml_extra_alone() -> None:
    check_alone("azureml")


@pytest.mark.parametrize(
    ("auth", "bearer"), [({"api_key": "k"}, "k"), ({"credential": EntraToken()}, "entra-token")]
)
def test_predict_with_a_key_or_a_token_with_the_azureml_extra(auth: dict[str, Any], bearer: str) -> None:
    with loopback() as server, RealTimeML(sleep=lambda _: None) as ml:
        ml.register("m", backend="azureml", scoring_uri=f"{server.url}/score", features=["a", "b"], **auth)
        scored = ml.predict("m", {"a": [1.0, 2.0], "b": [3.0, 5.0]})
        assert isinstance(scored, pa.Table)
        assert scored.column("prediction").to_pylist() == [4.0, 7.0]
        path, headers = server.requests[-1]
        assert (path, headers["Authorization"]) == ("/score", f"Bearer {bearer}")
