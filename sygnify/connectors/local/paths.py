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

from sygnify.errors import ConfigurationError, NotFoundError, PathEscapeError
from sygnify.io.files import TEMP_PREFIX, find_files, has_glob
from sygnify.io.formats import FileFormat, detect_format, format_of_file

__all__ = ["TEMP_PREFIX", "data_files", "list_files", "relative_to_root", "resolve_under", "single_format"]


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
    and, for a directory, the directory (hive partitions live there).
    """
    base = resolve_under(root, source)
    if not has_glob(source) and not base.exists():
        raise NotFoundError(f"no file or directory {source!r} under {root}", resource=source)
    files = [resolve_under(root, match) for match in find_files(str(base), any_format=fmt is not None)]
    directory = base if not has_glob(source) and base.is_dir() else None
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
