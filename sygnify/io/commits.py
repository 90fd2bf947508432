"""Dataset commits: a dataset write is visible all at once or not at all, on any store.

Object stores cannot rename several objects at once, so a dataset write (local directory,
S3 or Azure prefix) never relies on moving its files into place. Every part file it writes
is named after the write, ``part-<n>-<token>.<ext>``, and the write ends with **one** commit
object in the dataset's log, ``_sygnify_log/<ms>-<token>.<mode>.json`` (``mode``:
``append`` or ``overwrite``; ``ms``: commit time in milliseconds). sygnify's readers
(``stream``, ``scan``, ``query``, ``LargeDataHandler`` sources) honour the log:

* a part file is visible only if its write committed, and, when an ``overwrite`` committed,
  only if its write committed at or after the last one: the parts of a write that failed or
  is still running are never seen, and an ``overwrite`` hides all older data in one step;
* a file sygnify did not name (written by another tool, or by a sygnify version before
  the log) is visible unless an ``overwrite`` committed after it was last modified;
* a dataset without a log is read as it is (every data file but uncommitted parts).

An ``overwrite`` then deletes what it hid (best effort: a failure there changes nothing a
reader sees), and a failed write deletes the parts it wrote. The commit object is the only
request whose success publishes data, and it is idempotent (same key, same bytes), so a
retried request after a lost response never duplicates; a whole write repeated with the
same ``write_id`` finds its commit and writes nothing.

Readers other than sygnify (Spark, DuckDB, Polars on the raw path) do not know the log and
may see uncommitted parts or hidden old data; for them write a table format (Delta Lake).

    >>> log = Log.parse([("1700000000000-" + "a" * 32 + ".append.json", None),
    ...                  ("1700000000500-" + "b" * 32 + ".overwrite.json", 1700000000.5)])
    >>> [log.visible(name, None) for name in (
    ...     "part-00000-" + "a" * 32 + ".parquet",   # committed before the overwrite
    ...     "k=1/part-00000-" + "b" * 32 + ".parquet",  # the overwrite's own part
    ...     "part-00000-" + "c" * 32 + ".parquet")]  # never committed
    [False, True, False]
    >>> log.visible("legacy.parquet", 1700000001.0), log.visible("old.parquet", 1699999999.0)
    (True, False)
    >>> Log({}).visible("x.parquet", None), Log({}).visible("part-00000-" + "c" * 32 + ".parquet", None)
    (True, False)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, Protocol

import pyarrow as pa

from sygnify.errors import ConfigurationError, SchemaError
from sygnify.io.formats import SUFFIX, FileFormat, WriteOptions, write_parts
from sygnify.io.partitions import PARTITIONS_FILE

__all__ = [
    "LOG_DIR",
    "write_committed",
    "Commit",
    "CommitFilter",
    "DatasetFiles",
    "FilePut",
    "Log",
    "PriorWrite",
    "commit",
    "dataset_root",
    "is_part_name",
    "marker_name",
    "part_name",
    "write_token",
]

logger = logging.getLogger(__name__)

#: The directory of a dataset that holds its commit objects (hidden from every glob).
LOG_DIR = "_sygnify_log"
CommitMode = Literal["append", "overwrite"]

_PART = re.compile(r"^part-\d{5}-(?P<token>[0-9a-f]{32})(?:\.[A-Za-z0-9]+)+$")
_MARKER = re.compile(r"^(?P<ms>\d{13})-(?P<token>[0-9a-f]{32})\.(?P<mode>append|overwrite)\.json$")


def write_token(write_id: str | None = None) -> str:
    """The 32-hex token that names a write's parts and commit: derived from ``write_id``
    (so a repeated write finds its commit), else random.

    >>> write_token("load-2026-12-01") == write_token("load-2026-12-01"), len(write_token())
    (True, 32)
    """
    if write_id is None:
        return uuid.uuid4().hex
    return hashlib.sha256(write_id.encode("utf-8")).hexdigest()[:32]


def part_name(token: str, index: int, suffix: str) -> str:
    """The file name of a write's part ``index`` (``suffix`` such as ``.parquet``).

    >>> part_name("0" * 32, 3, ".parquet")
    'part-00003-00000000000000000000000000000000.parquet'
    """
    return f"part-{index:05d}-{token}{suffix}"


def is_part_name(name: str) -> bool:
    """Whether a file name is a part of a committed-write dataset (:func:`part_name`)."""
    return _PART.match(name) is not None


def marker_name(token: str, mode: CommitMode, ms: int) -> str:
    """The commit object's path relative to the dataset root.

    >>> marker_name("0" * 32, "append", 1700000000000)
    '_sygnify_log/1700000000000-00000000000000000000000000000000.append.json'
    """
    return f"{LOG_DIR}/{ms:013d}-{token}.{mode}.json"


def dataset_root(directory: str) -> str:
    """The directory whose log governs ``directory``: hive partition segments (``k=v``) are
    walked up, so reading one partition honours the dataset's log.

    >>> dataset_root("lake/tx/region=eu/day=1/"), dataset_root("lake/tx/"), dataset_root("")
    ('lake/tx/', 'lake/tx/', '')
    """
    segments = directory.rstrip("/").split("/") if directory.strip("/") else []
    while segments and "=" in segments[-1]:
        segments.pop()
    root = "/".join(segments)
    return root + "/" if root or directory.startswith("/") else root


@dataclass(frozen=True, order=True)
class Commit:
    """One commit object: when (``ms``), which write (``token``), how (``mode``)."""

    ms: int
    token: str
    mode: CommitMode = field(compare=False)
    #: the commit object's last-modified time on the store (seconds), where listed
    modified: float | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """The commit object's path relative to the dataset root."""
        return marker_name(self.token, self.mode, self.ms)


