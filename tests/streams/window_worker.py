"""A windowed, checkpointed stream process for the SIGKILL test (``run(spec, out)`` in a child process).

It aggregates the backend's events per key and tumbling window (``RealTimeML.stream``, or
``LargeDataHandler.process`` with ``"engine": "handler"``) with a durable
checkpoint (``OUT_DIR/state.json``) and writes every result to the dataset ``OUT_DIR/results/``;
after ``idle`` seconds without events it flushes the open windows and exits 0. The test kills
it with SIGKILL at random points and restarts it until it exits by itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pyarrow as pa

from sygnify.ml.realtime import RealTimeML
from sygnify.processing import Aggregate, LargeDataHandler
from sygnify.streams.windows import Tumbling
from tests.streams.backends import Backend

SCHEMA = pa.schema([("id", pa.int64()), ("k", pa.int64()), ("ts", pa.float64())])
WINDOW = 1.0  # a window closes every 100 events (a third of a second at the test's rate)
#: Event-time lateness allowed: NATS redelivers what a killed worker had read after ``ack_wait``,
#: behind newer events (a message read by several killed workers in a row comes back several
#: ``ack_wait`` later). Event time runs at 3 s per second live, and faster while a restarted
#: worker drains the backlog of its downtime: 40 s once fell short on a loaded CI machine (a
#: redelivery dropped as late), so 60 s (about 20 s of redelivery delay live). The others
#: redeliver in order.
LATENESS = {"nats": 60.0}
#: NATS's redelivery delay in the worker: short, since what comes again is skipped by position.
NATS_ACK_WAIT = 0.5


def sink_of(spec: dict[str, Any], out: Path) -> Any:
    """A dataset directory, or (``"sink"``: redis, kafka, nats, mqtt) the stream or topic
    ``<name>-results`` (MQTT: the topic ``<name>-results/out``)."""
    if spec.get("sink") == "mqtt":
        from sygnify.streams.mqtt import MqttTopicSink

        return MqttTopicSink(topic=f"{spec['name']}-results/out")
    if spec.get("sink") == "redis":
        from sygnify.streams.redis import RedisStreamSink

        return RedisStreamSink(stream=f"{spec['name']}-results")
    if spec.get("sink") == "nats":
        from sygnify.streams.nats import NatsSubjectSink

        return NatsSubjectSink(stream=f"{spec['name']}-results", subject=f"{spec['name']}-results.out")
    if spec.get("sink") == "kafka":
        from sygnify.streams.kafka import KafkaTopicSink

        return KafkaTopicSink(
            bootstrap_servers=spec["bootstrap"],
            topic=f"{spec['name']}-results",
            transactional_id=f"{spec['name']}-sink",
        )
    if spec.get("sink") == "delta":
        return f"delta:{out / 'delta'}"
    if spec.get("sink") == "connector":  # a connector's write(..., write_id=label)
        from sygnify.connectors.local import LocalConfig, LocalConnector

        return (LocalConnector(LocalConfig(root=str(out))), "written/")
    return str(out / "results") + "/"


def run(spec: dict[str, Any], out: str) -> None:
    main(spec, Path(out))


def main(spec: dict[str, Any], out: Path) -> None:
    backend = Backend(spec["kind"], name=spec["name"], bootstrap=spec.get("bootstrap"))
    ml = RealTimeML()
    ml.register("n", backend="callable", fn=lambda X: X[:, 0], features=["n"])
    options = backend.source_options(ack_wait=NATS_ACK_WAIT)
    with backend.open(consumer="worker", schema=SCHEMA, **options) as source:
        (out / "ready.marker").touch()
        if spec.get("engine") == "handler":  # the same runtime without a model
            LargeDataHandler(progress=False).process(
                source,
                transform=Aggregate(by="k", n=("id", "count"), total=("id", "sum")),
                window=Tumbling(WINDOW),
                time="ts",
                allowed_lateness=LATENESS.get(spec["kind"], 0.5),
                checkpoint=str(out / "state.json"),
                checkpoint_interval=0.2,
                sink=sink_of(spec, out),
                idle_timeout=spec.get("idle", 3.0),
            )
            (out / "done.marker").touch()
            return
        stream = ml.stream(
            source,
            model="n",
            mode="aggregation",
            window=Tumbling(WINDOW),
            time="ts",
            allowed_lateness=LATENESS.get(spec["kind"], 0.5),
            aggregate=Aggregate(by="k", n=("id", "count"), total=("id", "sum")),
            checkpoint=str(out / "state.json"),
            checkpoint_interval=0.2,
            sink=sink_of(spec, out),
            idle_timeout=spec.get("idle", 3.0),
            max_records=spec.get("batch", 25),
            poll_timeout=0.1,
        )
        for _ in stream:
            pass
    (out / "done.marker").touch()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), Path(sys.argv[2]))
