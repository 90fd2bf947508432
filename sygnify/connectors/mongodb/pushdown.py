"""Polars predicates as MongoDB filters, so ``scan().filter(...)`` is evaluated by the server.

:func:`predicate_to_filter` translates what has an exact BSON counterpart: comparisons of a
column (or a struct field) with a literal, ``is_in``, ``is_between``, ``is_null`` /
``is_not_null``, a boolean column, ``&`` and ``|``. The filter it returns keeps *at least*
every document the predicate keeps; the connector still applies the whole predicate to the
batches, so a part left untranslated (or translated loosely) never changes the result.
Under ``&`` the translatable side is pushed alone; under ``|`` both sides must translate.

Where BSON and Polars disagree the translation stays on the safe side:

* string columns: only ``==`` and ``is_in`` (ranges and ``!=`` follow the collection's
  collation and BSON type order on the server); a 24-digit hex literal also matches the
  ObjectId it spells, as ``_id`` columns hold ObjectIds shown as hex;
* float columns: ``>``/``>=`` also fetch NaN (Polars orders NaN above every number,
  MongoDB below); NaN literals are not pushed;
* datetimes: only literals in whole milliseconds (BSON's precision) with a time zone
  exactly when the column has one;
* ``is_null`` is not pushed with ``on_inconsistent="rescue"`` (a rescued value is null in
  its column but not on the server); list, decimal, binary and mixed (Extended JSON)
  columns take part only in ``is_null``/``is_not_null`` where that is exact.

>>> import polars as pl, pyarrow as pa
>>> schema = pa.schema([("n", pa.int64()), ("status", pa.string())])
>>> predicate_to_filter((pl.col("n") > 2) & pl.col("status").is_in(["paid", "open"]), schema)
{'$and': [{'n': {'$gt': 2}}, {'status': {'$in': ['paid', 'open']}}]}
>>> predicate_to_filter(pl.col("status").str.contains("p"), schema) is None
True
>>> merge_filters({"tenant": 7}, {"n": {"$gt": 2}})
{'$and': [{'tenant': 7}, {'n': {'$gt': 2}}]}
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.ipc
from bson import ObjectId

from sygnify.connectors.mongodb.schema import MIXED_METADATA, RESCUE_COLUMN, InconsistentPolicy

__all__ = ["merge_filters", "predicate_to_filter"]

Filter = dict[str, Any]
_COMPARE = {"Eq": "$eq", "NotEq": "$ne", "Lt": "$lt", "LtEq": "$lte", "Gt": "$gt", "GtEq": "$gte"}
_FLIPPED = {"Eq": "Eq", "NotEq": "NotEq", "Lt": "Gt", "LtEq": "GtEq", "Gt": "Lt", "GtEq": "LtEq"}
_INT_LIMITS = (-(2**63), 2**63 - 1)
_MS_PER = {
    "Milliseconds": 1,
    "Microseconds": 1_000,
    "Nanoseconds": 1_000_000,
    "ms": 1,
    "us": 1_000,
    "ns": 1_000_000,
}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class _Untranslatable(Exception):
    """This part of the predicate stays in Polars."""


def merge_filters(*filters: Mapping[str, Any] | None) -> Filter | None:
    """The AND of the non-empty filters (None when there is none, the filter itself when one)."""
    present = [dict(f) for f in filters if f]
    if not present:
        return None
    return present[0] if len(present) == 1 else {"$and": present}


def predicate_to_filter(
    predicate: pl.Expr | None, schema: pa.Schema, *, policy: InconsistentPolicy = "raise"
) -> Filter | None:
    """A MongoDB filter keeping every document ``predicate`` keeps, or None if nothing translates.

    ``schema`` is the scan's Arrow schema (the column types decide what is exact) and
    ``policy`` its ``on_inconsistent`` policy.
    """
    if predicate is None:
        return None
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:
        # The JSON form is not a stable Polars API: if it cannot be read, filter locally only.
        return None
    return _Translator(schema, policy).optional(tree)


class _Translator:
    def __init__(self, schema: pa.Schema, policy: InconsistentPolicy) -> None:
        self.schema = schema
        self.policy = policy

    def optional(self, node: Any) -> Filter | None:
        try:
            return self.translate(node)
        except (_Untranslatable, KeyError, TypeError, ValueError, IndexError, AttributeError):
            return None

    def translate(self, node: Any) -> Filter:
        if not isinstance(node, Mapping) or len(node) != 1:
            raise _Untranslatable
        kind, body = next(iter(node.items()))
        if kind == "BinaryExpr":
            return self.binary(body["left"], body["op"], body["right"])
        if kind == "Function":
            return self.function(body["function"], body["input"])
        if kind == "Column":
            path, field = self.field(node)
            if not pa.types.is_boolean(field.type):
                raise _Untranslatable
            return {path: {"$eq": True}}
        raise _Untranslatable

    def binary(self, left: Any, op: str, right: Any) -> Filter:
        if op in ("And", "LogicalAnd"):
            parts = [part for part in (self.optional(left), self.optional(right)) if part is not None]
            if not parts:
                raise _Untranslatable
            return parts[0] if len(parts) == 1 else {"$and": parts}
        if op in ("Or", "LogicalOr"):
            return {"$or": [self.translate(left), self.translate(right)]}
        if op not in _COMPARE:
            raise _Untranslatable
        if _is_literal(left) and not _is_literal(right):
            left, right, op = right, left, _FLIPPED[op]
        path, field = self.field(left)
        return self.compare(path, field, op, _scalar(right))

    def function(self, function: Any, inputs: list[Any]) -> Filter:
        boolean = function.get("Boolean") if isinstance(function, Mapping) else None
        if boolean in ("IsNull", "IsNotNull"):
            path, field = self.field(inputs[0])
            if boolean == "IsNull":
                if self.policy == "rescue":
                    raise _Untranslatable
                return {path: {"$eq": None}}
            # {$ne: null} drops arrays holding a null, which Polars keeps in list and JSON columns.
            if _is_list(field.type) or _is_mixed(field):
                raise _Untranslatable
            return {path: {"$ne": None}}
        if boolean == "Not":
            path, field = self.field(inputs[0])
            if not pa.types.is_boolean(field.type):
                raise _Untranslatable
            return {path: {"$eq": False}}
        if isinstance(boolean, Mapping) and "IsIn" in boolean:
            path, field = self.field(inputs[0])
            values = _list_literal(inputs[1])
            if not boolean["IsIn"].get("nulls_equal", False):
                values = [value for value in values if value is not None]
            bson_values: list[Any] = []
            for value in values:
                bson_values += [None] if value is None else self.values(field, value, "Eq")
            return {path: {"$in": bson_values}}
        if isinstance(boolean, Mapping) and "IsBetween" in boolean:
            closed = boolean["IsBetween"]["closed"]
            low_op = "GtEq" if closed in ("Both", "Left") else "Gt"
            high_op = "LtEq" if closed in ("Both", "Right") else "Lt"
            path, field = self.field(inputs[0])
            low = self.compare(path, field, low_op, _scalar(inputs[1]))
            high = self.compare(path, field, high_op, _scalar(inputs[2]))
            return {"$and": [low, high]}
        raise _Untranslatable

    def field(self, node: Any) -> tuple[str, pa.Field]:
        """The dotted MongoDB path and Arrow field a column or struct-field expression reads."""
        if not isinstance(node, Mapping):
            raise _Untranslatable
        if "Column" in node:
            name = node["Column"]
            if not isinstance(name, str) or name == RESCUE_COLUMN or name not in self.schema.names:
                raise _Untranslatable
            return _checked(name), self.schema.field(name)
        function = node.get("Function")
        if isinstance(function, Mapping):
            struct = function["function"].get("StructExpr")
            if isinstance(struct, Mapping) and "FieldByName" in struct:
                path, parent = self.field(function["input"][0])
                name = struct["FieldByName"]
                if not pa.types.is_struct(parent.type) or parent.type.get_field_index(name) < 0:
                    raise _Untranslatable
                return f"{path}.{_checked(name)}", parent.type.field(name)
        raise _Untranslatable

    def compare(self, path: str, field: pa.Field, op: str, literal: tuple[str, Any]) -> Filter:
        values = self.values(field, literal, op)
        if len(values) > 1:  # a hex string that may also be stored as an ObjectId
            return {path: {"$in": values}}
        condition: Filter = {path: {_COMPARE[op]: values[0]}}
        if op in ("Gt", "GtEq") and pa.types.is_floating(field.type):
            return {"$or": [condition, {path: {"$eq": math.nan}}]}
        return condition

    def values(self, field: pa.Field, literal: tuple[str, Any], op: str) -> list[Any]:
        """The BSON value(s) that compare like ``literal`` does with the column, or untranslatable."""
        kind, value = literal
        arrow = field.type
        if _is_mixed(field):
            raise _Untranslatable
        if pa.types.is_integer(arrow) or pa.types.is_floating(arrow):
            if kind == "int" and _INT_LIMITS[0] <= value <= _INT_LIMITS[1]:
                return [value]
            if kind == "float" and not math.isnan(value):
                return [value]
        elif pa.types.is_boolean(arrow):
            if kind == "bool" and op in ("Eq", "NotEq"):
                return [value]
        elif pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
            if kind == "str" and op == "Eq":
                return [value, ObjectId(value)] if ObjectId.is_valid(value) else [value]
        elif pa.types.is_timestamp(arrow) and kind == "datetime":
            epoch, unit, tz = value
            if unit in ("s", "Seconds"):
                epoch, unit = epoch * 1000, "ms"
            if (arrow.tz is None) == (tz is None) and epoch % _MS_PER[unit] == 0:
                return [_EPOCH + dt.timedelta(milliseconds=epoch // _MS_PER[unit])]
        raise _Untranslatable


def _checked(name: str) -> str:
    # A dot would address a nested path and a leading $ an operator: such names stay in Polars.
    if not name or "." in name or name.startswith("$") or "\x00" in name:
        raise _Untranslatable
    return name


def _is_mixed(field: pa.Field) -> bool:
    return bool(field.metadata) and field.metadata.get(b"mongo_type") == MIXED_METADATA[b"mongo_type"]


def _is_list(arrow: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(arrow) or pa.types.is_large_list(arrow) or pa.types.is_fixed_size_list(arrow)
    )


def _is_literal(node: Any) -> bool:
    return isinstance(node, Mapping) and "Literal" in node


def _scalar(node: Any) -> tuple[str, Any]:
    """A literal as ``(kind, value)``: int, float, bool, str or datetime ``(epoch, unit, tz)``."""
    literal = node["Literal"]
    # "Dyn" literals are Python numbers not yet given a type (the optimizer makes them "Scalar").
    scalar = literal["Scalar"] if "Scalar" in literal else literal["Dyn"]
    ((dtype, value),) = scalar.items()
    if value is None:  # a null literal, or NaN (JSON has no NaN)
        raise _Untranslatable
    if dtype.startswith(("Int", "UInt")) and isinstance(value, int) and not isinstance(value, bool):
        return "int", value
    if dtype.startswith("Float") and isinstance(value, int | float) and not isinstance(value, bool):
        return "float", float(value)
    if dtype == "Boolean" and isinstance(value, bool):
        return "bool", value
    if dtype == "String" and isinstance(value, str):
        return "str", value
    if dtype == "Datetime" and isinstance(value, list) and isinstance(value[0], int):
        tz = value[2]["inner"] if isinstance(value[2], Mapping) else value[2]
        return "datetime", (value[0], value[1], tz)
    raise _Untranslatable


def _list_literal(node: Any) -> list[tuple[str, Any] | None]:
    """The values of an ``is_in`` list literal (an Arrow IPC stream in the JSON form)."""
    payload = node["Literal"]["Scalar"]["List"]
    table = pa.ipc.open_stream(bytes(payload)).read_all()
    array = table.column(0).combine_chunks()
    arrow = array.type
    if pa.types.is_timestamp(arrow):
        return [
            None if epoch is None else ("datetime", (epoch, arrow.unit, arrow.tz))
            for epoch in array.cast(pa.int64()).to_pylist()
        ]
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow):
        kind = "str"
    elif pa.types.is_boolean(arrow):
        kind = "bool"
    elif pa.types.is_integer(arrow):
        kind = "int"
    elif pa.types.is_floating(arrow):
        return [None if v is None else ("float", v) for v in array.to_pylist()]
    else:
        raise _Untranslatable
    return [None if v is None else (kind, v) for v in array.to_pylist()]
