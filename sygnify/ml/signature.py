"""Model input signatures: the features a model expects, checked before every prediction.

A signature names each feature and the kind of value it takes. Data is checked against it
before it reaches a model, so a missing, unexpected or wrongly typed column fails with a
:class:`~sygnify.errors.SchemaError` that names the feature instead of a backend traceback::

    >>> import pyarrow as pa
    >>> sig = Signature.of(["age", "income"])
    >>> sig.validate(pa.table({"income": [1.0], "age": [30]}), model="risk").column_names
    ['age', 'income']
    >>> try:
    ...     sig.validate(pa.table({"age": [30]}), model="risk")
    ... except SchemaError as exc:
    ...     print(exc.resource, "-", exc)
    income - model 'risk' needs feature 'income', which is missing from the input (got: age)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from sygnify.errors import SchemaError

__all__ = ["Feature", "FeatureKind", "Signature", "table_to_matrix", "tensor_width"]

FeatureKind = Literal["numeric", "string", "bool", "any"]

#: distinct input schemas remembered per signature (validation is cached per schema)
_PLAN_CACHE_SIZE = 64


def _list_type(dtype: pa.DataType) -> pa.DataType:
    """The fixed-size-list type behind ``dtype`` (a fixed-shape tensor is stored as one)."""
    if isinstance(dtype, pa.ExtensionType):
        return dtype.storage_type
    return dtype


def tensor_width(dtype: pa.DataType) -> int | None:
    """The width of a numeric fixed-size-list (or 1-D fixed-shape tensor) column, else ``None``.

    Such a column holds a whole feature matrix (one row per record) and is read without a copy.

    >>> tensor_width(pa.list_(pa.float32(), 4)), tensor_width(pa.float32())
    (4, None)
    """
    storage = _list_type(dtype)
    if not pat.is_fixed_size_list(storage):
        return None
    value_type = storage.value_type
    if not (pat.is_floating(value_type) or pat.is_integer(value_type)):
        return None
    if isinstance(dtype, pa.ExtensionType) and len(getattr(dtype, "shape", (0,))) != 1:
        return None
    return int(storage.list_size)


def _kind_accepts(kind: FeatureKind, dtype: pa.DataType) -> bool:
    if kind == "any" or pat.is_null(dtype):
        return True
    if kind == "numeric":
        return bool(
            pat.is_integer(dtype) or pat.is_floating(dtype) or pat.is_boolean(dtype) or pat.is_decimal(dtype)
        )
    if kind == "string":
        return bool(pat.is_string(dtype) or pat.is_large_string(dtype) or pat.is_dictionary(dtype))
    return bool(pat.is_boolean(dtype))


@dataclass(frozen=True)
class Feature:
    """One model input: its column name and the kind of value it takes."""

    name: str
    kind: FeatureKind = "numeric"


@dataclass(frozen=True)
class Signature:
    """The ordered features a model takes.

    ``extra`` says what to do with input columns the model does not use: ``"error"``
    (default, catches typos and wrong tables) or ``"ignore"`` (drop them).
    """

    features: tuple[Feature, ...]
    extra: Literal["error", "ignore"] = "error"

    @classmethod
    def of(
        cls,
        features: Iterable[str | Feature] | Mapping[str, FeatureKind],
        *,
        extra: Literal["error", "ignore"] = "error",
    ) -> Signature:
        """A signature from names (numeric by default), ``Feature`` objects or ``{name: kind}``."""
        if isinstance(features, Mapping):
            return cls(tuple(Feature(name, kind) for name, kind in features.items()), extra)
        return cls(tuple(f if isinstance(f, Feature) else Feature(str(f)) for f in features), extra)

    @property
    def names(self) -> list[str]:
        return list(self.name_tuple)

    @cached_property
    def name_tuple(self) -> tuple[str, ...]:
        """The feature names in order (computed once: the single-record path reads it per call)."""
        return tuple(feature.name for feature in self.features)

    @cached_property
    def _name_set(self) -> frozenset[str]:
        return frozenset(self.name_tuple)

    @cached_property
    def _plans(self) -> dict[pa.Schema, bool]:
        return {}

    def validate(self, table: pa.Table, *, model: str) -> pa.Table:
        """``table`` restricted to the features, in signature order; SchemaError names any misfit.

        The outcome depends only on the input schema, so it is checked once per distinct
        schema and remembered. A single fixed-size-list (tensor) column as wide as the
        signature stands for all the features, in order, and is passed through untouched.
        """
        plans = self._plans
        schema = table.schema
        select = plans.get(schema)
        if select is None:
            select = self._check(table, model=model)
            if len(plans) >= _PLAN_CACHE_SIZE:
                plans.clear()
            plans[schema] = select
        return table.select(self.name_tuple) if select else table

    def _check(self, table: pa.Table, *, model: str) -> bool:
        """Raise SchemaError for a misfit; else whether columns must be selected/reordered."""
        present = table.column_names
        if len(present) == 1 and present[0] not in self._name_set:
            width = tensor_width(table.schema.field(0).type)
            if width is not None:
                if width != len(self.features):
                    raise SchemaError(
                        f"model {model!r} takes {len(self.features)} features "
                        f"({', '.join(self.name_tuple)}), but tensor column {present[0]!r} has width {width}",
                        resource=present[0],
                    )
                return False
        present_set = set(present)
        for feature in self.features:
            if feature.name not in present_set:
                raise SchemaError(
                    f"model {model!r} needs feature {feature.name!r}, which is missing from the input "
                    f"(got: {', '.join(present) or 'no columns'})",
                    resource=feature.name,
                )
            dtype = table.schema.field(feature.name).type
            if not _kind_accepts(feature.kind, dtype):
                raise SchemaError(
                    f"model {model!r} needs feature {feature.name!r} to be {feature.kind}, "
                    f"but the input column has type {dtype}",
                    resource=feature.name,
                )
        if self.extra == "error":
            wanted = set(self.names)
            extras = [name for name in present if name not in wanted]
            if extras:
                raise SchemaError(
                    f"model {model!r} does not take feature {extras[0]!r} "
                    f"(unexpected columns: {', '.join(extras)}); drop them or register the model "
                    "with extra_features='ignore'",
                    resource=extras[0],
                )
        return list(present) != self.names

    def row_values(self, record: Mapping[str, Any] | Sequence[Any], *, model: str) -> list[Any]:
        """One record's values in signature order (the single-record fast path)."""
        names = self.name_tuple
        if isinstance(record, Mapping):
            try:
                values = [record[name] for name in names]
            except KeyError as exc:
                raise SchemaError(
                    f"model {model!r} needs feature {exc.args[0]!r}, which is missing from the record",
                    resource=str(exc.args[0]),
                ) from None
            if len(record) != len(names) and self.extra == "error":
                extra = next(key for key in record if key not in self._name_set)
                raise SchemaError(
                    f"model {model!r} does not take feature {extra!r}; drop it or register the model "
                    "with extra_features='ignore'",
                    resource=str(extra),
                )
            return values
        if len(record) != len(names):
            raise SchemaError(
                f"model {model!r} takes {len(names)} features ({', '.join(names)}), got {len(record)} values",
                resource=model,
            )
        return list(record)

    def bad_value(self, values: Sequence[Any], *, model: str) -> SchemaError:
        """The error for a record whose values do not convert to numbers (names the feature)."""
        for feature, value in zip(self.features, values):
            if feature.kind == "numeric" and not isinstance(value, int | float | np.number | bool):
                return SchemaError(
                    f"model {model!r} needs feature {feature.name!r} to be numeric, "
                    f"got {type(value).__name__}",
                    resource=feature.name,
                )
        return SchemaError(f"model {model!r} could not convert the record to numbers", resource=model)


