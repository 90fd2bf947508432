"""Unit tests of the Polars predicate → MongoDB filter translation (no server)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import mongomock
import polars as pl
import pyarrow as pa
import pytest
from bson import ObjectId

from sygnify.connectors.mongodb.connector import MongoDBConfig, MongoDBConnector
from sygnify.connectors.mongodb.pushdown import merge_filters, predicate_to_filter
from sygnify.connectors.mongodb.schema import MIXED_METADATA, RESCUE_COLUMN

UTC = dt.timezone.utc
SCHEMA = pa.schema(
    [
        pa.field("_id", pa.string()),
        pa.field("n", pa.int64()),
        pa.field("f", pa.float64()),
        pa.field("s", pa.string()),
        pa.field("b", pa.bool_()),
        pa.field("t", pa.timestamp("ms", tz="UTC")),
        pa.field("c", pa.struct([("x", pa.int64())])),
        pa.field("l", pa.list_(pa.int64())),
        pa.field("m", pa.string(), metadata=MIXED_METADATA),
        pa.field("d", pa.decimal128(38, 2)),
        pa.field("a.b", pa.int64()),
        pa.field(RESCUE_COLUMN, pa.string()),
    ]
)
OID = "65f000000000000000000001"


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        (pl.col("n") == 3, {"n": {"$eq": 3}}),
        (pl.col("n") != 3, {"n": {"$ne": 3}}),
        (pl.col("n") < 3, {"n": {"$lt": 3}}),
        (pl.col("n") <= 3, {"n": {"$lte": 3}}),
        (pl.col("n") > 2.5, {"n": {"$gt": 2.5}}),
        (pl.lit(3) > pl.col("n"), {"n": {"$lt": 3}}),
        (pl.col("n").is_in([1, 2]), {"n": {"$in": [1, 2]}}),
        (pl.col("n").is_between(1, 5), {"$and": [{"n": {"$gte": 1}}, {"n": {"$lte": 5}}]}),
        (pl.col("n").is_null(), {"n": {"$eq": None}}),
        (pl.col("n").is_not_null(), {"n": {"$ne": None}}),
        (pl.col("s") == "paid", {"s": {"$eq": "paid"}}),
        (pl.col("s").is_in(["a", "b"]), {"s": {"$in": ["a", "b"]}}),
        (pl.col("_id") == OID, {"_id": {"$in": [OID, ObjectId(OID)]}}),
        (pl.col("b"), {"b": {"$eq": True}}),
        (~pl.col("b"), {"b": {"$eq": False}}),
        (pl.col("c").struct.field("x") == 1, {"c.x": {"$eq": 1}}),
        (
            pl.col("t") >= dt.datetime(2026, 1, 2, tzinfo=UTC),
            {"t": {"$gte": dt.datetime(2026, 1, 2, tzinfo=UTC)}},
        ),
        (pl.col("l").is_null(), {"l": {"$eq": None}}),
        (pl.col("m").is_null(), {"m": {"$eq": None}}),
        (
            (pl.col("n") > 1) & (pl.col("s") == "x"),
            {"$and": [{"n": {"$gt": 1}}, {"s": {"$eq": "x"}}]},
        ),
        ((pl.col("n") > 1) | (pl.col("n") < -1), {"$or": [{"n": {"$gt": 1}}, {"n": {"$lt": -1}}]}),
    ],
)
def test_translatable_predicates(predicate: pl.Expr, expected: dict[str, Any]) -> None:
    assert predicate_to_filter(predicate, SCHEMA) == expected


@pytest.mark.parametrize(
    "predicate",
    [
        pl.col("s") != "x",  # collation and ObjectIds: not exact on the server
        pl.col("s") > "m",
        pl.col("s").str.contains("x"),
        pl.col("n") + 1 > 2,
        pl.col("n") > pl.col("f"),
        pl.col("n") > 2**70,  # not an int64
        pl.col("f") == float("nan"),
        pl.col("m") == "x",  # Extended JSON text, not the stored value
        pl.col("m").is_not_null(),
        pl.col("l").is_not_null(),  # {$ne: null} would drop arrays holding a null
        pl.col("d") > 1,
        pl.col("a.b") == 1,  # a dot is a path on the server
        pl.col(RESCUE_COLUMN).is_null(),
        pl.col("t") < dt.datetime(2026, 1, 1, 0, 0, 0, 500, tzinfo=UTC),  # finer than BSON's ms
        pl.col("t") < dt.datetime(2026, 1, 1),  # naive literal, zoned column
        (pl.col("n") > 1) | pl.col("s").str.contains("x"),  # one side of | is not enough
        ~(pl.col("n") > 1) & pl.col("s").str.contains("x"),
    ],
)
def test_untranslatable_predicates_stay_in_polars(predicate: pl.Expr) -> None:
    assert predicate_to_filter(predicate, SCHEMA) is None


def test_and_pushes_the_translatable_side() -> None:
    predicate = (pl.col("n") > 1) & pl.col("s").str.contains("x")
    assert predicate_to_filter(predicate, SCHEMA) == {"n": {"$gt": 1}}


def test_float_greater_than_also_fetches_nan() -> None:
    # Polars orders NaN above every number; MongoDB below.
    pushed = predicate_to_filter(pl.col("f") > 1.5, SCHEMA)
    assert pushed is not None
    assert pushed["$or"][0] == {"f": {"$gt": 1.5}}
    assert math.isnan(pushed["$or"][1]["f"]["$eq"])
    assert predicate_to_filter(pl.col("f") < 1.5, SCHEMA) == {"f": {"$lt": 1.5}}


def test_is_null_is_not_pushed_when_rescuing() -> None:
    assert predicate_to_filter(pl.col("n").is_null(), SCHEMA, policy="rescue") is None
    assert predicate_to_filter(pl.col("n") > 1, SCHEMA, policy="rescue") == {"n": {"$gt": 1}}


def test_none_predicate_and_merging() -> None:
    assert predicate_to_filter(None, SCHEMA) is None
    assert merge_filters(None, {}) is None
    assert merge_filters({"a": 1}, None) == {"a": 1}
    assert merge_filters({"a": 1}, {"b": 2}) == {"$and": [{"a": 1}, {"b": 2}]}


def test_scan_sends_the_filter_and_matches_local_filtering(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the connector (mongomock): the pushed filter reaches find() and results are unchanged."""
    client: Any = mongomock.MongoClient()
    connection = MongoDBConnector(MongoDBConfig(database="unit"), client=client)
    client.unit.items.insert_many(
        [{"_id": i, "n": i, "s": "even" if i % 2 == 0 else "odd", "f": i / 2} for i in range(50)]
    )
    finds: list[dict[str, Any]] = []
    original = mongomock.collection.Collection.find

    def recording_find(self: Any, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        finds.append(filter)
        return original(self, filter, *args, **kwargs)

    monkeypatch.setattr(mongomock.collection.Collection, "find", recording_find)
    frame = connection.scan("items", filter={"n": {"$lt": 40}})
    predicate = (pl.col("n") >= 10) & (pl.col("s") == "even") & pl.col("f").cast(pl.Int64).is_in([5, 6])
    pushed = frame.filter(predicate).sort("n").collect()
    local = pl.DataFrame(connection.find("items", {"n": {"$lt": 40}})).filter(predicate).sort("n")
    assert pushed.equals(local)
    assert pushed["n"].to_list() == [10, 12]
    assert {"$and": [{"n": {"$lt": 40}}, {"$and": [{"n": {"$gte": 10}}, {"s": {"$eq": "even"}}]}]} in finds
