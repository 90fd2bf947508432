"""``pip install "sygnify[vertex]"`` alone predicts with a Vertex AI endpoint, with google-auth credentials.

Against a loopback HTTP server speaking Vertex AI's ``:predict``, over real HTTP with httpx.
In the ``vertex``-only session (``SYGNIFY_EXTRA_ONLY=vertex``: sygnify[vertex] and pytest,
nothing else) it also checks that no other extra's packages are there.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from google.oauth2.credentials import Credentials

from sygnify.ml import RealTimeML
from tests.extras._loopback import loopback
from tests.extras._only import check_alone, only_extra


@pytest.mark.skipif(only_extra() != "vertex", reason="only in the vertex-only environment")
def test_the_environment_holds_the_vertex_extra_alone() -> None:
    check_alone("vertex")


def test_predict_with_google_auth_credentials_with_the_vertex_extra() -> None:
    with loopback() as server, RealTimeML(sleep=lambda _: None) as ml:
        ml.register(
            "m",
            backend="vertex",
            project="p",
            location="europe-west4",
            endpoint_id="42",
            base_url=server.url,
            credentials=Credentials(token="token-from-google-auth"),
            features=["a", "b"],
        )
        scored = ml.predict("m", {"a": [1.0, 2.0], "b": [3.0, 5.0]})
        assert isinstance(scored, pa.Table)
        assert scored.column("prediction").to_pylist() == [4.0, 7.0]
        path, headers = server.requests[-1]
        assert path == "/v1/projects/p/locations/europe-west4/endpoints/42:predict"
        assert headers["Authorization"] == "Bearer token-from-google-auth"
