"""Paths of the ``local`` connector: confined to its root, expanded to data files.

Every path a caller names goes through :func:`resolve_under`, which follows symlinks and
``..`` first and then refuses anything that lands outside the root; globs and directories
are expanded by :func:`data_files`, whose every match is checked the same way::

    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp()).resolve()
    >>> _ = (root / "tx").mkdir(), (root / "tx" / "a.parquet").touch()
    >>> relative_to_root(root, resolve_under(root, "tx/../tx/a.parquet"))
    'tx/a.parquet'
    >>> data_files(root, "tx/*.parquet")[0] == [str(root / "tx" / "a.parquet")]
    True
    >>> resolve_under(root, "../elsewhere")
    Traceback (most recent call last):
    ...
    sygnify.errors.PathEscapeError: ...outside the connector root...
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from sygnify.errors import ConfigurationError, NotFoundError, PathEscapeError
from sygnify.io.commits import dataset_root
from sygnify.io.files import TEMP_PREFIX, find_files, glob_prefix, has_glob
from sygnify.io.formats import FileFormat, detect_format, format_of_file, pyarrow_format
from sygnify.io.partitions import HiveSchema, hive_partitioning, local_partition_schema
from sygnify.io.schemas import SchemaDrift, dataset_schema
from sygnify.io.untrusted import check_files

__all__ = [
    "TEMP_PREFIX",
    "data_files",
    "file_dataset",
    "list_files",
    "relative_to_root",
    "resolve_under",
    "single_format",
]


def resolve_under(root: Path, path: str) -> Path:
    """The absolute path of ``path`` under ``root``; refuses anything that escapes it."""
    candidate = Path(path).expanduser()
    full = candidate if candidate.is_absolute() else root / candidate
    resolved = Path(os.path.realpath(full))
    if not resolved.is_relative_to(root):
        raise PathEscapeError(
            f"path {path!r} resolves to {resolved}, outside the connector root {root}",
            resource=path,
        )
    return resolved


def relative_to_root(root: Path, path: Path) -> str:
    """``path`` (under ``root``) as a POSIX path relative to ``root``."""
    return path.relative_to(root).as_posix()


def data_files(root: Path, source: str, fmt: str | None = None) -> tuple[list[str], Path | None]:
    """Data files named by a path, directory or glob, each checked to be under root.

    Globs and directories follow the one glob of :mod:`sygnify.io.files` (hidden names
    skipped; without ``fmt``, files whose extension names no format too). Returns the files
    and the directory their hive partitions start at: a directory source itself, a glob's
    literal directory (above any ``k=v`` segments); None for a file.
    """
    base = resolve_under(root, source)
    if not has_glob(source) and not base.exists():
        raise NotFoundError(f"no file or directory {source!r} under {root}", resource=source)
    files = [resolve_under(root, match) for match in find_files(str(base), any_format=fmt is not None)]
    if has_glob(source):
        # A glob's hive partitions start at its literal directory (above partition directories:
        # "tx/region=*/x.parquet" and "tx/**/*.parquet" both have "region"), as a directory's do.
        literal = glob_prefix(source)
        head = dataset_root(literal[: literal.rfind("/") + 1])
        directory: Path | None = resolve_under(root, head) if head else root
    else:
        directory = base if base.is_dir() else None
    if not files:
        raise NotFoundError(f"{source!r} matches no data files under {root}", resource=source)
    return [str(path) for path in files], directory


def single_format(files: list[str], source: str, explicit: str | None) -> FileFormat:
    """The one format of ``files`` (or ``explicit``); refuses a source that mixes formats."""
    if explicit is not None:
        return detect_format(source, explicit)
    formats = {format_of_file(path) for path in files}
    if len(formats) != 1 or None in formats:
        names = ", ".join(sorted(str(fmt) for fmt in formats))
        raise ConfigurationError(
            f"{source!r} mixes file formats ({names}); narrow the glob or pass format=",
            resource=source,
        )
    return formats.pop()  # type: ignore[return-value]


def file_dataset(
    files: list[str],
    fmt: FileFormat,
    directory: Path | None,
    drift: SchemaDrift,
    *,
    source: str,
    hive_schema: HiveSchema | None = None,
) -> tuple[ds.Dataset, pa.Schema]:
    """The pyarrow dataset of ``files`` (hive partitions below ``directory``), drift checked,
    and the schema of the files' own columns (the dataset's, less the partition columns).

    Every file's schema (its Parquet footer, the first block of a CSV or JSON file) is read
    once and reconciled under ``drift`` (:func:`sygnify.io.schemas.dataset_schema`): drift it
    does not allow is a :class:`~sygnify.errors.SchemaError` naming the file and the column.
    JSON lines and Arrow IPC files pass :func:`sygnify.io.untrusted.check_files` first (the
    native readers crash on some malformed files). Partition columns are typed by
    :func:`sygnify.io.partitions.local_partition_schema`
    (``hive_schema``, the types the writer stored, inference), as on every store.
    """
    check_files(files, fmt)
    if directory is not None:
        partitioning = hive_partitioning(local_partition_schema(directory, files, hive_schema=hive_schema))
        dataset = ds.dataset(
            files, format=pyarrow_format(fmt), partitioning=partitioning, partition_base_dir=str(directory)
        )
    else:
        dataset = ds.dataset(files, format=pyarrow_format(fmt))
    fragments = list(dataset.get_fragments())
    first_columns = set(fragments[0].physical_schema.names)
    partition_fields = [field for field in dataset.schema if field.name not in first_columns]
    file_schema = dataset_schema(fragments, [], drift, resource=source)
    schema = pa.schema([*file_schema, *(f for f in partition_fields if f.name not in file_schema.names)])
    if not schema.equals(dataset.schema):
        dataset = dataset.replace_schema(schema)
    return dataset, file_schema


def list_files(root: Path, prefix: str = "") -> list[str]:
    """Files under ``root/prefix`` as paths relative to root, sorted (in-flight writes hidden)."""
    base = resolve_under(root, prefix or ".")
    if base.is_file():
        return [relative_to_root(root, base)]
    if not base.exists():
        return []
    return sorted(
        relative_to_root(root, path)
        for path in base.rglob("*")
        if path.is_file() and not path.name.startswith(TEMP_PREFIX)
    )
