"""Single files of the ``local`` connector: open, copy and move, confined to the root.

Every path goes through :func:`~sygnify.connectors.local.paths.resolve_under` first, so
nothing outside the root is reached, through ``..`` or a symlink. A file opened for
writing, a copy and a move each replace their target atomically
(:func:`sygnify.io.files.atomic_write`, or one rename): readers see the old file or the
new one, never a part::

    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp()).resolve()
    >>> with open_file(root, "notes/a.txt", "w") as out:
    ...     _ = out.write("hello")
    >>> copy_file(root, "notes/a.txt", "notes/b.txt"), move_file(root, "notes/b.txt", "c.txt")
    ('notes/b.txt', 'c.txt')
    >>> with open_file(root, "c.txt", "r") as handle:
    ...     handle.read()
    'hello'
    >>> sorted(path.name for path in root.rglob("*.txt"))
    ['a.txt', 'c.txt']
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import IO, Any

from sygnify.connectors.local.duckdb import translate_local_error
from sygnify.connectors.local.paths import relative_to_root, resolve_under
from sygnify.errors import ConfigurationError, NotFoundError
from sygnify.io.fileobjects import TextWriter, UploadWriter, text_writer
from sygnify.io.files import atomic_write

__all__ = ["copy_file", "move_file", "open_file"]

MiB = 1024 * 1024
#: What a writer buffers before it hands its bytes to the background thread writing the file.
WRITE_PART = 1 * MiB


def _existing_file(root: Path, path: str) -> Path:
    resolved = resolve_under(root, path)
    if resolved.is_dir():
        raise ConfigurationError(f"{path!r} is a directory under {root}, not a file", resource=path)
    if not resolved.is_file():
        raise NotFoundError(f"no file {path!r} under {root}", resource=path)
    return resolved


def _target(root: Path, path: str) -> Path:
    resolved = resolve_under(root, path)
    if resolved.is_dir() or path.endswith("/"):
        raise ConfigurationError(f"{path!r} names a directory under {root}; name a file", resource=path)
    return resolved


def _write_from(stream: IO[bytes], target: Path) -> None:
    try:
        atomic_write(target, lambda handle: shutil.copyfileobj(stream, handle))
    except OSError as exc:  # e.g. the disk filled up while a writer was being closed
        raise translate_local_error(exc, f"write of {target} failed: {exc}", str(target)) from exc


def open_file(
    root: Path, path: str, mode: str = "rb", *, encoding: str | None = None, newline: str | None = None
) -> IO[Any] | UploadWriter | TextWriter:
    """``path`` under ``root`` opened for reading (``"rb"``, ``"r"``) or replacing (``"wb"``, ``"w"``).

    A writer publishes the file only when ``close()`` succeeds (an exception inside ``with``
    leaves the old file, or none); text is UTF-8 unless ``encoding`` says otherwise.
    """
    if mode in ("rb", "r", "rt"):
        resolved = _existing_file(root, path)
        if mode == "rb":
            return resolved.open("rb")
        return resolved.open("r", encoding=encoding or "utf-8", newline=newline)
    if mode in ("wb", "w", "wt"):
        target = _target(root, path)
        writer = UploadWriter(
            lambda stream: _write_from(stream, target), name=str(target), part_size=WRITE_PART
        )
        if mode == "wb":
            return writer
        return text_writer(writer, encoding=encoding, newline=newline)
    raise ConfigurationError(f"open() mode must be 'rb', 'wb', 'r' or 'w', got {mode!r}", resource=path)


def copy_file(root: Path, source: str, destination: str) -> str:
    """Copy one file under ``root`` (the copy replaces ``destination`` atomically); returns its path."""
    origin = _existing_file(root, source)
    target = _target(root, destination)
    if origin != target:
        with origin.open("rb") as reader:
            _write_from(reader, target)
    return relative_to_root(root, target)


def move_file(root: Path, source: str, destination: str) -> str:
    """Move one file under ``root`` by one rename (a copy and delete across devices); returns its path."""
    origin = _existing_file(root, source)
    target = _target(root, destination)
    if origin != target:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(origin, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            copy_file(root, source, destination)
            origin.unlink()
    return relative_to_root(root, target)
