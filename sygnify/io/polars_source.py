"""The last step of a Polars IO source over a database: what the database could not do.

A connector's ``scan()`` pushes what it can (columns, filters, limits) into its query;
:func:`finish_frames` then applies the full predicate again (a pushed filter may be partial),
projects, casts to the declared schema and stops after ``n_rows``, so the result is always
what Polars would compute locally.

>>> import polars as pl, pyarrow as pa
>>> batches = pa.table({"n": [1, 2, 3], "s": ["a", "b", "c"]}).to_batches(max_chunksize=2)
>>> frames = finish_frames(batches, predicate=pl.col("n") > 1, with_columns=["s"], n_rows=1)
>>> pl.concat(list(frames))["s"].to_list()
['b']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import polars as pl
import pyarrow as pa

__all__ = ["finish_frames"]


def finish_frames(
    batches: Iterable[pa.RecordBatch | pa.Table],
    *,
    predicate: pl.Expr | None,
    with_columns: list[str] | None,
    n_rows: int | None,
    schema: pl.Schema | None = None,
) -> Iterator[pl.DataFrame]:
    """Frames for Polars from a database's ``batches``: cast to ``schema`` where a batch's
    types differ (databases may send a narrower type for some batches), filtered by
    ``predicate``, projected to ``with_columns``, at most ``n_rows`` rows in all."""
    remaining = n_rows
    for batch in batches:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        if schema is not None:
            wanted = {column: schema[column] for column in frame.columns if column in schema}
            if any(frame.schema[column] != dtype for column, dtype in wanted.items()):
                frame = frame.cast(wanted)  # type: ignore[arg-type]
        if predicate is not None:
            frame = frame.filter(predicate)
        if with_columns is not None:
            frame = frame.select(with_columns)
        if remaining is not None:
            frame = frame.head(remaining)
            remaining -= frame.height
        yield frame
        if remaining is not None and remaining <= 0:
            return
