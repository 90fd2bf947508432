"""BSON documents ⇄ Arrow: schema inference, explicit type mapping, the inconsistency policy.

The mapping (see ``docs/connectors/mongodb.md``):

=====================  ==========================================================
BSON                   Arrow
=====================  ==========================================================
double                 ``float64`` (int and double in one field also → ``float64``)
int32 / int64          ``int64``
bool                   ``bool``
string                 ``string``
ObjectId               ``string`` (24 hex digits)
UUID                   ``string``
datetime               ``timestamp[ms, tz=UTC]``
Decimal128             ``decimal128(38, s)`` with ``s`` the largest scale seen
binary                 ``binary``
embedded document      ``struct`` (union of the fields seen)
array                  ``list<...>``
anything else, or a    ``string`` holding relaxed Extended JSON, marked with the
field whose types      field metadata ``{"mongo_type": "mixed"}``
conflict
=====================  ==========================================================

A value that does not fit its column (a later document with another type, or a field not
in the schema) is never dropped: with the policy ``"raise"`` it is a
:class:`~sygnify.errors.SchemaError` naming the document and field; with ``"rescue"`` the
whole top-level field goes, as Extended JSON, into the ``_rescued_data`` column::

    >>> from bson import ObjectId
    >>> docs = [{"_id": ObjectId("65f000000000000000000001"), "n": 1, "tags": ["a"]},
    ...         {"_id": ObjectId("65f000000000000000000002"), "n": 2.5, "tags": []}]
    >>> schema = infer_schema(docs)
    >>> [(f.name, str(f.type)) for f in schema]
    [('_id', 'string'), ('n', 'double'), ('tags', 'list<item: string>')]
    >>> batch = documents_to_batch([{"_id": "x", "n": "oops"}], schema, "rescue")
    >>> batch.column("n").to_pylist(), batch.column("_rescued_data").to_pylist()
    ([None], ['{"n": "oops"}'])
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import pyarrow as pa
from bson import ObjectId, json_util
from bson.binary import Binary
from bson.decimal128 import Decimal128

from sygnify.errors import SchemaError

__all__ = [
    "MIXED_METADATA",
    "RESCUE_COLUMN",
    "InconsistentPolicy",
    "documents_to_batch",
    "infer_schema",
    "to_documents",
    "with_rescue_column",
]

InconsistentPolicy: TypeAlias = Literal["raise", "rescue"]
RESCUE_COLUMN = "_rescued_data"
MIXED_METADATA = {b"mongo_type": b"mixed"}
_JSON_OPTIONS = json_util.RELAXED_JSON_OPTIONS


class _Mixed:
    """Inference marker: the field's values have conflicting types."""


_MIXED = _Mixed()


class _List:
    def __init__(self, item: _Node) -> None:
        self.item = item


_Node: TypeAlias = "pa.DataType | dict[str, _Node] | _List | _Mixed"


def _decimal_scale(value: decimal.Decimal) -> int:
    exponent = value.as_tuple().exponent
    return min(38, max(0, -exponent)) if isinstance(exponent, int) else 0


