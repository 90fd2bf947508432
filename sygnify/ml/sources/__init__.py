"""Stream sources (Kafka, Redis Streams, NATS JetStream, MQTT) yielding Arrow micro-batches."""

from sygnify.ml.sources.base import SourceBatch, StreamSource

__all__ = ["SourceBatch", "StreamSource"]
