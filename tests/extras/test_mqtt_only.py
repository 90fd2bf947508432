"""``pip install "sygnify[mqtt]"`` alone reads a record from an MQTT source.

Against this machine's server (127.0.0.1:1883); the record is published with the client the
extra brings. In the ``mqtt``-only session (``SYGNIFY_EXTRA_ONLY=mqtt``: sygnify[mqtt] and
pytest, nothing else) it also checks that no other extra's packages are there.
"""

from __future__ import annotations

import pytest

from tests.extras._only import check_alone, only_extra
from tests.extras._streams import round_trip
from tests.services import require
from tests.streams.backends import Backend, port_open

pytestmark = pytest.mark.emulator


@pytest.mark.skipif(only_extra() != "mqtt", reason="only in the mqtt-only environment")
def test_the_environment_holds_the_mqtt_extra_alone() -> None:
    check_alone("mqtt")


def test_publish_and_read_one_record_with_the_mqtt_extra() -> None:
    require(port_open(1883), "mqtt server on 127.0.0.1:1883")
    round_trip(Backend("mqtt"))