def _infer(value: Any) -> _Node:
    if value is None:
        return pa.null()
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, str | ObjectId | uuid.UUID):
        return pa.string()
    if isinstance(value, dt.datetime):
        return pa.timestamp("ms", tz="UTC")
    if isinstance(value, Decimal128 | decimal.Decimal):
        number = value.to_decimal() if isinstance(value, Decimal128) else value
        return pa.decimal128(38, _decimal_scale(number)) if number.is_finite() else _MIXED
    if isinstance(value, Binary) and value.subtype in (3, 4):
        return _MIXED
    if isinstance(value, bytes):
        return pa.binary()
    if isinstance(value, Mapping):
        return {str(key): _infer(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        item: _Node = pa.null()
        for element in value:
            item = _unify(item, _infer(element))
        return _List(item)
    return _MIXED


def _unify(a: _Node, b: _Node) -> _Node:
    if isinstance(a, _Mixed) or isinstance(b, _Mixed):
        return _MIXED
    if isinstance(a, pa.DataType) and pa.types.is_null(a):
        return b
    if isinstance(b, pa.DataType) and pa.types.is_null(b):
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        merged = dict(a)
        for key, node in b.items():
            merged[key] = _unify(merged[key], node) if key in merged else node
        return merged
    if isinstance(a, _List) and isinstance(b, _List):
        return _List(_unify(a.item, b.item))
    if isinstance(a, pa.DataType) and isinstance(b, pa.DataType):
        if a.equals(b):
            return a
        if {str(a), str(b)} == {"int64", "double"}:
            return pa.float64()
        if pa.types.is_decimal(a) and pa.types.is_decimal(b):
            return pa.decimal128(38, max(a.scale, b.scale))
    return _MIXED


def _to_field(name: str, node: _Node) -> pa.Field:
    if isinstance(node, _Mixed) or (isinstance(node, dict) and not node):
        return pa.field(name, pa.string(), metadata=MIXED_METADATA)
    if isinstance(node, dict):
        return pa.field(name, pa.struct([_to_field(key, child) for key, child in node.items()]))
    if isinstance(node, _List):
        return pa.field(name, pa.list_(_to_field("item", node.item)))
    return pa.field(name, node)


def infer_schema(documents: Iterable[Mapping[str, Any]]) -> pa.Schema:
    """The Arrow schema that fits every document (fields in order of first appearance)."""
    fields: dict[str, _Node] = {}
    for document in documents:
        for key, value in document.items():
            node = _infer(value)
            fields[key] = _unify(fields[key], node) if key in fields else node
    if "_id" in fields:
        fields = {"_id": fields.pop("_id"), **fields}
    return pa.schema([_to_field(name, node) for name, node in fields.items()])


def with_rescue_column(schema: pa.Schema) -> pa.Schema:
    """``schema`` plus the ``_rescued_data`` column the ``"rescue"`` policy fills."""
    if RESCUE_COLUMN in schema.names:
        return schema
    return schema.append(pa.field(RESCUE_COLUMN, pa.string()))


class _Mismatch(Exception):
    def __init__(self, path: str, expected: str, found: str) -> None:
        super().__init__(path)
        self.path, self.expected, self.found = path, expected, found


def to_json(value: Any) -> str:
    """A value as text: strings as they are, ObjectIds as hex, the rest as relaxed Extended JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, ObjectId | uuid.UUID):
        return str(value)
    return json_util.dumps(value, json_options=_JSON_OPTIONS)


def _bson_type(value: Any) -> str:
    return type(value).__name__


def _int_fits(value: int, arrow_type: pa.DataType) -> bool:
    bits: int = arrow_type.bit_width
    if pa.types.is_signed_integer(arrow_type):
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1)
    else:
        low, high = 0, 2**bits
    return bool(low <= value < high)


def _coerce(value: Any, field: pa.Field, path: str) -> Any:
    if value is None:
        return None
    if field.metadata and field.metadata.get(b"mongo_type") == b"mixed":
        return to_json(value)
    kind = field.type
    expected = str(kind)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if isinstance(value, str | ObjectId | uuid.UUID):
            return str(value)
    elif pa.types.is_boolean(kind):
        if isinstance(value, bool):
            return value
    elif pa.types.is_integer(kind):
        if isinstance(value, int) and not isinstance(value, bool) and _int_fits(value, kind):
            return value
    elif pa.types.is_floating(kind):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif pa.types.is_timestamp(kind):
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    elif pa.types.is_date(kind):
        if isinstance(value, dt.datetime):
            return value.date()
    elif pa.types.is_decimal(kind):
        number = value.to_decimal() if isinstance(value, Decimal128) else value
        if isinstance(number, int) and not isinstance(number, bool):
            number = decimal.Decimal(number)
        if (
            isinstance(number, decimal.Decimal)
            and number.is_finite()
            and _decimal_scale(number) <= kind.scale
        ):
            digits = len(number.quantize(decimal.Decimal(1).scaleb(-kind.scale)).as_tuple().digits)
            if digits <= kind.precision:
                return number
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        if isinstance(value, bytes):
            return bytes(value)
    elif pa.types.is_struct(kind):
        if isinstance(value, Mapping):
            names = {kind.field(i).name for i in range(kind.num_fields)}
            unknown = [key for key in value if key not in names]
            if unknown:
                raise _Mismatch(
                    f"{path}.{unknown[0]}", "no such field in the schema", _bson_type(value[unknown[0]])
                )
            return {
                child.name: _coerce(value.get(child.name), child, f"{path}.{child.name}")
                for child in (kind.field(i) for i in range(kind.num_fields))
            }
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if isinstance(value, list | tuple):
            return [_coerce(item, kind.value_field, f"{path}[{index}]") for index, item in enumerate(value)]
    elif pa.types.is_null(kind):
        expected = "null (the field was always null in the sampled documents)"
    raise _Mismatch(path, expected, _bson_type(value))


def documents_to_batch(
    documents: Sequence[Mapping[str, Any]], schema: pa.Schema, policy: InconsistentPolicy
) -> pa.RecordBatch:
    """Convert documents to one record batch of ``schema``, applying the inconsistency policy.

    With ``"rescue"`` the result has the ``_rescued_data`` column appended (see
    :func:`with_rescue_column`).
    """
    rescue = policy == "rescue"
    out_schema = with_rescue_column(schema) if rescue else schema
    fields = [field for field in schema if field.name != RESCUE_COLUMN]
    names = {field.name for field in fields}
    columns: list[list[Any]] = [[] for _ in fields]
    rescued_column: list[str | None] = []
    for document in documents:
        rescued: dict[str, Any] = {}
        for index, field in enumerate(fields):
            value = document.get(field.name)
            try:
                columns[index].append(_coerce(value, field, field.name))
            except _Mismatch as mismatch:
                if not rescue:
                    raise _schema_error(document, mismatch) from None
                columns[index].append(None)
                rescued[field.name] = value
        for key in document:
            if key not in names:
                if not rescue:
                    raise _schema_error(
                        document, _Mismatch(key, "no such field in the schema", _bson_type(document[key]))
                    )
                rescued[key] = document[key]
        if rescue:
            rescued_column.append(json_util.dumps(rescued, json_options=_JSON_OPTIONS) if rescued else None)
    try:
        arrays = [pa.array(column, type=field.type) for column, field in zip(columns, fields)]
        if rescue:
            arrays.append(pa.array(rescued_column, type=pa.string()))
        return pa.RecordBatch.from_arrays(arrays, schema=out_schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(f"documents do not fit the schema: {exc}") from exc


def _schema_error(document: Mapping[str, Any], mismatch: _Mismatch) -> SchemaError:
    identity = to_json(document.get("_id", "(no _id)"))
    return SchemaError(
        f"document _id={identity}: field {mismatch.path!r} expected {mismatch.expected}, found "
        f"{mismatch.found}; pass schema= with a type that fits, raise sample_size so inference sees it, "
        "or use on_inconsistent='rescue' to keep such values in the _rescued_data column",
        resource=mismatch.path,
    )


# -- Arrow → BSON --------------------------------------------------------------------------


def _needs_conversion(kind: pa.DataType) -> bool:
    if pa.types.is_decimal(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
        return True
    if pa.types.is_struct(kind):
        return any(_needs_conversion(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _needs_conversion(kind.value_type)
    return bool(pa.types.is_duration(kind))


def _to_bson(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return Decimal128(value)
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value // dt.timedelta(milliseconds=1)
    if isinstance(value, dict):
        return {key: _to_bson(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_bson(item) for item in value]
    return value


def to_documents(batch: pa.RecordBatch, object_id_fields: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows of ``batch`` as BSON-ready documents.

    Decimals become Decimal128, dates midnight UTC datetimes, times ISO strings, durations
    milliseconds; the ``object_id_fields`` (hex strings) become ObjectIds. Nulls are kept.
    """
    missing = [name for name in object_id_fields if name not in batch.schema.names]
    if missing:
        raise SchemaError(f"object_id_fields not in the data: {', '.join(missing)}", resource=missing[0])
    documents: list[dict[str, Any]] = batch.to_pylist()
    converted = [field.name for field in batch.schema if _needs_conversion(field.type)]
    for document in documents:
        for name in converted:
            document[name] = _to_bson(document[name])
        for name in object_id_fields:
            value = document[name]
            if value is not None and not isinstance(value, ObjectId):
                if not (isinstance(value, str) and ObjectId.is_valid(value)):
                    raise SchemaError(
                        f"field {name!r} is listed in object_id_fields but {value!r} is not a 24-digit "
                        "hex ObjectId",
                        resource=name,
                    )
                document[name] = ObjectId(value)
    return documents
