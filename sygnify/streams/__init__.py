"""Stream sources (Kafka, Redis Streams, NATS JetStream, MQTT) yielding Arrow micro-batches.

Each source is a plugin in the ``sygnify.sources`` entry-point group, loaded lazily (its
client library is an extra: ``pip install 'sygnify[redis]'``)::

    source = open_source("redis", stream="sensors", group="ml")
    for batch in source:          # SourceBatch: Arrow batch + ack() + dead letters
        process(batch.batch)
        batch.ack()

>>> "redis" in SOURCES
True
"""

from sygnify.streams.base import (
    BaseSource,
    DeadLetterTarget,
    RawMessage,
    SourceBatch,
    StreamSource,
    build_batch,
)
from sygnify.streams.decoding import Decoder, avro_decoder, json_decoder, protobuf_decoder
from sygnify.streams.memory import MemoryLog, MemorySource
from sygnify.streams.registry import SOURCES, SourceFactory, open_source

__all__ = [
    "SOURCES",
    "BaseSource",
    "DeadLetterTarget",
    "Decoder",
    "MemoryLog",
    "MemorySource",
    "RawMessage",
    "SourceBatch",
    "SourceFactory",
    "StreamSource",
    "avro_decoder",
    "build_batch",
    "json_decoder",
    "open_source",
    "protobuf_decoder",
]