@dataclass(frozen=True)
class Log:
    """The commits of one dataset, and which of its files they make visible."""

    commits: dict[str, Commit]

    @classmethod
    def parse(cls, entries: Iterable[tuple[str, float | None]]) -> Log:
        """The log from the names (below ``_sygnify_log/``) and modification times of its objects."""
        commits: dict[str, Commit] = {}
        for name, modified in entries:
            match = _MARKER.match(name.rsplit("/", 1)[-1])
            if match is None:
                continue
            found = Commit(int(match["ms"]), match["token"], match["mode"], modified)  # type: ignore[arg-type]
            previous = commits.get(found.token)
            commits[found.token] = found if previous is None else min(previous, found)
        return cls(commits)

    @property
    def last_overwrite(self) -> Commit | None:
        """The newest ``overwrite`` commit, if any."""
        overwrites = [c for c in self.commits.values() if c.mode == "overwrite"]
        return max(overwrites) if overwrites else None

    def visible(self, path: str, modified: float | None) -> bool:
        """Whether the file at ``path`` (below the dataset root) is part of the dataset now."""
        match = _PART.match(path.rsplit("/", 1)[-1])
        if not self.commits and match is None:
            return True
        last = self.last_overwrite
        if match is not None:  # a write's part: only once that write committed
            found = self.commits.get(match["token"])
            return found is not None and (last is None or found >= last)
        if last is None:
            return True
        # Another tool's file: visible if changed after the overwrite (the store's clock on both).
        return modified is not None and last.modified is not None and modified > last.modified


class CommitFilter:
    """The logs found in a listing, applied to the listing's files.

    ``entries`` are every listed path (hidden ones included) with its modification time;
    each ``<root>/_sygnify_log/`` found governs the files below ``<root>``. ``logs`` adds
    logs listed apart (the dataset root above a partition directory).

    >>> token = "d" * 32
    >>> listing = [(f"t/part-00000-{token}.parquet", 1.0), (f"t/part-00000-{'e' * 32}.parquet", 1.0),
    ...            (f"t/_sygnify_log/1700000000000-{token}.append.json", 2.0), ("u/x.parquet", 1.0)]
    >>> keep = CommitFilter(listing)
    >>> [path for path, modified in listing if keep(path, modified) and not "/_" in path]
    ['t/part-00000-dddddddddddddddddddddddddddddddd.parquet', 'u/x.parquet']
    """

    def __init__(
        self, entries: Iterable[tuple[str, float | None]], *, logs: dict[str, Log] | None = None
    ) -> None:
        found: dict[str, list[tuple[str, float | None]]] = {}
        marker = f"{LOG_DIR}/"
        for path, modified in entries:
            head, sep, name = path.rpartition(marker)
            if sep and (head == "" or head.endswith("/")) and "/" not in name:
                found.setdefault(head, []).append((name, modified))
        self.logs = {root: Log.parse(names) for root, names in found.items()}
        self.logs.update(logs or {})
        # Longest root first: the nearest log governs a file.
        self._roots = sorted(self.logs, key=len, reverse=True)

    def __call__(self, path: str, modified: float | None) -> bool:
        for root in self._roots:
            if path.startswith(root):
                return self.logs[root].visible(path[len(root) :], modified)
        return _NO_LOG.visible(path, modified)


