"""Arrow in and out of :class:`~sygnify.ml.RealTimeML`: inputs as tables, answers as tables.

The answer to a batch wraps the backend's own output buffers wherever Arrow allows it:
predictions and probabilities (kept in the model's dtype) are views, and the constant
``model``/``model_version`` columns are dictionary arrays over one shared buffer of zero
indices, so the cost of an answer hardly grows with its rows::

    >>> import numpy as np
    >>> from sygnify.ml.backends import BackendOutput
    >>> answers = Answers()
    >>> out = BackendOutput(np.array([1, 0]), np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32))
    >>> table = answers.table(out, "churn", "v2", latency_s=0.001, rows=2)
    >>> table.column_names
    ['prediction', 'probabilities', 'model', 'model_version', 'latency_ms']
    >>> table.column("model_version").to_pylist(), str(table.schema.field("probabilities").type)
    (['v2', 'v2'], 'fixed_size_list<item: float>[2]')
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from sygnify.errors import ConfigurationError, ModelError
from sygnify.io.arrow import to_arrow_table
from sygnify.ml.backends import BackendOutput

__all__ = ["Answers", "as_arrow_array", "to_table"]

_CONSTANT_TYPE = pa.dictionary(pa.int8(), pa.string())


def to_table(data: Any) -> tuple[pa.Table, bool]:
    """Input as an Arrow table, and whether it came as Polars (to answer in kind).

    >>> to_table([{"x": 1.0}, {"x": 2.0}])[0].num_rows
    2
    """
    if isinstance(data, Mapping):
        values = list(data.values())
        if values and all(isinstance(v, list | tuple | np.ndarray | pa.Array) for v in values):
            return pa.table(dict(data)), False
        return pa.Table.from_pylist([dict(data)]), False
    if isinstance(data, list):
        if data and not all(isinstance(row, Mapping) for row in data):
            raise ConfigurationError("a list input must be a list of records (dicts)")
        return pa.Table.from_pylist(data), False
    return to_arrow_table(data), isinstance(data, pl.DataFrame | pl.LazyFrame)


def as_arrow_array(values: Any) -> pa.Array:
    """An Arrow array over ``values`` (numeric NumPy arrays are wrapped, not copied).

    >>> as_arrow_array(np.array([1.5, 2.5])).type
    DataType(double)
    """
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    array = np.asarray(values)
    if array.dtype == object:
        return pa.array(array.tolist())
    if array.ndim == 1 and not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    return pa.array(array)


def _probabilities(proba: Any, rows: int) -> pa.Array:
    array = np.asarray(proba)
    if array.dtype == object:
        array = array.astype(np.float64)
    if array.ndim == 1:
        array = array.reshape(rows, -1) if rows else array.reshape(0, 1)
    array = np.ascontiguousarray(array)  # a no-op for a model's own (rows, classes) output
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])


@lru_cache(maxsize=1024)
def _dictionary(value: str) -> pa.Array:
    return pa.array([value], pa.string())


class Answers:
    """Builds answer tables; holds one growing, read-only buffer of zero indices (thread-safe)."""

    def __init__(self) -> None:
        self._zeros = pa.py_buffer(np.zeros(0, dtype=np.int8))
        self._lock = threading.Lock()

    def constant(self, value: str, rows: int) -> pa.DictionaryArray:
        """A string column of ``rows`` copies of ``value`` that costs no per-row work.

        >>> Answers().constant("v1", 3).to_pylist()
        ['v1', 'v1', 'v1']
        """
        zeros = self._zeros
        if zeros.size < rows:
            with self._lock:
                if self._zeros.size < rows:
                    # calloc'd: untouched pages cost nothing; doubled so growth is rare
                    self._zeros = pa.py_buffer(np.zeros(max(rows, 2 * self._zeros.size), dtype=np.int8))
                zeros = self._zeros
        return pa.DictionaryArray.from_buffers(
            _CONSTANT_TYPE, rows, [None, zeros], dictionary=_dictionary(value)
        )

    def table(self, out: BackendOutput, name: str, version: str, *, latency_s: float, rows: int) -> pa.Table:
        """The answer: ``prediction`` (``probabilities``), ``model``, ``model_version``, ``latency_ms``."""
        predictions = as_arrow_array(out.predictions)
        if len(predictions) != rows:
            raise ModelError(
                f"model {name!r} returned {len(predictions)} predictions for {rows} rows", resource=name
            )
        arrays: list[Any] = [predictions]
        names = ["prediction"]
        if out.probabilities is not None:
            arrays.append(_probabilities(out.probabilities, rows))
            names.append("probabilities")
        arrays += [
            self.constant(name, rows),
            self.constant(version, rows),
            pa.array(np.full(rows, latency_s * 1000.0)),
        ]
        names += ["model", "model_version", "latency_ms"]
        return pa.Table.from_arrays(arrays, names=names)
