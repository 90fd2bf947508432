"""Writing Arrow data into a MongoDB collection: batched inserts that are safe to retry, and upserts.

``append`` inserts each batch with ``insert_many``; with an ``upsert_key`` each row instead
replaces the document with the same key values, or is inserted (idempotent). Inserted
documents get their ``_id`` before the first attempt, so a retry after a dropped connection
recognises the documents the first attempt wrote (duplicate ``_id`` errors) and does not
fail on them. The connector passes in its retried, error-translated call::

    >>> import mongomock, pyarrow as pa
    >>> orders = mongomock.MongoClient().shop.orders
    >>> def call(fn, *args, **kwargs):
    ...     return fn(*args, **kwargs)
    >>> table = pa.table({"_id": [1, 2], "total": [9.5, 3.0]})
    >>> write_table(call, lambda name: orders, table, "orders", mode="append", upsert_key=None,
    ...             object_id_fields=(), batch_size=1).rows
    2
    >>> orders.find_one({"_id": 2})
    {'_id': 2, 'total': 3.0}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pymongo.errors as mongo_errors
from bson import ObjectId
from pymongo import ReplaceOne
from pymongo.collection import Collection

from sygnify.connectors.base import WriteMode, WriteResult
from sygnify.connectors.mongodb.config import is_id_duplicate
from sygnify.connectors.mongodb.schema import to_documents
from sygnify.errors import ConfigurationError, SchemaError
from sygnify.io.arrow import to_arrow_table

__all__ = ["WriteCall", "write_table"]

#: Runs ``fn(*args, **kwargs)`` as one ``write`` call of the connector: retried, with the
#: circuit breaker, driver errors translated (``BaseConnector._call`` with the operation bound).
WriteCall = Callable[..., Any]


def write_table(
    call: WriteCall,
    open_collection: Callable[[str], Collection[Any]],
    data: Any,
    target: str,
    *,
    mode: WriteMode,
    upsert_key: Sequence[str] | None,
    object_id_fields: Sequence[str],
    batch_size: int,
) -> WriteResult:
    """Write Arrow/Polars/pandas ``data`` to collection ``target`` in batches of ``batch_size``.

    ``open_collection`` looks the collection up by name (checking the name); ``overwrite``
    first deletes every document. See ``MongoDBConnector.write`` for the options.
    """
    if mode not in ("append", "overwrite"):
        raise ConfigurationError(f"mode must be 'append' or 'overwrite', got {mode!r}", resource=target)
    collection = open_collection(target)
    table = to_arrow_table(data)
    keys = list(upsert_key or [])
    missing = [key for key in keys if key not in table.column_names]
    if missing:
        raise SchemaError(f"upsert_key columns not in the data: {', '.join(missing)}", resource=target)
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
    if mode == "overwrite":
        call(collection.delete_many, {})
    for batch in table.to_batches(max_chunksize=batch_size):
        documents = to_documents(batch, object_id_fields)
        if keys:
            operations = [ReplaceOne({key: doc[key] for key in keys}, doc, upsert=True) for doc in documents]
            call(collection.bulk_write, operations, ordered=False)
        else:
            _insert(call, collection, documents)
    return WriteResult(target=target, rows=table.num_rows, paths=[target])


def _insert(call: WriteCall, collection: Collection[Any], documents: list[dict[str, Any]]) -> None:
    for document in documents:
        document.setdefault("_id", ObjectId())
    attempts = 0

    def insert() -> None:
        nonlocal attempts
        attempts += 1
        try:
            collection.insert_many(documents, ordered=False)
        except mongo_errors.BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            already_written = (
                attempts > 1
                and errors
                and not exc.details.get("writeConcernErrors")
                and all(is_id_duplicate(error) for error in errors)
            )
            # A retry after a dropped connection finds the documents the first try wrote.
            if not already_written:
                raise

    call(insert)