_NO_LOG = Log({})


class DatasetFiles(Protocol):
    """The file operations :func:`commit` needs on one dataset root (paths relative to it)."""

    def put(self, path: str, write: Callable[[BinaryIO], None]) -> None:
        """Write one file atomically (all of it or nothing at ``path``)."""

    def list(self) -> Sequence[tuple[str, float | None]]:
        """Every file below the root, hidden ones included, with its modification time."""

    def read(self, path: str) -> bytes:
        """One file's bytes."""

    def delete(self, paths: Sequence[str]) -> None:
        """Delete files (missing ones are not an error)."""


@dataclass(frozen=True)
class PriorWrite:
    """What a committed write wrote: its parts (paths relative to the root) and rows."""

    files: list[str]
    rows: int
    #: True when this is the record of an earlier write with the same ``write_id``
    repeated: bool = False


def _log_of(files: DatasetFiles) -> tuple[Log, Sequence[tuple[str, float | None]]]:
    listing = files.list()
    return Log.parse(
        (path[len(LOG_DIR) + 1 :], m) for path, m in listing if path.startswith(f"{LOG_DIR}/")
    ), listing


#: Puts one file of a write: ``put(path, write)`` (what :meth:`DatasetFiles.put` takes).
FilePut = Callable[[str, Callable[[BinaryIO], None]], None]


def commit(
    files: DatasetFiles,
    write: Callable[[str, FilePut], list[str]],
    *,
    rows: int,
    mode: CommitMode,
    write_id: str | None = None,
    obsolete: Sequence[str] = (),
    clock: Callable[[], float] = time.time,
) -> PriorWrite:
    """Run ``write(token, put)`` (it writes the parts with ``put``, named with
    :func:`part_name`, and returns their paths) and publish them with one commit object.

    A ``write_id`` whose commit is in the log writes nothing and returns that write's
    record. If ``write`` or the commit fails, the parts written are deleted (best effort)
    and the error propagates: nothing became visible. After an ``overwrite`` commits,
    what it hid is deleted (best effort), and so are the ``obsolete`` files (metadata of the
    old data, such as partition types the new data does not have). Both an ``overwrite``
    and a write with a ``write_id`` (which list the dataset anyway) then delete what
    crashed writes left (:func:`_remove_leftovers`).
    """
    token = write_token(write_id)
    before: Sequence[tuple[str, float | None]] = ()
    if write_id is not None:
        log, before = _log_of(files)
        if (earlier := log.commits.get(token)) is not None:
            record = json.loads(files.read(earlier.name))
            return PriorWrite(list(record["files"]), int(record["rows"]), repeated=True)
    started = clock()
    written: list[str] = []  # every file put, even by a write that fails half-way

    def put(path: str, write_file: Callable[[BinaryIO], None]) -> None:
        written.append(path)
        files.put(path, write_file)

    try:
        parts = write(token, put)
        ms = int(clock() * 1000)
        record = {
            "version": 1,
            "mode": mode,
            "write_id": write_id,
            "rows": rows,
            "files": parts,
            "committed_at_ms": ms,
        }
        body = json.dumps(record, indent=1).encode("utf-8")
    except BaseException:
        _discard(files, written)
        raise
    try:
        files.put(marker_name(token, mode, ms), lambda out: _write_all(out, body))
    except BaseException as error:
        # The store may have done the put and only its answer was lost: the write committed
        # if its commit object is there. If that cannot be told, nothing is deleted.
        try:
            committed = token in _log_of(files)[0].commits
        except Exception:
            raise error from None
        if not committed:
            _discard(files, written)
            raise
    try:
        if mode == "overwrite":
            log, listing = _log_of(files)
            _remove_leftovers(files, listing, token, parts, started, repeated=write_id is not None)
            _remove_hidden(files, log, listing, token, started)
            files.delete(obsolete)
        elif write_id is not None:
            _remove_leftovers(files, before, token, parts, started, repeated=True)
    except Exception:  # the commit stands; what is left is hidden from every reader
        logger.warning("the write committed, but removing files it replaced failed", exc_info=True)
    return PriorWrite(parts, rows)


