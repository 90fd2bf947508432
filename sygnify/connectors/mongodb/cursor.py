"""Running one planned MongoDB read: the cursor, the schema sample read with it, and Arrow batches.

:func:`open_cursor` runs a :class:`~sygnify.connectors.mongodb.read.ReadPlan` and reads the
first documents right away, so the connector's retries cover connection errors and the
schema can be inferred from them; :func:`cursor_batches` turns the documents into batches
of one schema (at least one batch: an empty read yields one empty batch that carries the
schema, found by :func:`empty_read_schema` when nothing matched). Retries, error
translation and closing the cursor stay with the connector::

    >>> import itertools, mongomock
    >>> from sygnify.connectors.mongodb.read import plan_read
    >>> from sygnify.connectors.mongodb.schema import infer_schema
    >>> database = mongomock.MongoClient().shop
    >>> _ = database.orders.insert_many([{"n": 1}, {"n": 2}, {"n": 3}])
    >>> plan = plan_read("orders", columns=["n"], policy="raise", batch_size=2)
    >>> cursor, head = open_cursor(database, plan, sample_size=2)
    >>> head
    [{'n': 1}, {'n': 2}]
    >>> batches = cursor_batches(itertools.chain(head, cursor), infer_schema(head), "raise", 2)
    >>> [batch.num_rows for batch in batches]
    [2, 1]
    >>> nothing = plan_read("orders", filter={"n": 99}, columns=["n"], policy="raise")
    >>> schema = empty_read_schema(database, nothing, sample_size=10)
    >>> [(b.num_rows, b.schema.names) for b in cursor_batches(iter([]), schema, "raise", 2)]
    [(0, ['n'])]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
from pymongo.database import Database

from sygnify.connectors.mongodb.read import ReadPlan, chunks
from sygnify.connectors.mongodb.schema import InconsistentPolicy, documents_to_batch, infer_schema
from sygnify.errors import NotFoundError

__all__ = ["cursor_batches", "empty_read_schema", "open_cursor"]

#: The most documents the server is asked to send per round trip.
_MAX_SERVER_BATCH = 100_000


def _check_exists(database: Database[Any], collection: str) -> None:
    if not database.list_collection_names(filter={"name": collection}):
        raise NotFoundError(
            f"collection {collection!r} does not exist in database {database.name!r}",
            resource=collection,
        )


def open_cursor(
    database: Database[Any], plan: ReadPlan, sample_size: int
) -> tuple[Any, list[Mapping[str, Any]]]:
    """The plan's ``find`` or ``aggregate`` cursor and its first documents.

    Those are ``sample_size`` documents when the plan has no schema (to infer it from), else
    one. A collection that does not exist is a :class:`~sygnify.errors.NotFoundError`.
    """
    _check_exists(database, plan.collection)
    target = database[plan.collection]
    cursor: Any
    if plan.stages is not None:
        cursor = target.aggregate(plan.stages, batchSize=min(plan.batch_size, _MAX_SERVER_BATCH))
    else:
        cursor = target.find(
            plan.filter or {}, plan.projection, skip=plan.skip, limit=plan.limit, sort=plan.sort
        )
        cursor = cursor.batch_size(min(plan.batch_size, _MAX_SERVER_BATCH))
    # The first documents are read here so connection errors are retried.
    head = list(itertools.islice(cursor, sample_size if plan.schema is None else 1))
    return cursor, head


def _projected_fields(projection: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """The top-level fields an inclusion projection names (``_id`` unless it is excluded)."""
    if projection is None:
        return []
    if isinstance(projection, Mapping):
        names = [str(key) for key, value in projection.items() if value and key != "_id"]
        keep_id = bool(projection.get("_id", 1))
    else:
        names = [str(key) for key in projection if key != "_id"]
        keep_id = True
    return (["_id"] if keep_id and names else []) + names


def empty_read_schema(database: Database[Any], plan: ReadPlan, sample_size: int) -> pa.Schema:
    """The schema of a ``find`` that matched nothing (and was given no schema).

    Inferred from up to ``sample_size`` documents of the collection read without the filter
    (through the same projection), so an empty result has the columns and types a non-empty
    one would; for an empty collection, the fields the projection names, typed ``null``. An
    aggregation's output has no shape to sample: its empty result has no columns.
    """
    if plan.stages is not None:
        return pa.schema([])
    sample = list(database[plan.collection].find({}, plan.projection, limit=sample_size))
    if sample:
        return infer_schema(sample)
    return pa.schema([pa.field(name, pa.null()) for name in _projected_fields(plan.projection)])


def cursor_batches(
    documents: Iterator[Mapping[str, Any]], schema: pa.Schema, policy: InconsistentPolicy, batch_size: int
) -> Iterator[pa.RecordBatch]:
    """``documents`` as Arrow batches of ``schema``, ``batch_size`` rows each (the last may be
    shorter); no documents give one empty batch, so the schema always reaches the caller."""
    empty = True
    for chunk in chunks(documents, batch_size):
        empty = False
        yield documents_to_batch(chunk, schema, policy)
    if empty:
        yield documents_to_batch([], schema, policy)
