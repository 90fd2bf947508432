"""Running one planned MongoDB read: the cursor, the schema sample read with it, and Arrow batches.

:func:`open_cursor` runs a :class:`~sygnify.connectors.mongodb.read.ReadPlan` and reads the
first documents right away, so the connector's retries cover connection errors and the
schema can be inferred from them; :func:`cursor_batches` turns the documents into batches
of one schema. Retries, error translation and closing the cursor stay with the connector::

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
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
from pymongo.database import Database

from sygnify.connectors.mongodb.read import ReadPlan, chunks
from sygnify.connectors.mongodb.schema import InconsistentPolicy, documents_to_batch
from sygnify.errors import NotFoundError

__all__ = ["cursor_batches", "open_cursor"]

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


def cursor_batches(
    documents: Iterator[Mapping[str, Any]], schema: pa.Schema, policy: InconsistentPolicy, batch_size: int
) -> Iterator[pa.RecordBatch]:
    """``documents`` as Arrow batches of ``schema``, ``batch_size`` rows each (the last may be shorter)."""
    for chunk in chunks(documents, batch_size):
        yield documents_to_batch(chunk, schema, policy)
