"""Files: the one glob and the one atomic write that every connector, sink and store shares.

**Globs.** One set of rules, wherever a pattern is matched (local paths, object-store keys,
``LargeDataHandler`` file sources): ``*``, ``?`` and ``[...]`` never cross ``/``; a whole
``**`` segment matches zero or more directories; and a wildcard never matches a hidden
name (a file or directory starting with ``.`` or ``_``: in-flight writes, ``_SUCCESS``,
``_delta_log``), which only a pattern naming it literally reaches::

    >>> pattern = glob_regex("sales/**/2026-*.parquet")
    >>> [bool(pattern.match(key)) for key in (
    ...     "sales/2026-01.parquet", "sales/eu/x/2026-02.parquet", "sales/eu/2025-01.parquet",
    ...     "sales/_tmp/2026-03.parquet", "sales/eu/.2026-04.parquet")]
    [True, True, False, False, False]
    >>> bool(glob_regex("a/*.parquet").match("a/x/y.parquet"))
    False
    >>> glob_prefix("s3-bucket/raw/2026-*/x.parquet")
    's3-bucket/raw/2026-'

**Atomic writes.** :func:`atomic_write` makes readers see all of a file or none of it:
locally it writes a temporary sibling, flushes and fsyncs it, renames it over the target
and fsyncs the directory (:func:`publish` is that last step, for files already written);
on an object store (a pyarrow filesystem) it uploads a hidden temporary key and moves it
to the target, so the target appears only once complete (a crash can leave the hidden
temporary behind, never a partial target)::

    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> atomic_write(root / "a" / "state.json", lambda out: out.write(b"{}"))
    2
    >>> (root / "a" / "state.json").read_bytes(), find_files(str(root / "**"), any_format=True)
    (b'{}', ['.../a/state.json'])
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import pyarrow.fs as pafs

from sygnify.errors import NotFoundError
from sygnify.io.commits import LOG_DIR, CommitFilter, Log, dataset_root
from sygnify.io.formats import format_of_file

__all__ = [
    "GLOB_CHARS",
    "HIDDEN_PREFIXES",
    "TEMP_PREFIX",
    "atomic_write",
    "committed_files",
    "expand_glob",
    "find_files",
    "glob_matcher",
    "glob_prefix",
    "glob_regex",
    "has_glob",
    "is_data_file",
    "is_temporary",
    "publish",
    "remove_temporaries",
    "resolve_filesystem",
]

T = TypeVar("T")

#: The characters that make a path a glob.
GLOB_CHARS = re.compile(r"[*?\[]")
#: Names starting with these are hidden: no wildcard and no directory listing yields them.
HIDDEN_PREFIXES = (".", "_")
#: Names of in-flight writes (temporary files and staging directories); hidden, as above.
TEMP_PREFIX = ".sygnify-tmp-"

# A wildcard at the start of a segment must not begin a hidden name.
_VISIBLE = "(?![._])"


def has_glob(text: str) -> bool:
    """Whether ``text`` holds a glob character (``*``, ``?`` or ``[``).

    >>> has_glob("raw/*.csv"), has_glob("raw/x.csv")
    (True, False)
    """
    return GLOB_CHARS.search(text) is not None


def glob_prefix(pattern: str) -> str:
    """The literal text of ``pattern`` before its first glob character (all of it if none).

    An object store lists keys under this prefix and matches them with :func:`glob_regex`.

    >>> glob_prefix("raw/2026-*.parquet"), glob_prefix("raw/")
    ('raw/2026-', 'raw/')
    """
    return GLOB_CHARS.split(pattern, maxsplit=1)[0]


def _char_class(inner: str) -> str:
    negate = inner.startswith("!")
    body = inner[1:] if negate else inner
    # Keep ranges (a-z); escape what a regex set would read differently ("\\", "^", "]" first,
    # nested "[", "&&"...).
    body = re.sub(r"([\\\[\]&~|^])", r"\\\1", body)
    return f"[^/{body}]" if negate else f"(?!/)[{body}]"


def _class_body_start(pattern: str, opening: int) -> int:
    """Where to look for the ``]`` closing the set opened at ``opening``: as in fnmatch, a
    ``]`` right after ``[`` or ``[!`` is a member, not the end (``[]a]``, ``[!]a]``)."""
    start = opening + 1
    start += pattern.startswith("!", start)
    return start + pattern.startswith("]", start)


def glob_regex(pattern: str, *, hidden: bool = False) -> re.Pattern[str]:
    """A compiled regex that matches exactly the paths ``pattern`` names (see the module docstring).

    ``hidden=True`` lets wildcards match hidden names too.

    >>> regex = glob_regex("logs/[a-c]?/*.csv")
    >>> [bool(regex.match(p)) for p in ("logs/b1/x.csv", "logs/d1/x.csv", "logs/b1/y/x.csv")]
    [True, False, False]
    """
    visible = "" if hidden else _VISIBLE
    segment = f"{visible}[^/]+"
    out: list[str] = []
    i = 0
    while i < len(pattern):
        at_segment_start = i == 0 or pattern[i - 1] == "/"
        if at_segment_start and pattern.startswith("**", i) and pattern[i + 2 : i + 3] in ("", "/"):
            if i + 2 == len(pattern):  # a trailing "**": every file below, at any depth
                out.append(f"(?:{segment}/)*{segment}")
                i += 2
            else:  # "**/": zero or more directories
                out.append(f"(?:{segment}/)*")
                i += 3
            continue
        char = pattern[i]
        start = visible if at_segment_start else ""
        if char == "*":
            while pattern.startswith("*", i + 1):  # "**" inside a segment is one "*"
                i += 1
            # A "*" that is the whole segment names something: never an empty name ("a/" for
            # "a/*", a directory-marker key on an object store).
            whole = at_segment_start and pattern[i + 1 : i + 2] in ("", "/")
            out.append(f"{start}[^/]{'+' if whole else '*'}")
        elif char == "?":
            out.append(f"{start}[^/]")
        elif char == "[" and (end := pattern.find("]", _class_body_start(pattern, i))) != -1:
            out.append(start + _char_class(pattern[i + 1 : end]))
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def glob_matcher(pattern: str, *, any_format: bool = False) -> Callable[[str], bool]:
    """Whether a path is a data file that ``pattern`` names: it matches :func:`glob_regex` and,
    unless ``any_format`` (the caller named the format), its extension names a format.

    >>> matches = glob_matcher("raw/*")
    >>> matches("raw/a.csv"), matches("raw/README"), matches("raw/_SUCCESS")
    (True, False, False)
    """
    regex = glob_regex(pattern)
    return lambda path: regex.match(path) is not None and (any_format or format_of_file(path) is not None)


def is_data_file(relative: str, *, any_format: bool = False) -> bool:
    """Whether ``relative`` (a path below a listed directory) is a data file.

    No segment may be hidden, and unless ``any_format`` (the caller named the format) the
    extension must name a format.

    >>> is_data_file("day=1/part-0.parquet"), is_data_file("_delta_log/0.json"), is_data_file("README")
    (True, False, False)
    """
    segments = relative.strip("/").split("/")
    if any(not name or name.startswith(HIDDEN_PREFIXES) for name in segments):
        return False
    return any_format or format_of_file(segments[-1]) is not None


def _walk(top: str, *, max_depth: int | None, prune_hidden: bool) -> Iterator[str]:
    """Files below the local directory ``top`` as relative POSIX paths (symlinked directories
    are not followed; ``max_depth`` directories deep at most; hidden directories pruned)."""
    for directory, subdirectories, names in os.walk(top):
        relative = os.path.relpath(directory, top)
        depth = 0 if relative == "." else relative.count(os.sep) + 1
        if max_depth is not None and depth >= max_depth:
            subdirectories.clear()
        elif prune_hidden:
            subdirectories[:] = [name for name in subdirectories if not name.startswith(HIDDEN_PREFIXES)]
        prefix = "" if relative == "." else Path(relative).as_posix() + "/"
        yield from (prefix + name for name in names)


def expand_glob(pattern: str, *, hidden: bool = False) -> list[str]:
    """The local files ``pattern`` matches, sorted (the local counterpart of listing a prefix).

    Directories are walked from the literal part of the pattern, and only as deep as the
    pattern reaches (all the way for ``**``); symlinked files match, symlinked directories
    are not followed.
    """
    regex = glob_regex(pattern, hidden=hidden)
    literal = glob_prefix(pattern)
    head = literal[: literal.rfind("/") + 1]  # the directory part, with its "/" ("" for none)
    rest = pattern[len(head) :]
    # Hidden directories can hold a match only where the pattern names one literally.
    prune = not hidden and re.search(r"(?:^|/)[._]", rest) is None
    files = _walk(head or ".", max_depth=None if "**" in rest else rest.count("/"), prune_hidden=prune)
    return sorted(head + name for name in files if regex.match(head + name))


def find_files(path: str, *, any_format: bool = False) -> list[str]:
    """The local data files named by a file, a directory (walked) or a glob, sorted.

    Hidden names are skipped, and so, unless ``any_format``, are files whose extension names
    no format, and files a dataset's commit log hides (:func:`committed_files`: parts of
    writes that did not commit, data an overwrite replaced); a file named directly is
    returned as it is. A missing file or directory is a
    :class:`~sygnify.errors.NotFoundError`; a glob that matches nothing returns ``[]``.
    """
    if has_glob(path):
        found = list(filter(glob_matcher(path, any_format=any_format), expand_glob(path)))
        literal = glob_prefix(path)
        return committed_files(found, literal[: literal.rfind("/") + 1] or ".")
    if os.path.isdir(path):
        files = _walk(path, max_depth=None, prune_hidden=True)
        found = sorted(
            os.path.join(path, name) for name in files if is_data_file(name, any_format=any_format)
        )
        return committed_files(found, path)
    if os.path.isfile(path):
        return [path]
    raise NotFoundError(f"no file or directory {path!r}; check the path", resource=path)


def committed_files(paths: list[str], top: str) -> list[str]:
    """``paths`` (local files found below the directory ``top``) less those the datasets'
    commit logs hide (:mod:`sygnify.io.commits`).

    A log governs the files below its directory: the directories of ``paths`` are checked
    up to ``top``, and above it through hive partition directories (``k=v``), so reading one
    partition honours its dataset's log. Without a log, only parts of uncommitted writes
    are left out.
    """
    stop = os.path.normpath(dataset_root(os.path.normpath(top) + "/") or ".")
    logs: dict[str, Log] = {}
    checked: set[str] = set()
    for path in paths:
        directory = os.path.dirname(path) or "."
        while directory not in checked:
            checked.add(directory)
            log_dir = os.path.join(directory, LOG_DIR)
            if os.path.isdir(log_dir):
                with os.scandir(log_dir) as entries:
                    logs[directory.rstrip("/") + "/"] = Log.parse(
                        (entry.name, entry.stat().st_mtime) for entry in entries if entry.is_file()
                    )
            parent = os.path.dirname(directory)
            if os.path.normpath(directory) == stop or parent in ("", directory):
                break
            directory = parent
    keep = CommitFilter((), logs=logs)
    if not any(log.commits for log in logs.values()):  # no stat needed: only part names count
        return [path for path in paths if keep(path, None)]
    return [path for path in paths if keep(path, _mtime(path))]


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return None


_URI_QUERY = re.compile(r"\?(?=[A-Za-z_]\w*=)")  # "?region=..." (a glob "?" is not followed by "name=")


def resolve_filesystem(path: str, filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of ``path`` and the path (or glob) within it.

    ``filesystem`` given: used as is, the path without its URL scheme. A URL (``s3://``,
    ``gs://``...): pyarrow's filesystem for it (credentials from the environment, options as
    URL query parameters); a glob in it stays a glob, ``?`` included. Anything else is a
    local path, made absolute.

    >>> filesystem, local = resolve_filesystem("file:///tmp/x.parquet")
    >>> type(filesystem).__name__, local
    ('LocalFileSystem', '/tmp/x.parquet')
    """
    if filesystem is not None:
        # pyarrow filesystems take "bucket/key": a URL's scheme is dropped ("s3://b/k" -> "b/k").
        scheme, sep, rest = path.partition("://")
        is_url = sep and scheme.isalnum() and not isinstance(filesystem, pafs.LocalFileSystem)
        return filesystem, rest if is_url else path
    if "://" not in path or path.startswith("file://"):
        return pafs.LocalFileSystem(), os.path.abspath(path.removeprefix("file://"))
    query_mark = _URI_QUERY.search(path)
    split = query_mark.start() if query_mark else len(path)
    location, query = path[:split], path[split:]
    if not has_glob(location):
        return pafs.FileSystem.from_uri(location + query)  # type: ignore[no-any-return]
    # pyarrow would read a glob's "?" as a query: open the directory before the glob instead.
    head = location[: glob_prefix(location).rfind("/") + 1]
    found, directory = pafs.FileSystem.from_uri(head + query)
    return found, f"{directory.rstrip('/')}/{location[len(head) :]}"


