"""The contract between stream sources and their consumers (RealTimeML, LargeDataHandler).

A source hands out micro-batches of decoded records as Arrow, each with an ``ack`` to call
once the batch has been fully processed (predictions written, callbacks done). Nothing is
acknowledged before that, so a consumer that dies mid-batch gets the batch again after a
restart: delivery is at-least-once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

__all__ = ["SourceBatch", "StreamSource"]


@dataclass
class SourceBatch:
    """A micro-batch from a stream source.

    ``batch`` holds the decoded records; ``ack()`` acknowledges every message in it
    (including poison messages already sent to the dead-letter target, listed in
    ``dead_letters`` with their reasons); ``metadata`` has source-specific positions
    (offsets, stream ids, sequence numbers).
    """

    batch: pa.RecordBatch
    ack: Callable[[], None]
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class StreamSource(Protocol):
    """What every plugin in the ``sygnify.sources`` entry-point group provides."""

    def read(self, *, max_records: int = 1000, timeout: float = 1.0) -> SourceBatch | None:
        """Up to ``max_records`` records, waiting at most ``timeout`` s; None if none came."""
        ...

    def close(self) -> None:
        """Stop consuming and release connections (unacknowledged messages are redelivered)."""
        ...

    def __iter__(self) -> Iterator[SourceBatch]:
        """Batches until ``close()`` is called."""
        ...
