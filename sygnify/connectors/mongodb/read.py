"""From the ``mongodb`` connector's read options to one ``find`` or ``aggregate`` request.

:func:`plan_read` checks the options together (what may be combined with what) and works out
the projection: ``columns=`` and a given ``schema`` both become a server-side projection, so
only the fields asked for travel. Nothing here talks to a server:

    >>> plan = plan_read("orders", columns=["total"], sort={"created": -1}, policy="raise")
    >>> plan.projection, plan.sort, plan.stages is None
    ({'total': 1, '_id': 0}, [('created', -1)], True)
    >>> plan_read("orders", pipeline=[{"$match": {"paid": True}}], columns=["total"], policy="raise").stages
    [{'$match': {'paid': True}}, {'$project': {'total': 1, '_id': 0}}]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from sygnify.connectors.base import QueryParams
from sygnify.connectors.mongodb.schema import RESCUE_COLUMN, InconsistentPolicy
from sygnify.errors import ConfigurationError, SchemaError
from sygnify.io.arrow import DEFAULT_BATCH_SIZE

__all__ = ["ReadPlan", "Sort", "check_collection_name", "chunks", "filter_document", "plan_read", "sort_spec"]

Sort = Mapping[str, int] | Sequence[tuple[str, int]]


def check_collection_name(collection: str) -> str:
    """``collection`` if it names an ordinary collection, else a ConfigurationError.

    >>> check_collection_name("system.users")
    Traceback (most recent call last):
    ...
    sygnify.errors.ConfigurationError: 'system.users' is not a usable collection name ...
    """
    if not collection or "$" in collection or "\x00" in collection or collection.startswith("system."):
        raise ConfigurationError(
            f"{collection!r} is not a usable collection name (non-empty, no '$', not system.*)",
            resource=collection,
        )
    return collection


def sort_spec(sort: Sort | None) -> list[tuple[str, int]] | None:
    """A sort mapping or pair list as the driver's list of ``(field, 1 | -1)``.

    >>> sort_spec({"a": 1, "b": -1})
    [('a', 1), ('b', -1)]
    """
    if sort is None:
        return None
    pairs = list(sort.items()) if isinstance(sort, Mapping) else list(sort)
    for key, direction in pairs:
        if direction not in (1, -1):
            raise ConfigurationError(f"sort direction for {key!r} must be 1 or -1, got {direction!r}")
    return pairs


def filter_document(
    params: QueryParams, filter: Mapping[str, Any] | None, source: str
) -> Mapping[str, Any] | None:
    """The filter document of a read: ``params`` (the connector protocol's name) or ``filter=``.

    >>> filter_document({"status": "paid"}, None, "orders")
    {'status': 'paid'}
    >>> filter_document(["paid"], None, "orders")
    Traceback (most recent call last):
    ...
    sygnify.errors.ConfigurationError: MongoDB parameters are a filter document (a mapping), ...
    """
    if params is None:
        return filter
    if not isinstance(params, Mapping):
        raise ConfigurationError(
            "MongoDB parameters are a filter document (a mapping), not a sequence", resource=source
        )
    if filter is not None:
        raise ConfigurationError("pass params= or filter=, not both", resource=source)
    return params


def chunks(documents: Iterator[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    """Consecutive lists of ``size`` documents (the last may be shorter).

    >>> [len(chunk) for chunk in chunks(iter([{}] * 5), 2)]
    [2, 2, 1]
    """
    while chunk := list(itertools.islice(documents, size)):
        yield chunk


@dataclass(frozen=True)
class ReadPlan:
    """One checked read: a ``find`` (``stages is None``) or an ``aggregate`` of ``stages``."""

    collection: str
    policy: InconsistentPolicy
    batch_size: int
    schema: pa.Schema | None
    filter: Mapping[str, Any] | None = None
    projection: Mapping[str, Any] | Sequence[str] | None = None
    sort: list[tuple[str, int]] | None = None
    limit: int = 0
    skip: int = 0
    stages: list[dict[str, Any]] | None = None


def plan_read(
    source: str,
    *,
    policy: InconsistentPolicy,
    filter: Mapping[str, Any] | None = None,
    projection: Mapping[str, Any] | Sequence[str] | None = None,
    sort: Sort | None = None,
    limit: int = 0,
    skip: int = 0,
    pipeline: Sequence[Mapping[str, Any]] | None = None,
    columns: Sequence[str] | None = None,
    schema: pa.Schema | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ReadPlan:
    """Check a read's options and build its request (see the module docstring)."""
    collection = check_collection_name(source)
    if policy not in ("raise", "rescue"):
        raise ConfigurationError(f"on_inconsistent must be 'raise' or 'rescue', got {policy!r}")
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
    if limit < 0 or skip < 0:
        raise ConfigurationError("limit and skip must be >= 0")
    if columns is not None and projection is not None:
        raise ConfigurationError("pass columns= or projection=, not both", resource=source)
    if columns is not None:
        projection = dict.fromkeys(columns, 1)
        if "_id" not in columns:
            projection["_id"] = 0
    if schema is not None and columns is not None:
        missing = [column for column in columns if column not in schema.names]
        if missing:
            raise SchemaError(f"columns not in the schema: {', '.join(missing)}", resource=source)
        schema = pa.schema([schema.field(column) for column in columns])
    stages: list[dict[str, Any]] | None = None
    if pipeline is not None:
        if filter is not None or sort is not None or limit or skip or (projection and columns is None):
            raise ConfigurationError(
                "with pipeline=, express filter/sort/limit/skip/projection as $match/$sort/$limit/"
                "$skip/$project stages",
                resource=source,
            )
        stages = [dict(stage) for stage in pipeline]
        if projection is not None:
            stages.append(
                {
                    "$project": dict(projection)
                    if isinstance(projection, Mapping)
                    else dict.fromkeys(projection, 1)
                }
            )
    elif schema is not None and projection is None:
        # Only the schema's fields travel: other top-level fields are not "inconsistent".
        projection = {name: 1 for name in schema.names if name != RESCUE_COLUMN}
        if "_id" not in projection:
            projection["_id"] = 0
    return ReadPlan(
        collection=collection,
        policy=policy,
        batch_size=batch_size,
        schema=schema,
        filter=filter,
        projection=projection,
        sort=sort_spec(sort),
        limit=limit,
        skip=skip,
        stages=stages,
    )