def _fsync(path: str) -> None:
    descriptor = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _makedirs(directory: str) -> None:
    """Create ``directory`` and its missing parents durably: the parent of each directory
    created is fsynced, or a power loss could drop the new directory with every file
    renamed into it since (fsyncing a directory makes its entries durable, not its own)."""
    missing: list[str] = []
    current = os.path.abspath(directory or ".")
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:  # made meanwhile by another writer (or not a directory: raise below)
            if not os.path.isdir(path):
                raise
        _fsync(os.path.dirname(path))


def publish(staged: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Move the complete local file ``staged`` over ``path`` durably.

    The file's data is fsynced before the rename and the directory after it (and the
    parents of any directory created for it), so after a crash or a power loss ``path``
    holds the old file or the new one, never a torn one, and once this returns the new one
    is durable. Both must be on one file system (a sibling or a staging directory next to
    the target).
    """
    target = os.fspath(path)
    _fsync(os.fspath(staged))
    _makedirs(os.path.dirname(target))
    os.replace(staged, target)
    _fsync(os.path.dirname(target))


def _object_store_write(filesystem: pafs.FileSystem, target: str, write: Callable[[BinaryIO], T]) -> T:
    """Write a hidden temporary key next to ``target``, then move it there.

    Closing an object-store stream completes the upload, even when ``write`` failed
    half-way, so ``write`` never streams into ``target`` itself."""
    directory, _, name = target.rpartition("/")
    temporary = f"{directory}/" * bool(directory) + _temporary_name(name)
    moved = False
    try:
        stream: Any
        with filesystem.open_output_stream(temporary) as stream:
            result = write(stream)
        try:
            filesystem.move(temporary, target)  # S3, GCS: a server-side copy, then a delete
            moved = True
        except NotImplementedError:  # a store without moves (Azure without a namespace)
            filesystem.copy_file(temporary, target)
    finally:
        if not moved:
            # Best effort: a temporary left behind is a hidden key no glob or listing yields.
            with contextlib.suppress(OSError):
                filesystem.delete_file(temporary)
    return result


#: The temporaries of the streaming engine's sinks (``.<name>.<12 hex>.tmp``, see
#: ``sygnify.processing.query``), renamed into place like :func:`atomic_write`'s.
_ENGINE_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


def _temporary_name(name: str) -> str:
    """The name of :func:`atomic_write`'s temporary for the file ``name``: hidden, unique,
    naming (up to 160 characters of) the file, so that whoever owns the file can tell its
    temporaries apart (:func:`remove_temporaries`), and ending in ``.tmp``, so that no
    other tool's ``*.parquet`` takes it for data."""
    return f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name[:160]}.tmp"


