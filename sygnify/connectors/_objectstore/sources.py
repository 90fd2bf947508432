"""What a dataset source names: one object, a prefix read with hive partitions, or a glob.

A source is listed once through the connector's SDK (with retries) into the files it
names and their one file format; the listing keeps each object's size, so pyarrow needs
no further listing or HEAD requests. Hive partition values of a prefix become typed
columns::

    >>> partitions = hive_partitions("sales/", ["sales/region=eu/year=2026/a.parquet"])
    >>> [field.name for field in partitions.fields], str(partitions.fields[1].type)
    (['region', 'year'], 'int64')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from sygnify.connectors._objectstore.store import ObjectInfo, ObjectStore
from sygnify.errors import ConfigurationError, ObjectNotFoundError
from sygnify.io.commits import LOG_DIR, CommitFilter, Log, dataset_root
from sygnify.io.files import glob_matcher, glob_prefix, has_glob, is_data_file
from sygnify.io.formats import FileFormat, detect_format, format_of_file
from sygnify.io.partitions import (
    PARTITIONS_FILE,
    HiveSchema,
    partition_expression,
    partition_schema,
    partition_values,
)

__all__ = ["Partitions", "ResolvedSource", "committed", "hive_partitions", "resolve_source"]


@dataclass(frozen=True)
class ResolvedSource:
    """The listing of a source: its bucket, data objects and format (and prefix, for directories)."""

    bucket: str
    files: list[ObjectInfo]
    fmt: FileFormat
    directory: str | None  # the prefix for hive partitions, for directory sources
    partitions_file: ObjectInfo | None = None  # the stored partition types of a directory


@dataclass(frozen=True)
class Partitions:
    """Hive partitions of a listing: one filter expression per file, and the partition fields."""

    expressions: list[ds.Expression]
    fields: list[pa.Field]


def hive_partitions(
    directory: str,
    keys: Sequence[str],
    *,
    stored: pa.Schema | None = None,
    hive_schema: HiveSchema | None = None,
) -> Partitions:
    """Partition values of ``keys`` below ``directory`` (``col=value/`` segments).

    The types are decided once, by :func:`sygnify.io.partitions.partition_schema`
    (``hive_schema``, then the ``stored`` types of the dataset, then inference), and the
    values by :func:`sygnify.io.partitions.partition_expression` (percent-decoding, the
    null sentinel), as every other reader decodes them.
    """
    relative = [key[len(directory) :] for key in keys]
    schema = partition_schema(relative, stored=stored, hive_schema=hive_schema)
    expressions = [partition_expression(values, schema) for values in partition_values(relative)]
    return Partitions(expressions, list(schema))


def _modified(info: ObjectInfo) -> float | None:
    return info.last_modified.timestamp() if info.last_modified is not None else None


def committed(
    store: ObjectStore[Any],
    bucket: str,
    prefix: str,
    listed: Sequence[ObjectInfo],
    files: list[ObjectInfo],
) -> list[ObjectInfo]:
    """``files`` less those the commit logs in ``listed`` hide (:mod:`sygnify.io.commits`).

    ``listed`` is every object listed under ``prefix``; the log of the dataset the prefix
    lies in (``tx/`` for ``tx/region=eu/`` or ``tx/region=*``) is listed too, with one more
    request, when the listing does not hold it.
    """
    logs = {}
    root = dataset_root(prefix[: prefix.rfind("/") + 1])
    log_prefix = f"{root}{LOG_DIR}/"
    if not log_prefix.startswith(prefix):
        entries = store.iter_objects(bucket, log_prefix)
        logs[root] = Log.parse((info.key[len(log_prefix) :], _modified(info)) for info in entries)
    keep = CommitFilter(((info.key, _modified(info)) for info in listed), logs=logs)
    return [info for info in files if keep(info.key, _modified(info))]


def resolve_source(store: ObjectStore[Any], source: str, explicit: str | None) -> ResolvedSource:
    """List ``source`` (an object, prefix or glob of ``store``) into its data objects and format.

    ``explicit`` is the ``format=`` the caller passed; without it every object's extension
    must name the same format.
    """
    bucket, key, _ = store.locate(source)
    fmt_hint = detect_format(source, explicit) if explicit is not None else None
    any_format = fmt_hint is not None
    directory: str | None = None
    partitions_file: ObjectInfo | None = None
    if has_glob(key):
        # The one glob (sygnify.io.files): what a local path or LargeDataHandler matches too.
        matches = glob_matcher(key, any_format=any_format)
        prefix = glob_prefix(key)
        listed = list(store.iter_objects(bucket, prefix))
        files = [info for info in listed if matches(info.key)]
        files = committed(store, bucket, prefix, listed, files)
        # Hive partitions start at the glob's literal directory, above any k=v directories
        # ("tx/region=*/x.parquet" and "tx/**/*.parquet" both have "region"), as a prefix's do.
        directory = dataset_root(prefix[: prefix.rfind("/") + 1])
        types_key = directory + PARTITIONS_FILE
        if types_key.startswith(prefix):
            partitions_file = next((info for info in listed if info.key == types_key), None)
        elif any("=" in info.key[len(directory) :] for info in files):
            found = store.iter_objects(bucket, types_key)
            partitions_file = next((info for info in found if info.key == types_key), None)
    elif key == "" or key.endswith("/") or format_of_file(key) is None:
        directory = key.rstrip("/") + "/" if key.strip("/") else ""
        listed = list(store.iter_objects(bucket, directory))
        files = [info for info in listed if is_data_file(info.key[len(directory) :], any_format=any_format)]
        files = committed(store, bucket, directory, listed, files)
        partitions_file = next((info for info in listed if info.key == directory + PARTITIONS_FILE), None)
    else:
        files = [store.head(bucket, key, operation="open")]
    if not files:
        raise ObjectNotFoundError(f"{source!r} matches no data objects", resource=source)
    if fmt_hint is not None:
        return ResolvedSource(bucket, files, fmt_hint, directory, partitions_file)
    formats = {format_of_file(info.key) for info in files}
    if len(formats) != 1 or None in formats:
        names = ", ".join(sorted(str(fmt) for fmt in formats))
        raise ConfigurationError(
            f"{source!r} mixes file formats ({names}); narrow the glob or pass format=", resource=source
        )
    return ResolvedSource(bucket, files, formats.pop(), directory, partitions_file)  # type: ignore[arg-type]
