"""``pip install "sygnify[nats]"`` alone reads a record from a NATS JetStream source.

Against this machine's server (127.0.0.1:4222); the record is published with the client the
extra brings. In the ``nats``-only session (``SYGNIFY_EXTRA_ONLY=nats``: sygnify[nats] and
pytest, nothing else) it also checks that no other extra's packages are there.
"""

from __future__ import annotations

import pytest

from tests.extras._only import check_alone, only_extra
from tests.extras._streams import round_trip
from tests.services import require
from tests.streams.backends import Backend, port_open

pytestmark = pytest.mark.emulator


@pytest.mark.skipif(only_extra() != "nats", reason="only in the nats-only environment")
def test_the_environment_holds_the_nats_extra_alone() -> None:
    check_alone("nats")


def test_publish_and_read_one_record_with_the_nats_extra() -> None:
    require(port_open(4222), "nats server on 127.0.0.1:4222")
    round_trip(Backend("nats"))