def _temporary_of(name: str) -> str | None:
    """The file name a temporary is for (None for temporaries that do not say)."""
    if name.startswith(TEMP_PREFIX):
        rest = name[len(TEMP_PREFIX) :]
        return rest[33:].removesuffix(".tmp") if len(rest) > 33 and rest[32] == "-" else None
    match = _ENGINE_TEMPORARY.match(name)
    return name[1:].rsplit(".", 2)[0] if match else None


def is_temporary(name: str) -> bool:
    """Whether a file name is an in-flight write's temporary (:func:`atomic_write`'s or the
    streaming engine's), which a crash can leave behind.

    >>> is_temporary(TEMP_PREFIX + "0f" * 16), is_temporary(".part-1.parquet.0123456789ab.tmp")
    (True, True)
    >>> is_temporary("part-1.parquet"), is_temporary(".hidden")
    (False, False)
    """
    return name.startswith(TEMP_PREFIX) or _ENGINE_TEMPORARY.match(name) is not None


def remove_temporaries(
    directory: str, *, filesystem: pafs.FileSystem | None = None, of: str | None = None
) -> list[str]:
    """Delete the temporaries (:func:`is_temporary`) that crashed writes left below
    ``directory`` (only those of files whose names start with ``of``, if given, in
    ``directory`` itself); returns their paths.

    Hidden names keep them from sygnify's globs and listings, but other readers glob them
    (DuckDB's ``read_parquet('out/*')`` fails on a zero-byte one), so whoever owns the
    directory calls this before it writes again: only there is no write of someone else
    still running (an incremental job under its run lock, for one).

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> _ = open(os.path.join(root, TEMP_PREFIX + "x"), "wb").close()
    >>> [os.path.basename(path) for path in remove_temporaries(root)], os.listdir(root)
    (['.sygnify-tmp-x'], [])
    """

    def mine(name: str) -> bool:
        if not is_temporary(name):
            return False
        return of is None or (_temporary_of(name) or "").startswith(of)

    found: list[str] = []
    depth = None if of is None else 0
    if filesystem is None or isinstance(filesystem, pafs.LocalFileSystem):
        if not os.path.isdir(directory):
            return found
        for name in _walk(directory, max_depth=depth, prune_hidden=False):
            if mine(name.rsplit("/", 1)[-1]):
                path = os.path.join(directory, name)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                found.append(path)
        return found
    selector = pafs.FileSelector(directory.rstrip("/"), allow_not_found=True, recursive=of is None)
    for info in filesystem.get_file_info(selector):
        if info.type == pafs.FileType.File and mine(info.base_name):
            with contextlib.suppress(FileNotFoundError):
                filesystem.delete_file(info.path)
            found.append(info.path)
    return found


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[BinaryIO], T],
    *,
    filesystem: pafs.FileSystem | None = None,
    mode: int | None = None,
) -> T:
    """Write a file through ``write(stream)`` so that readers see all of it or none of it.

    Without ``filesystem`` (or with a ``LocalFileSystem``) ``path`` is local: ``write`` fills
    a hidden temporary sibling (created exclusively, with permissions ``mode``; by default
    those of the file it replaces, or what ``open()`` gives a new file), which is flushed,
    fsynced and renamed over ``path``, and the directory is fsynced (:func:`publish`); a
    failure leaves ``path`` as it was and no temporary file behind.

    On any other pyarrow filesystem (object stores) ``write`` uploads a hidden temporary key
    next to ``path`` (``.sygnify-tmp-<uuid>-<name>.tmp``), which is then moved to ``path``: the
    target appears only once complete, and a failure deletes the temporary (best effort;
    a crash can leave it behind, hidden from every glob; like any delete through pyarrow's
    S3 filesystem, the move may leave a ``dir/`` marker, which no glob names either).
    ``mode`` does not apply there.
    Returns what ``write`` returns.
    """
    target = os.fspath(path)
    if filesystem is not None and not isinstance(filesystem, pafs.LocalFileSystem):
        return _object_store_write(filesystem, target, write)
    directory = os.path.dirname(target)
    _makedirs(directory)
    if mode is None and os.path.exists(target):
        mode = stat.S_IMODE(os.stat(target).st_mode)
    temporary = os.path.join(directory, _temporary_name(os.path.basename(target)))
    try:
        # Created with at most ``mode`` (the umask narrows it), then set to exactly ``mode``:
        # a 0600 file is never readable by others, not even for a moment.
        descriptor = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 if mode is None else mode)
        with os.fdopen(descriptor, "wb") as handle:
            if mode is not None:
                os.fchmod(descriptor, mode)
            result = write(handle)
        publish(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return result
