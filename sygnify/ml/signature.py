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
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from sygnify.errors import SchemaError

__all__ = ["Feature", "FeatureKind", "Signature", "table_to_matrix"]

FeatureKind = Literal["numeric", "string", "bool", "any"]


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
        return [feature.name for feature in self.features]

    def validate(self, table: pa.Table, *, model: str) -> pa.Table:
        """``table`` restricted to the features, in signature order; SchemaError names any misfit."""
        present = table.column_names
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
        if present == self.names:
            return table
        return table.select(self.names)

    def row_values(self, record: Mapping[str, Any] | Sequence[Any], *, model: str) -> list[Any]:
        """One record's values in signature order (the single-record fast path)."""
        names = self.names
        if isinstance(record, Mapping):
            try:
                values = [record[name] for name in names]
            except KeyError as exc:
                raise SchemaError(
                    f"model {model!r} needs feature {exc.args[0]!r}, which is missing from the record",
                    resource=str(exc.args[0]),
                ) from None
            if len(record) != len(names) and self.extra == "error":
                extra = next(key for key in record if key not in set(names))
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

    >>> table_to_matrix(pa.table({"a": [1, 2], "b": [0.5, 1.5]})).tolist()
    [[1.0, 0.5], [2.0, 1.5]]
    """
    if table.num_columns == 0:
        return np.empty((table.num_rows, 0), dtype=dtype)
    out = np.empty((table.num_rows, table.num_columns), dtype=dtype)
    for index, column in enumerate(table.columns):
        if pat.is_boolean(column.type) or pat.is_decimal(column.type):
            column = column.cast(pa.float64())
        out[:, index] = column.to_numpy()
    return out
