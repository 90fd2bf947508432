"""Polars-style options of ``scan()`` over file datasets: ``schema`` and ``include_file_paths``.

``schema`` reads the files with the given column types (a pyarrow or Polars schema, or a
mapping of column to type): CSV and JSON lines are parsed with them, Parquet and Arrow IPC
columns are cast to them; the frame has the schema's columns, in its order.
``include_file_paths`` adds a column with the path or URL of the file each row came from.

>>> import polars as pl
>>> options = ScanOptions.of(schema={"x": pl.Float64}, include_file_paths="file")
>>> sorted(options.reader_options("csv"))
['include_file_paths', 'schema_overrides']
>>> options.apply(pl.LazyFrame({"x": [1], "file": ["a.csv"]}), "parquet").collect().to_dicts()
[{'x': 1.0, 'file': 'a.csv'}]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from sygnify.errors import ConfigurationError, SchemaError

__all__ = ["ScanOptions"]


def _polars_schema(schema: Any) -> pl.Schema:
    if isinstance(schema, pa.Schema):
        frame = pl.from_arrow(schema.empty_table())
        assert isinstance(frame, pl.DataFrame)
        return frame.schema
    if isinstance(schema, pl.Schema):
        return schema
    if isinstance(schema, Mapping):
        try:
            return pl.Schema(
                {
                    name: _polars_schema(pa.schema([pa.field(name, kind)]))[name]
                    if isinstance(kind, pa.DataType)
                    else kind
                    for name, kind in schema.items()
                }
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"schema has a type Polars does not know: {exc}") from exc
    raise ConfigurationError(
        "schema must be a pyarrow or Polars schema or a mapping of column to type, "
        f"got {type(schema).__name__}"
    )


@dataclass(frozen=True)
class ScanOptions:
    """``schema`` and ``include_file_paths`` of a ``scan()``, checked (see the module docstring)."""

    schema: pl.Schema | None = None
    include_file_paths: str | None = None

    @classmethod
    def of(cls, *, schema: Any = None, include_file_paths: str | None = None) -> ScanOptions:
        """Validate the options as the user passed them."""
        if include_file_paths is not None and (
            not isinstance(include_file_paths, str) or not include_file_paths
        ):
            raise ConfigurationError(f"include_file_paths must be a column name, got {include_file_paths!r}")
        return cls(None if schema is None else _polars_schema(schema), include_file_paths)

    @property
    def given(self) -> bool:
        return self.schema is not None or self.include_file_paths is not None

    def reader_options(self, fmt: str) -> dict[str, Any]:
        """Keyword arguments for the Polars ``scan_*`` reader of ``fmt``."""
        options: dict[str, Any] = {}
        if self.include_file_paths is not None:
            options["include_file_paths"] = self.include_file_paths
        if self.schema is not None and fmt in ("csv", "json"):
            # Parsed with the given types; columns the schema leaves out keep their inferred type
            # until apply() drops them.
            options["schema_overrides"] = self.schema
        return options

    def apply(self, frame: pl.LazyFrame, fmt: str, resource: str | None = None) -> pl.LazyFrame:
        """The frame with the schema's columns and types (plus the file path column)."""
        if self.schema is None:
            return frame
        available = frame.collect_schema()
        missing = [name for name in self.schema if name not in available]
        if missing:
            raise SchemaError(
                f"schema names columns the data lacks: {', '.join(missing)} (it has {', '.join(available)})",
                resource=resource,
            )
        columns = [pl.col(name).cast(kind) for name, kind in self.schema.items()]
        if self.include_file_paths is not None and self.include_file_paths not in self.schema:
            columns.append(pl.col(self.include_file_paths))
        return frame.select(columns)