def table_to_matrix(table: pa.Table, dtype: Any = np.float32) -> np.ndarray[Any, Any]:
    """A 2-D ``(rows, features)`` array of ``dtype`` from the table's columns (in order).

    Columns are written straight into one preallocated array, chunk by chunk. A table of one
    tensor column (see :func:`tensor_width`) of ``dtype`` without nulls is viewed, not copied.

    >>> table_to_matrix(pa.table({"a": [1, 2], "b": [0.5, 1.5]})).tolist()
    [[1.0, 0.5], [2.0, 1.5]]
    >>> flat = pa.array(np.arange(4, dtype=np.float32))
    >>> table_to_matrix(pa.table({"x": pa.FixedSizeListArray.from_arrays(flat, 2)})).tolist()
    [[0.0, 1.0], [2.0, 3.0]]
    """
    if table.num_columns == 1:
        width = tensor_width(table.schema.field(0).type)
        if width is not None:
            return _tensor_matrix(table.column(0), table.column_names[0], width, dtype)
    out = np.empty((table.num_rows, table.num_columns), dtype=dtype)
    for index, column in enumerate(table.columns):
        if pat.is_boolean(column.type) or pat.is_decimal(column.type):
            column = column.cast(pa.float64())
        row = 0
        for chunk in column.chunks:
            end = row + len(chunk)
            out[row:end, index] = chunk.to_numpy(zero_copy_only=False)
            row = end
    return out


def _tensor_matrix(column: pa.ChunkedArray, name: str, width: int, dtype: Any) -> np.ndarray[Any, Any]:
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    if array.null_count:
        raise SchemaError(
            f"tensor column {name!r} has {array.null_count} null rows; fill or drop them before predicting",
            resource=name,
        )
    flat: np.ndarray[Any, Any] = array.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(array), width).astype(dtype, copy=False)
