"""``pip install "sygnify[mongodb]"`` alone writes to and finds in MongoDB.

Against the mongoeco wire server (real OP_MSG), with pymongo. In the ``mongodb``-only session
(``SYGNIFY_EXTRA_ONLY=mongodb``: sygnify[mongodb] and pytest, nothing else) it also checks
that no other extra's packages (mongomock, which only the test extra brings) are there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.mongodb import MongoDBConnector
from tests.emulators import EmulatorUnavailable, mongoeco
from tests.extras._only import check_alone, only_extra
from tests.services import require

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    try:
        running = mongoeco.start()
    except EmulatorUnavailable as exc:
        require(False, f"mongoeco wire server unavailable: {exc}")
        return
    yield running
    running.stop()


@pytest.mark.skipif(only_extra() != "mongodb", reason="only in the mongodb-only environment")
def test_the_environment_holds_the_mongodb_extra_alone() -> None:
    check_alone("mongodb")


def test_write_and_find_with_the_mongodb_extra(server: Any) -> None:
    with CloudDataConnector(environ={}) as connector:
        mongo = connector.connect(
            "mongodb",
            uri=server.uri,
            database=f"db_{uuid.uuid4().hex[:8]}",
            server_selection_timeout_ms=5_000,
        )
        assert isinstance(mongo, MongoDBConnector)
        mongo.write(pa.table({"sku": ["a", "b", "c"], "qty": [1, 5, 9]}), "orders")
        found = mongo.find("orders", {"qty": {"$gt": 2}}, projection=["sku", "qty"], sort=[("qty", 1)])
        assert found.select(["sku", "qty"]).to_pylist() == [{"sku": "b", "qty": 5}, {"sku": "c", "qty": 9}]
