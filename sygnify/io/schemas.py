"""Schema drift across the files of one dataset: detect it, or unify it when asked.

Every file of a dataset (a directory, a prefix or a glob) must have the schema of the first
one, unless the caller says how to unify them. :func:`reconcile_schemas` is the one rule set,
shared by the local and the object-store connectors (``stream``, ``scan`` and ``query``):

* ``"error"`` (the default): a column added, removed or retyped in a later file is a
  :class:`~sygnify.errors.SchemaError` naming the file, the column (and both types);
* ``"union_by_name"``: columns are matched by name and the dataset has the union of them
  (a file without a column reads it as null); a column's types must agree or promote safely
  (``int32`` and ``int64`` read as ``int64``, ``int64`` and ``double`` as ``double``);
* ``"allow_missing_columns"`` (Polars' name): files may lack columns of the first file's
  schema (read as null), but a column the first file lacks, or a retyped one, is an error.

The schemas come from what the readers open anyway (Parquet footers, the first block of a
CSV or JSON file): :func:`dataset_schema` reads each fragment's ``physical_schema``::

    >>> import pyarrow as pa
    >>> first, later = pa.schema([("a", pa.int32())]), pa.schema([("a", pa.int64()), ("b", pa.string())])
    >>> reconcile_schemas([("x.parquet", first), ("y.parquet", later)], "union_by_name")
    a: int64
    b: string
    >>> reconcile_schemas([("x.parquet", first), ("y.parquet", later)])
    Traceback (most recent call last):
    ...
    sygnify.errors.SchemaError: y.parquet has column 'a' as int64, but x.parquet ... has it as int32...
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeAlias

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from sygnify.errors import ConfigurationError, SchemaError
from sygnify.io.formats import FileFormat, polars_scan

__all__ = [
    "SchemaDrift",
    "check_columns",
    "dataset_schema",
    "drift_mode",
    "polars_drift_scan",
    "reconcile_schemas",
]

SchemaDrift: TypeAlias = Literal["error", "union_by_name", "allow_missing_columns"]

_HINT = (
    "; pass union_by_name=True to read the union of the columns (missing ones as null), "
    "or allow_missing_columns=True to let files lack columns of the first file"
)
#: How many footers are read at once (object stores: one or two ranged GETs each).
_SCHEMA_READERS = 8


def drift_mode(*, union_by_name: bool = False, allow_missing_columns: bool = False) -> SchemaDrift:
    """The :data:`SchemaDrift` mode that the two reader options name (at most one of them).

    >>> drift_mode(), drift_mode(union_by_name=True)
    ('error', 'union_by_name')
    """
    if union_by_name and allow_missing_columns:
        raise ConfigurationError(
            "union_by_name=True already allows missing columns; pass one of union_by_name and "
            "allow_missing_columns, not both"
        )
    if union_by_name:
        return "union_by_name"
    return "allow_missing_columns" if allow_missing_columns else "error"


def reconcile_schemas(
    schemas: Sequence[tuple[str, pa.Schema]], mode: SchemaDrift = "error", *, resource: str | None = None
) -> pa.Schema:
    """The one schema that the files ``schemas`` (``(file, schema)`` pairs) read as under ``mode``.

    Drift that ``mode`` does not allow is a :class:`~sygnify.errors.SchemaError` naming the
    file and the column (see the module docstring for the rules).
    """
    first_name, first = schemas[0]
    if mode == "union_by_name":
        return _union(schemas, resource)
    hint = _HINT if mode == "error" else "; pass union_by_name=True to read the union of the columns"
    for name, schema in schemas[1:]:
        if schema.equals(first):
            continue
        for field in schema:
            if first.get_field_index(field.name) == -1:
                raise SchemaError(
                    f"{name} has column {field.name!r}, which {first_name} (the first file) lacks{hint}",
                    resource=resource or name,
                )
            expected = first.field(field.name).type
            if field.type != expected:
                raise SchemaError(
                    f"{name} has column {field.name!r} as {field.type}, but {first_name} (the first file) "
                    f"has it as {expected}; rewrite the files with one type, or pass union_by_name=True "
                    "to promote it",
                    resource=resource or name,
                )
        if mode == "error":
            for field in first:
                if schema.get_field_index(field.name) == -1:
                    raise SchemaError(
                        f"{name} lacks column {field.name!r}, which {first_name} (the first file) has{hint}",
                        resource=resource or name,
                    )
    return first


def _union(schemas: Sequence[tuple[str, pa.Schema]], resource: str | None) -> pa.Schema:
    union = schemas[0][1]
    seen = {field.name: schemas[0][0] for field in union}
    for name, schema in schemas[1:]:
        try:
            union = pa.unify_schemas([union, schema], promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
            for field in schema:
                index = union.get_field_index(field.name)
                if index != -1 and _unpromotable(union.field(index).type, field.type):
                    raise SchemaError(
                        f"{name} has column {field.name!r} as {field.type}, which does not promote to "
                        f"{union.field(index).type} (as in {seen[field.name]}); rewrite the files with "
                        "one type",
                        resource=resource or name,
                    ) from exc
            raise SchemaError(
                f"{name} does not unify with the other files: {exc}", resource=resource or name
            ) from exc
        seen.update({field.name: name for field in schema if field.name not in seen})
    return union


def _unpromotable(left: pa.DataType, right: pa.DataType) -> bool:
    try:
        pa.unify_schemas([pa.schema([("c", left)]), pa.schema([("c", right)])], promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return True
    return False


def dataset_schema(
    fragments: Sequence[ds.FileFragment],
    partition_fields: Sequence[pa.Field],
    mode: SchemaDrift = "error",
    *,
    resource: str | None = None,
) -> pa.Schema:
    """The schema of a dataset of ``fragments``: their reconciled schemas, then the partition fields.

    Each fragment's ``physical_schema`` is read (a Parquet footer, the first block of a CSV
    or JSON file; a few at once), which the scan then reuses; drift that ``mode`` does not
    allow is a :class:`~sygnify.errors.SchemaError` naming the file.
    """
    if len(fragments) == 1:
        physical = [fragments[0].physical_schema]
    else:
        with ThreadPoolExecutor(min(_SCHEMA_READERS, len(fragments))) as pool:
            physical = list(pool.map(lambda fragment: fragment.physical_schema, fragments))
    schema = reconcile_schemas(
        [(fragment.path, file_schema) for fragment, file_schema in zip(fragments, physical)],
        mode,
        resource=resource,
    )
    for partition_field in partition_fields:
        if partition_field.name not in schema.names:
            schema = schema.append(partition_field)
    return schema


def polars_drift_scan(
    fmt: FileFormat,
    files: Sequence[str],
    schema: pa.Schema,
    mode: SchemaDrift,
    *,
    hive_partitioning: bool,
    **options: Any,
) -> pl.LazyFrame:
    """A Polars scan of ``files`` that reads them as ``schema`` (from :func:`reconcile_schemas`).

    Parquet uses Polars' own options (missing columns inserted as null, integers and floats
    upcast); the other formats are scanned file by file and concatenated by name
    (``how="diagonal_relaxed"``), which hive partitions cannot follow. ``options`` go to
    each ``scan_*`` call (``storage_options``, ``credential_provider``).
    """
    file_schema = pl.Schema(pl.from_arrow(schema.empty_table()).schema)  # type: ignore[union-attr]
    if fmt == "parquet":
        return pl.scan_parquet(
            list(files),
            schema=file_schema,
            hive_partitioning=hive_partitioning,
            missing_columns="insert",
            extra_columns="raise",
            cast_options=pl.ScanCastOptions(integer_cast=["upcast", "allow-float"], float_cast="upcast"),
            **options,
        )
    if hive_partitioning and fmt == "ipc":
        raise ConfigurationError(
            f"{mode}=True over hive-partitioned Arrow IPC files is not supported in scan(); "
            "use stream() or rewrite the files with one schema"
        )
    # One scan per file, through the one scan entry (untrusted-file checks, blank CSV lines).
    frames = [polars_scan(fmt, [path], **options) for path in files]
    combined = pl.concat(frames, how="diagonal_relaxed")
    return combined.select([pl.col(name).cast(dtype) for name, dtype in file_schema.items()])


def check_columns(schema: pa.Schema, columns: Sequence[str] | None, source: str) -> None:
    """Refuse ``columns`` that ``schema`` lacks, naming them and the columns there are.

    >>> check_columns(pa.schema([("a", pa.int64())]), ["a", "nope"], "t.parquet")
    Traceback (most recent call last):
    ...
    sygnify.errors.SchemaError: no column 'nope' in 't.parquet'; its columns are a
    """
    unknown = [name for name in columns or () if name not in schema.names]
    if unknown:
        raise SchemaError(
            f"no column {', '.join(map(repr, unknown))} in {source!r}; "
            f"its columns are {', '.join(schema.names)}",
            resource=source,
        )
