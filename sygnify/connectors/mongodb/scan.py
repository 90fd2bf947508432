"""A MongoDB collection as a Polars LazyFrame, with columns, ``head()`` and filters pushed to the server.

:func:`scan_collection` fixes the schema up front (given, or inferred from a sample read) and
registers a Polars IO source. Each collect turns what Polars asks for into one read request:
the selected columns become the projection, ``head(n)`` the limit, and the part of the
predicate that :func:`~sygnify.connectors.mongodb.pushdown.predicate_to_filter` translates is
ANDed with ``filter=`` (or appended to ``pipeline=`` as a ``$match``). The whole predicate is
still applied to the batches, so the result is the same as filtering locally. Nothing here
talks to a server: the connector's read is passed in::

    >>> import polars as pl, pyarrow as pa
    >>> requests = []
    >>> def read(source, **request):
    ...     requests.append(request)
    ...     table = pa.table({"n": [1, 2, 3]})
    ...     return table.schema, iter(table.to_batches())
    >>> frame = scan_collection(read, "orders", {}, sample_size=100, default_policy="raise")
    >>> frame.filter(pl.col("n") > 1).collect()["n"].to_list()
    [2, 3]
    >>> requests[-1]["filter"]
    {'n': {'$gt': 1}}
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import polars as pl
import pyarrow as pa

from sygnify.connectors.mongodb.pushdown import merge_filters, predicate_to_filter
from sygnify.connectors.mongodb.schema import RESCUE_COLUMN, InconsistentPolicy, with_rescue_column
from sygnify.errors import ConfigurationError
from sygnify.io.arrow import DEFAULT_BATCH_SIZE
from sygnify.io.polars_source import finish_frames

__all__ = ["SCAN_OPTIONS", "ReadCollection", "scan_collection"]

#: The options ``scan`` accepts (the rest of the read options are chosen by Polars).
SCAN_OPTIONS = frozenset({"filter", "sort", "limit", "skip", "pipeline", "schema", "on_inconsistent"})

#: The connector's read: ``read(source, **read_options)`` returns the output schema and the
#: Arrow batches of one ``find`` or ``aggregate`` (see ``MongoDBConnector.stream``).
ReadCollection = Callable[..., tuple[pa.Schema, Iterator[pa.RecordBatch]]]


def scan_collection(
    read: ReadCollection,
    source: str,
    options: Mapping[str, Any],
    *,
    sample_size: int,
    default_policy: InconsistentPolicy,
) -> pl.LazyFrame:
    """A LazyFrame over collection ``source`` whose collects call ``read`` (see the module docstring).

    ``options`` are the ``scan`` options (:data:`SCAN_OPTIONS`); ``sample_size`` documents are
    read to infer the schema when none is given, and ``default_policy`` applies when
    ``on_inconsistent`` is not given. With ``limit``/``skip`` filters run locally only (they
    apply to the documents those select).
    """
    unknown = sorted(set(options) - SCAN_OPTIONS)
    if unknown:
        raise ConfigurationError(f"unknown scan options: {', '.join(unknown)}", resource=source)
    request_options = dict(options)
    schema: pa.Schema | None = request_options.pop("schema", None)
    policy: InconsistentPolicy = request_options.pop("on_inconsistent", None) or default_policy
    if schema is None:
        sample_options = dict(request_options)
        if sample_options.get("pipeline") is None:
            limit = sample_options.get("limit") or sample_size
            sample_options["limit"] = min(limit, sample_size)
        sampled, batches = read(source, on_inconsistent=policy, **sample_options)
        for _ in batches:
            pass
        schema = sampled.remove(sampled.get_field_index(RESCUE_COLUMN)) if policy == "rescue" else sampled
    output = with_rescue_column(schema) if policy == "rescue" else schema
    polars_schema = pl.from_arrow(output.empty_table()).schema  # type: ignore[union-attr]
    fixed_schema = schema
    limit_or_skip = bool(request_options.get("limit") or request_options.get("skip"))

    def io_source(
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        limit = request_options.get("limit", 0)
        if n_rows is not None and predicate is None and request_options.get("pipeline") is None:
            limit = min(limit, n_rows) if limit else n_rows
        columns = [c for c in with_columns if c != RESCUE_COLUMN] if with_columns is not None else None
        request = {**request_options, "limit": limit}
        # With limit/skip the predicate applies to the documents they select, so it cannot go first.
        pushed = None if limit_or_skip else predicate_to_filter(predicate, fixed_schema, policy=policy)
        if pushed is not None and request_options.get("pipeline") is not None:
            request["pipeline"] = [*request_options["pipeline"], {"$match": pushed}]
        elif pushed is not None:
            request["filter"] = merge_filters(request_options.get("filter"), pushed)
        _, batches = read(
            source,
            **request,
            columns=columns,
            schema=fixed_schema,
            batch_size=batch_size or DEFAULT_BATCH_SIZE,
            on_inconsistent=policy,
        )
        yield from finish_frames(batches, predicate=predicate, with_columns=with_columns, n_rows=n_rows)

    return pl.io.plugins.register_io_source(io_source, schema=polars_schema)