def write_committed(
    files: DatasetFiles,
    table: pa.Table,
    fmt: FileFormat,
    partition_by: Sequence[str] | None,
    *,
    mode: str,
    write_id: str | None,
    options: WriteOptions | None,
    target: str,
    max_in_flight: int = 1,
) -> PriorWrite:
    """Write ``table`` as one committed write into the dataset of ``files`` (any store).

    The parts (:func:`sygnify.io.formats.write_parts`: hive partitions, the partition types,
    ``options``), named after the write, then the commit (:func:`commit`); ``max_in_flight``
    parts are encoded and put at once. Bad arguments are a ``ConfigurationError`` or
    ``SchemaError`` naming ``target`` before anything is written.
    """
    if mode not in ("append", "overwrite"):
        raise ConfigurationError(
            f"a dataset takes mode 'append' or 'overwrite', not {mode!r} "
            "(mode='merge' needs a table format: format='delta')",
            resource=target,
        )
    if partition_by and fmt == "json":
        raise ConfigurationError("partition_by needs format parquet, csv or ipc", resource=target)
    missing = [column for column in partition_by or [] if column not in table.column_names]
    if missing:
        raise SchemaError(f"partition columns not in the data: {', '.join(missing)}", resource=target)

    def write(token: str, put: FilePut) -> list[str]:
        # Parts are encoded and put max_in_flight at a time (pyarrow and the SDKs release the
        # GIL); the commit waits for all of them.
        with ThreadPoolExecutor(max_in_flight, thread_name_prefix="sygnify-put") as pool:
            pending: list[Future[None]] = []
            written = write_parts(
                table,
                "",
                fmt,
                partition_by,
                name=lambda index: part_name(token, index, SUFFIX[fmt]),
                put=lambda path, write_file: pending.append(pool.submit(put, path, write_file)),
                options=options,
            )
            try:
                for future in pending:
                    future.result()
            finally:
                for future in pending:
                    future.cancel()
        return [path.as_posix() for path in written]

    return commit(
        files,
        write,
        rows=table.num_rows,
        mode="overwrite" if mode == "overwrite" else "append",
        write_id=write_id,
        obsolete=() if partition_by else (PARTITIONS_FILE,),
    )


def _write_all(out: BinaryIO, body: bytes) -> None:
    out.write(body)


def _discard(files: DatasetFiles, written: Sequence[str]) -> None:
    """Delete the parts of a write that did not commit (best effort: they stay hidden)."""
    with contextlib.suppress(Exception):
        files.delete([path for path in written if is_part_name(path.rsplit("/", 1)[-1])])


def _is_temporary(name: str) -> bool:
    """An in-flight file of a write (``sygnify.io.files`` names them hidden, ``.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


def _remove_leftovers(
    files: DatasetFiles,
    listing: Sequence[tuple[str, float | None]],
    token: str,
    parts: Sequence[str],
    started: float,
    *,
    repeated: bool,
) -> None:
    """Delete what crashed writes left: temporaries older than this write (a running
    write's temporary is younger, or, if it is not, that write fails loudly at its rename),
    and, for a write with a ``write_id`` (``repeated``), the parts of its earlier attempts
    that this one did not rewrite (a write runs once per ``write_id`` at a time)."""
    kept = set(parts)
    stale = []
    for path, modified in listing:
        name = path.rsplit("/", 1)[-1]
        if _is_temporary(name):
            if modified is not None and modified < started:
                stale.append(path)
            continue
        match = _PART.match(name)
        if repeated and match is not None and match["token"] == token and path not in kept:
            stale.append(path)
    files.delete(stale)


def _remove_hidden(
    files: DatasetFiles, log: Log, listing: Sequence[tuple[str, float | None]], token: str, started: float
) -> None:
    """Delete what the overwrite ``token`` hid: older commits and their parts, other tools'
    older files, and parts no write committed that are older than this write (crashed
    writes; younger ones may belong to a write still running). ``log`` and ``listing``:
    the dataset after the commit."""
    mine = log.commits[token]
    stale: list[str] = []
    for path, modified in listing:
        name = path.rsplit("/", 1)[-1]
        if path.startswith(f"{LOG_DIR}/"):
            found = Log.parse([(name, modified)]).commits
            if found and next(iter(found.values())) < mine:
                stale.append(path)
            continue
        if any(segment.startswith((".", "_")) for segment in path.split("/")):
            continue  # temporaries of running writes, the partition types, other tools' metadata
        match = _PART.match(name)
        if match is not None and match["token"] not in log.commits:
            if modified is not None and modified < started:
                stale.append(path)
        elif not log.visible(path, modified):
            stale.append(path)
    files.delete(stale)
