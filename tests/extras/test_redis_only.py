"""``pip install "sygnify[redis]"`` alone reads a record from a Redis stream source.

Against this machine's server (127.0.0.1:6379); the record is published with the client the
extra brings. In the ``redis``-only session (``SYGNIFY_EXTRA_ONLY=redis``: sygnify[redis] and
pytest, nothing else) it also checks that no other extra's packages are there.
"""

from __future__ import annotations

import pytest

from tests.extras._only import check_alone, only_extra
from tests.extras._streams import round_trip
from tests.services import require
from tests.streams.backends import Backend, port_open

pytestmark = pytest.mark.emulator


@pytest.mark.skipif(only_extra() != "redis", reason="only in the redis-only environment")
def test_the_environment_holds_the_redis_extra_alone() -> None:
    check_alone("redis")


def test_publish_and_read_one_record_with_the_redis_extra() -> None:
    require(port_open(6379), "redis server on 127.0.0.1:6379")
    round_trip(Backend("redis"))
