"""Conversions to Arrow and re-chunking of batch streams (zero-copy where possible)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

import polars as pl
import pyarrow as pa

from sygnify.errors import ConfigurationError, DataQualityError, NotFoundError, SchemaError, SygnifyError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_BATCH_SIZE", "TableLike", "rebatch", "to_arrow_table", "translate_read_error"]

#: Rows per batch by default: per-batch overhead is ~1.5 ms, so much smaller wastes time.
DEFAULT_BATCH_SIZE = 100_000

TableLike: TypeAlias = (
    "pa.Table | pa.RecordBatch | pa.RecordBatchReader | pl.DataFrame | pl.LazyFrame | pd.DataFrame"
)


def to_arrow_table(data: Any) -> pa.Table:
    """Turn Arrow, Polars or pandas data into a :class:`pyarrow.Table`.

    >>> to_arrow_table(pl.DataFrame({"a": [1, 2]})).num_rows
    2
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    if isinstance(data, pl.LazyFrame):
        return data.collect().to_arrow()
    if isinstance(data, pl.DataFrame):
        return data.to_arrow()
    if type(data).__module__.startswith("pandas") and hasattr(data, "to_parquet"):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise ConfigurationError(
        f"cannot use {type(data).__name__} as tabular data; pass a pyarrow Table/RecordBatch/"
        "RecordBatchReader, a Polars DataFrame/LazyFrame or a pandas DataFrame"
    )


def rebatch(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Re-chunk a stream so every batch has exactly ``batch_size`` rows (the last may be short).

    Slicing is zero-copy; only batches that straddle a boundary are concatenated.

    >>> stream = [pa.record_batch({"x": list(range(n))}) for n in (3, 5, 4)]
    >>> [b.num_rows for b in rebatch(stream, 5)]
    [5, 5, 2]
    """
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            take = min(batch_size - pending_rows, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            pending_rows += take
            offset += take
            if pending_rows == batch_size:
                yield _combine(pending)
                pending, pending_rows = [], 0
    if pending_rows:
        yield _combine(pending)


def _combine(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(parts) == 1:
        return parts[0]
    return pa.concat_batches(parts)


def translate_read_error(exc: Exception, message: str, resource: str | None) -> SygnifyError | None:
    """Map an error pyarrow or Polars raised while reading data onto the sygnify error tree.

    A missing file is a :class:`~sygnify.errors.NotFoundError`, a type or column mismatch a
    :class:`~sygnify.errors.SchemaError`, data they cannot parse (or an I/O failure) a
    :class:`~sygnify.errors.DataQualityError`; anything else returns ``None``.

    >>> type(translate_read_error(pa.ArrowInvalid("bad row"), "read failed", "x.csv")).__name__
    'DataQualityError'
    """
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(message, resource=resource)
    if isinstance(exc, pa.ArrowTypeError | pl.exceptions.SchemaError | pl.exceptions.ColumnNotFoundError):
        return SchemaError(message, resource=resource)
    if isinstance(exc, pa.ArrowInvalid | pl.exceptions.ComputeError | OSError):
        return DataQualityError(message, resource=resource)
    return None
