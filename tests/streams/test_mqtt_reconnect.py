"""A connection to Mosquitto lost mid-stream: nothing is read twice, nothing is lost.

When the connection drops, paho reconnects on its own and the broker sends again, marked as
duplicates, every QoS 1 message it has no ``PUBACK`` for: the ones still in the source's
buffer, the ones the consumer holds unacknowledged, and the ones whose ``PUBACK`` paho had
queued but not written (it clears its outgoing queue when it reconnects). The source knows
those messages by packet identifier and payload, so it takes none of them twice: a copy of a
message it still holds is dropped (acknowledging the one it holds acknowledges the copy, which
has the same identifier), and a copy of one it acknowledged already is acknowledged again.

The cut is made by a TCP proxy between the client and the broker, in the middle of a burst.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from sygnify.ml.realtime import RealTimeML
from sygnify.streams.mqtt import MqttSource
from sygnify.testing.sources import SCHEMA, payload
from tests.connectors.postgres._tcp_proxy import tcp_proxy
from tests.services import require
from tests.streams.backends import MQTT_HOST, MQTT_PORT, Backend, port_open


@pytest.fixture
def mqtt_backend() -> Backend:
    require(port_open(MQTT_PORT), "mosquitto on 127.0.0.1:1883")
    return Backend("mqtt")


def _source(backend: Backend, port: int) -> MqttSource:
    return MqttSource(
        host=MQTT_HOST,
        port=port,
        topics=[f"{backend.name}/#"],
        client_id=f"{backend.name}-c1",
        schema=SCHEMA,
        reconnect_min_delay=1,
        reconnect_max_delay=1,
    )


def _model() -> RealTimeML:
    ml = RealTimeML()
    ml.register(
        "m", backend="callable", fn=lambda X: X[:, 0], features=["temperature"], extra_features="ignore"
    )
    return ml


@pytest.mark.parametrize("cut_at", [40, 150])
def test_a_connection_cut_mid_stream_delivers_every_message_once(mqtt_backend: Backend, cut_at: int) -> None:
    total = 300
    with tcp_proxy(MQTT_HOST, MQTT_PORT) as proxy:
        source = _source(mqtt_backend, proxy.port)
        mqtt_backend.produce([payload(i) for i in range(200)])
        seen: list[int] = []
        produced_rest = False
        deadline = time.monotonic() + 60
        with source:
            stream = _model().stream(source, model="m", max_records=10, max_latency=0.02)
            for table in stream:
                seen += table.column("id").to_pylist()
                if len(seen) >= cut_at and not produced_rest:
                    produced_rest = True
                    proxy.drop_after(1)  # the next bytes from the broker: the connection goes
                    mqtt_backend.produce([payload(i) for i in range(200, total)])
                time.sleep(0.01)  # a consumer slower than the broker: messages wait in the buffer
                if len(set(seen)) >= total or time.monotonic() > deadline:
                    stream.stop()
        assert proxy.drops == 1, "the connection was cut once"
    repeated = {i: n for i, n in Counter(seen).items() if n > 1}
    assert not repeated, f"read twice across the reconnect: {sorted(repeated)[:20]}"
    assert sorted(seen) == list(range(total)), "nothing lost"
    # a restart of the same session gets nothing again: every PUBACK reached the broker
    again = _source(mqtt_backend, MQTT_PORT)
    with again:
        late = again.read(max_records=100, timeout=2.0)
    assert late is None, f"delivered again after a restart: {late.batch.column('id').to_pylist()[:20]}"
