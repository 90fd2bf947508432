"""Batches of exactly ``batch_size`` rows, with the schema kept when a result has no rows.

:func:`~sygnify.io.arrow.rebatch` drops empty batches, so a result without rows would come
out as no batch at all, and a caller could not tell its columns. :func:`exact_batches`
rebatches the same way and yields one empty batch, carrying the schema, for such a result:

    >>> import pyarrow as pa
    >>> empty = pa.RecordBatch.from_pylist([], schema=pa.schema({"id": pa.int64()}))
    >>> [(b.num_rows, b.schema.names) for b in exact_batches([empty, empty], 10)]
    [(0, ['id'])]
    >>> [b.num_rows for b in exact_batches([pa.record_batch({"id": [1, 2, 3]})], 2)]
    [2, 1]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

from sygnify.io.arrow import rebatch

__all__ = ["exact_batches"]


def exact_batches(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """``rebatch(batches, batch_size)``, or one empty batch with their schema if they hold no rows."""
    schema: pa.Schema | None = None

    def noting_schema() -> Iterator[pa.RecordBatch]:
        nonlocal schema
        for batch in batches:
            if schema is None:
                schema = batch.schema
            yield batch

    produced = False
    for batch in rebatch(noting_schema(), batch_size):
        produced = True
        yield batch
    if not produced and schema is not None:
        yield pa.RecordBatch.from_pylist([], schema=schema)
