"""How the data reads that pyarrow and Polars make themselves follow the connection's retry policy.

Three pieces, one per reader:

- pyarrow (``stream()``, ``query()``, footers): its S3 filesystem makes one attempt per
  request (:func:`arrow_s3_retry_strategy`); the operation around it is retried by sygnify's
  policy, and a stream resumes where it failed (:func:`resumable_batches`), so nothing it
  already yielded is yielded again.
- Polars (``scan().collect()``): its cloud reader retries on its own, outside sygnify; it
  gets the policy's attempts and backoff (:func:`polars_retry_options`), so an outage ends in
  about the policy's time.
- DuckDB reads the Arrow datasets, through the pyarrow filesystem above.

>>> from sygnify.resilience import RetryPolicy
>>> polars_retry_options(RetryPolicy(max_attempts=4, initial_delay=0.2, max_delay=10.0))["max_retries"]
3
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from sygnify.resilience import RetryPolicy

__all__ = ["Checkpoint", "arrow_s3_retry_strategy", "polars_retry_options", "resumable_batches"]

#: Where a stream stands: the index of the fragment being read and the rows of it already yielded.
Checkpoint = tuple[int, int]


def arrow_s3_retry_strategy() -> pafs.S3RetryStrategy:
    """The retry strategy of sygnify's pyarrow S3 filesystems: one attempt per request.

    Every pyarrow read runs inside an operation that sygnify retries (opening a dataset, a
    query, a resumable stream), so a second layer of retries inside pyarrow would only
    multiply the attempts and hide the failures from the circuit breaker.
    """
    return pafs.AwsStandardS3RetryStrategy(max_attempts=1)


def polars_retry_options(policy: RetryPolicy) -> dict[str, Any]:
    """Polars cloud ``storage_options`` that bound its own retries by ``policy``.

    Polars reads ``scan()`` data itself, when the frame is collected, outside any sygnify
    call: it gets ``max_attempts - 1`` retries with the policy's first and longest backoff,
    and gives up after the policy's total backoff (plus a second of slack).

    >>> options = polars_retry_options(RetryPolicy(max_attempts=2, initial_delay=0.5, jitter=0.0))
    >>> options["retry_init_backoff_ms"], options["retry_timeout_ms"]
    (500, 1500)
    """
    return {
        "max_retries": policy.max_attempts - 1,
        "retry_init_backoff_ms": max(1, round(policy.initial_delay * 1000)),
        "retry_max_backoff_ms": max(1, round(policy.max_delay * 1000)),
        "retry_base_multiplier": policy.multiplier,
        "retry_timeout_ms": round((policy.total_delay() + 1.0) * 1000),
    }


def resumable_batches(
    dataset: ds.Dataset,
    checkpoint: Checkpoint | None,
    *,
    columns: Sequence[str] | None,
    filter: ds.Expression | None,
    batch_size: int,
) -> Iterator[tuple[pa.RecordBatch, Checkpoint]]:
    """The batches of ``dataset`` from ``checkpoint`` on, each with the checkpoint after it.

    A file dataset restarts at the fragment (object) that failed and skips the rows of it
    already yielded; any other dataset is rescanned and the rows already yielded skipped.
    The scan is pyarrow's own (readahead, threads), in the same order as ``to_batches``.

    >>> table = pa.table({"x": list(range(5))})
    >>> [(batch.num_rows, after) for batch, after in resumable_batches(
    ...     ds.dataset(table), (0, 3), columns=None, filter=None, batch_size=10)]
    [(2, (0, 5))]
    """
    index, skip = checkpoint or (0, 0)
    if isinstance(dataset, ds.FileSystemDataset):
        fragments = list(dataset.get_fragments())
        remaining = ds.FileSystemDataset(
            fragments[index:], dataset.schema, dataset.format, dataset.filesystem
        )
        positions = {fragment.path: position for position, fragment in enumerate(fragments)}
    else:
        remaining, positions = dataset, {}
    scanner = remaining.scanner(
        columns=list(columns) if columns else None, filter=filter, batch_size=batch_size
    )
    current, seen = index, 0
    for tagged in scanner.scan_batches():
        batch = tagged.record_batch
        position = positions.get(getattr(tagged.fragment, "path", None), index)
        if position != current:
            current, seen = position, 0
        start = seen
        seen += batch.num_rows
        if position == index and start < skip:
            batch = batch.slice(min(skip - start, batch.num_rows))
            if batch.num_rows == 0:
                continue
        yield batch, (current, seen)
