"""Untrusted files: checks that run before a decoder sees the bytes, so that no input crashes
the process.

The native readers sygnify uses (pyarrow's JSON reader, Polars' NDJSON and IPC readers,
``polars.from_arrow``) trust their input more than a file from a stranger deserves: a JSON
lines file holding ``null`` makes pyarrow's reader dereference nothing (SIGSEGV), a line
nested a thousand levels deep overflows the stack of every decoder, and a bit-flipped
Arrow IPC file declares buffers of petabytes that Polars tries to allocate (abort). Python
cannot catch any of these, so sygnify refuses such files first, with a
:class:`~sygnify.errors.DataQualityError` naming the file and the line:

* **JSON lines** (:func:`check_json_lines`): valid UTF-8, every non-blank line one JSON
  object, nested at most :attr:`Limits.max_depth` levels (brackets inside strings do not
  count), and no line longer than :attr:`Limits.max_line_bytes`. The scan is vectorised
  (numpy over 4 MiB blocks) and costs a fraction of the decoding it protects.
* **Arrow IPC** (:func:`check_ipc`): the file (or stream) is opened by pyarrow, which
  checks every declared buffer against the bytes present, and each record batch passes
  ``validate(full=True)`` (offsets in bounds, valid UTF-8) before another reader sees it.
* **Every batch handed out** (:func:`validated`): ``validate(full=True)``, so a batch that
  reaches user code never points outside its buffers.

A file is checked once per process while its size and modification time stay the same.

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> good, bad = os.path.join(folder, "good.jsonl"), os.path.join(folder, "bad.jsonl")
    >>> _ = open(good, "w").write('{"a": [1, {"b": "]]]"}]}\\n\\n{"a": []}\\n')
    >>> _ = open(bad, "w").write('{"a": 1}\\nnull\\n')
    >>> check_json_lines(good)
    >>> check_json_lines(bad)
    Traceback (most recent call last):
    ...
    sygnify.errors.DataQualityError: .../bad.jsonl line 2: a JSON lines file holds one JSON object ...
    >>> deep = os.path.join(folder, "deep.jsonl")
    >>> _ = open(deep, "w").write('{"a": ' + "[" * 200 + "]" * 200 + "}\\n")
    >>> check_json_lines(deep)
    Traceback (most recent call last):
    ...
    sygnify.errors.DataQualityError: .../deep.jsonl line 1: nested 201 levels deep, more than ...
"""

from __future__ import annotations

import codecs
import mmap
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as pa_ipc

from sygnify.errors import DataQualityError

__all__ = [
    "LIMITS",
    "READ_ERRORS",
    "Limits",
    "CRASHY_FORMATS",
    "check_file",
    "check_files",
    "check_ipc",
    "check_names",
    "check_json_lines",
    "has_blank_lines",
    "read_isolated",
    "validated",
    "without_blank_lines",
]

#: Bytes scanned at a time.
BLOCK = 4 << 20

#: What decoding untrusted data can raise: Polars' ``PanicException`` (a Rust panic on
#: malformed input) derives from ``BaseException``, so ``except Exception`` misses it.
READ_ERRORS: tuple[type[BaseException], ...] = (Exception, pl.exceptions.PanicException)


@dataclass(frozen=True)
class Limits:
    """What an untrusted file may hold before sygnify hands it to a decoder.

    >>> Limits().max_depth
    32
    """

    #: Deepest nesting of objects and arrays in one JSON value (the top-level object is 1).
    #: Arrow's C data interface refuses schemas nested 64 deep, which Polars needs to export.
    max_depth: int = 32
    #: Longest JSON line, in bytes.
    max_line_bytes: int = 256 << 20


#: The limits every reader applies.
LIMITS = Limits()

_OPENERS = np.zeros(256, dtype=np.int8)
_OPENERS[[ord("{"), ord("[")]] = 1
_DELTA = _OPENERS.copy()
_DELTA[[ord("}"), ord("]")]] = -1
_BLANK = np.zeros(256, dtype=bool)
_BLANK[[ord(" "), ord("\t"), ord("\r"), ord("\n")]] = True


def _fail(origin: str, line: int, why: str) -> DataQualityError:
    return DataQualityError(f"{origin} line {line}: {why}", resource=origin)


def _exact_depths(block: np.ndarray) -> np.ndarray:
    """The deepest nesting reached on each line of ``block`` (lines end at ``\\n``), brackets
    inside JSON strings not counted."""
    n = len(block)
    quote = block == ord('"')
    backslash = block == ord("\\")
    # A quote is escaped when an odd run of backslashes precedes it.
    idx = np.arange(n, dtype=np.int64)
    last_plain = np.maximum.accumulate(np.where(backslash, -1, idx))
    run = np.zeros(n, dtype=np.int64)
    run[1:] = idx[:-1] - last_plain[:-1]
    real_quote = quote & (run % 2 == 0)
    newline = block == ord("\n")
    line_of = np.cumsum(newline) - newline  # the line each byte belongs to (a newline ends its line)
    starts = np.concatenate(([0], np.flatnonzero(newline) + 1))
    # String parity restarts on every line (JSON strings cannot hold a raw newline).
    quotes_before = np.cumsum(real_quote) - real_quote
    base_quotes = quotes_before[np.minimum(starts, n - 1)] if n else quotes_before
    in_string = ((quotes_before - base_quotes[line_of]) % 2) == 1
    delta = np.where(in_string, 0, _DELTA[block]).astype(np.int64)
    depth = np.cumsum(delta)
    before = depth - delta
    base_depth = before[np.minimum(starts, n - 1)]
    relative = depth - base_depth[line_of]
    lines = int(line_of[-1]) + 1 if n else 0
    deepest = np.zeros(lines, dtype=np.int64)
    np.maximum.at(deepest, line_of, relative)
    return deepest


def _check_block(block: np.ndarray, origin: str, first_line: int, limits: Limits) -> None:
    n = len(block)
    ends = np.flatnonzero(block == ord("\n"))
    try:
        codecs.decode(block.data, "utf-8")  # no copy of the block; ~2 GB/s
    except UnicodeDecodeError as exc:
        line = int(np.searchsorted(ends, exc.start))
        column = exc.start - (int(ends[line - 1]) + 1 if line else 0)
        raise _fail(origin, first_line + line, f"invalid UTF-8 at byte {column}") from exc
    starts = np.concatenate(([0], ends + 1))
    bounds = np.concatenate((ends, [n]))
    lengths = bounds - starts
    if int(lengths.max()) > limits.max_line_bytes:
        line = int(np.argmax(lengths > limits.max_line_bytes))
        raise _fail(
            origin,
            first_line + line,
            f"a line of {int(lengths[line])} bytes, more than the limit of {limits.max_line_bytes}"
            " (Limits.max_line_bytes)",
        )
    # Each line must open an object; lines that start with white space are looked at one by one.
    filled = lengths > 0
    first = np.zeros(len(starts), dtype=np.uint8)
    first[filled] = block[starts[filled]]
    for odd in np.flatnonzero(first != ord("{")):
        text = block[starts[odd] : bounds[odd]].tobytes().strip()
        if text and text[:1] != b"{":
            char = text[:1].decode("latin-1")
            raise _fail(
                origin,
                first_line + int(odd),
                f"a JSON lines file holds one JSON object per line, this line starts with {char!r}",
            )
    # Cheap bound first: a line cannot nest deeper than the brackets it opens.
    opened = np.add.reduceat(_OPENERS[block], np.minimum(starts, n - 1), dtype=np.int64)
    opened[~filled] = 0
    for suspect in np.flatnonzero(opened > limits.max_depth):
        deepest = int(_exact_depths(block[starts[suspect] : bounds[suspect]]).max())
        if deepest > limits.max_depth:
            raise _fail(
                origin,
                first_line + int(suspect),
                f"nested {deepest} levels deep, more than the limit of {limits.max_depth} (Limits.max_depth)",
            )


def _blocks(stream: BinaryIO) -> Iterator[tuple[np.ndarray, int]]:
    """(block, number of its first line) of whole lines, ~:data:`BLOCK` bytes each."""
    carry = b""
    line = 1
    while True:
        data = stream.read(BLOCK)
        if not data:
            if carry:
                yield np.frombuffer(carry, dtype=np.uint8), line
            return
        data = carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        whole, carry = data[: cut + 1], data[cut + 1 :]
        block = np.frombuffer(whole, dtype=np.uint8)
        yield block, line
        line += int(np.count_nonzero(block == ord("\n")))


def _open(path: str, filesystem: pafs.FileSystem | None) -> BinaryIO:
    if filesystem is None:
        return open(path, "rb")
    stream: BinaryIO = filesystem.open_input_stream(path)
    return stream


def check_json_lines(
    path: str,
    filesystem: pafs.FileSystem | None = None,
    *,
    limits: Limits = LIMITS,
    origin: str | None = None,
) -> None:
    """Raise :class:`~sygnify.errors.DataQualityError` unless every line of the JSON lines
    file ``path`` is blank or one JSON object within ``limits`` (see the module's example)."""
    where = origin or path
    with _open(path, filesystem) as stream:
        for block, first_line in _blocks(stream):
            _check_block(block, where, first_line, limits)


def check_ipc(path: str, filesystem: pafs.FileSystem | None = None, *, origin: str | None = None) -> None:
    """Raise :class:`~sygnify.errors.DataQualityError` unless the Arrow IPC file (or stream)
    ``path`` opens and every record batch in it passes ``validate(full=True)``.

    >>> import os, tempfile, pyarrow as pa, pyarrow.ipc as ipc
    >>> path = os.path.join(tempfile.mkdtemp(), "t.arrow")
    >>> with ipc.new_file(path, pa.schema([("s", pa.string())])) as out:
    ...     out.write_table(pa.table({"s": ["a", "b"]}))
    >>> check_ipc(path)
    >>> data = bytearray(open(path, "rb").read()); data[len(data) // 2] ^= 0xFF
    >>> _ = open(path, "wb").write(bytes(data[: len(data) // 2]))
    >>> check_ipc(path)
    Traceback (most recent call last):
    ...
    sygnify.errors.DataQualityError: .../t.arrow is not a valid Arrow IPC file: ...
    """
    where = origin or path
    try:
        if filesystem is None:
            source: pa.NativeFile = pa.memory_map(path)
        else:
            source = pa.BufferReader(filesystem.open_input_file(path).read_buffer())
        with source:
            try:
                reader = pa_ipc.open_file(source)
                batches: Iterable[pa.RecordBatch] = (
                    reader.get_batch(i) for i in range(reader.num_record_batches)
                )
            except pa.ArrowInvalid:
                source.seek(0)
                batches = pa_ipc.open_stream(source)
            for batch in batches:
                batch.validate(full=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataQualityError(f"{where} is not a valid Arrow IPC file: {exc}", resource=where) from exc


def without_blank_lines(data: bytes) -> bytes:
    """CSV ``data`` less its empty lines, every line ended by ``\\n`` (``\\r\\n`` and a bare
    ``\\r`` end a line too, as pyarrow and DuckDB read them).

    >>> without_blank_lines(b"a,b\\n\\n1,2\\r\\n\\r\\n3,4\\r5,6\\n\\n")
    b'a,b\\n1,2\\n3,4\\n5,6\\n'
    """
    return b"".join(line.rstrip(b"\r\n") + b"\n" for line in data.splitlines() if line)


#: An empty line, or a line that ends in a bare carriage return (old Mac line ends).
_ODD_LINE = re.compile(rb"\n\r?\n|\r(?!\n)")


def has_blank_lines(path: str) -> bool:
    """Whether the local CSV file ``path`` holds an empty line or bare-CR line ends, which
    Polars reads differently from pyarrow and DuckDB (a row of nulls; no line break at all)
    (memory-mapped search, about 2 GB/s; remembered while the file's size and modification
    time are unchanged).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> _ = open(path, "w").write("a\\n1\\n\\n2\\n")
    >>> has_blank_lines(path)
    True
    """
    key = _file_key(path)
    if key is None:
        return False
    known = _recall(key, "blank")
    if isinstance(known, bool):
        return known
    if key[1] == 0:
        found = False
    else:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            found = data[:1] == b"\n" or data[:2] == b"\r\n" or _ODD_LINE.search(data) is not None
    _remember(key, "blank", found)
    return found


def _file_key(path: str) -> tuple[str, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


#: What was found about a file while its (real path, size, mtime) stay the same, by kind of
#: check: ``"blank"`` (a bool), or the isolation flag of :func:`check_files` (None: clean; a
#: text: why the file was refused). The 4,096 most recent are kept.
_CHECKED: OrderedDict[tuple[tuple[str, int, int], object], object] = OrderedDict()
_CHECKED_LOCK = threading.Lock()
_UNSEEN = object()


def _recall(key: tuple[str, int, int], kind: object) -> object:
    with _CHECKED_LOCK:
        return _CHECKED.get((key, kind), _UNSEEN)


def _remember(key: tuple[str, int, int] | None, kind: object, verdict: object) -> None:
    if key is None:
        return
    with _CHECKED_LOCK:
        _CHECKED[(key, kind)] = verdict
        while len(_CHECKED) > 4096:
            _CHECKED.popitem(last=False)


#: Formats whose native readers are known to crash the process on malformed input.
CRASHY_FORMATS = ("json", "ipc")

#: What a reader in an isolated subprocess may take before it counts as failed.
ISOLATED_TIMEOUT_S = 120.0
ISOLATED_MEMORY = 4 << 30

_ISOLATED_READ = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
fmt, paths = sys.argv[1], sys.argv[3:]
import polars as pl, pyarrow as pa, pyarrow.ipc as ipc, pyarrow.json as pj
for index, path in enumerate(paths):
    try:
        if fmt == "json":
            pl.from_arrow(pj.read_json(path))
            pl.read_ndjson(path)
        else:
            with pa.memory_map(path) as source:
                try:
                    reader = ipc.open_file(source)
                    batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
                except pa.ArrowInvalid:
                    source.seek(0)
                    batches = list(ipc.open_stream(source))
            for batch in batches:
                batch.validate(full=True)
                pl.from_arrow(batch)
            pl.read_ipc(path, memory_map=False)
    except MemoryError:
        print(f"memory {index}", flush=True)
        continue
    except Exception:
        pass  # a decoding error: the in-process reader reports it precisely
    print(f"ok {index}", flush=True)
"""


def read_isolated(paths: Sequence[str], fmt: str) -> dict[str, str]:
    """Decode the local files ``paths`` with every native reader sygnify uses for ``fmt``, in
    a subprocess, and say which of them crashed it (a signal), hung it
    (:data:`ISOLATED_TIMEOUT_S`) or needed more than :data:`ISOLATED_MEMORY` of address
    space: ``{path: reason}``. One subprocess reads the files in turn and is restarted after
    the file that brought it down. A decoding error is left for the in-process reader to
    report precisely.

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> good, bad = os.path.join(folder, "good.jsonl"), os.path.join(folder, "bad.jsonl")
    >>> _ = open(good, "w").write('{"a": 1}\\n'); _ = open(bad, "w").write("null\\n")
    >>> read_isolated([good, bad, good], "json")  # doctest: +ELLIPSIS
    {'.../bad.jsonl': 'the json reader crashed on this file (signal 11) in an isolated subprocess'}
    """
    import subprocess
    import sys

    failed: dict[str, str] = {}
    todo = list(paths)
    while todo:
        command = [sys.executable, "-c", _ISOLATED_READ, fmt, str(ISOLATED_MEMORY), *todo]
        try:
            done = subprocess.run(command, capture_output=True, timeout=ISOLATED_TIMEOUT_S, check=False)
            output, code = done.stdout, done.returncode
            why = f"the {fmt} reader crashed on this file (signal {-code}) in an isolated subprocess"
        except subprocess.TimeoutExpired as exc:
            output = exc.stdout or b""
            code = -1
            why = f"reading it took more than {ISOLATED_TIMEOUT_S:g} s in an isolated subprocess"
        finished = 0
        for line in output.decode().splitlines():
            status, index = line.split()
            if status == "memory":
                failed[todo[int(index)]] = f"decoding it needs more than {ISOLATED_MEMORY >> 30} GiB"
            finished = int(index) + 1
        if code == 0 or finished >= len(todo):
            break
        failed[todo[finished]] = why
        todo = todo[finished + 1 :]
    return failed


def check_file(
    path: str,
    fmt: str,
    filesystem: pafs.FileSystem | None = None,
    *,
    limits: Limits = LIMITS,
    origin: str | None = None,
    isolate: bool = False,
) -> None:
    """Run the check of ``fmt`` (``"json"``, ``"ipc"``; other formats need none) on ``path``;
    with ``isolate``, a local file is also decoded once in a subprocess
    (:func:`read_isolated`). A local file's verdict is remembered while its size and
    modification time are unchanged."""
    check_files([path], fmt, filesystem, limits=limits, isolate=isolate, origins=[origin or path])


def check_files(
    paths: Sequence[str],
    fmt: str,
    filesystem: pafs.FileSystem | None = None,
    *,
    limits: Limits = LIMITS,
    isolate: bool = False,
    origins: Sequence[str] | None = None,
) -> None:
    """:func:`check_file` on each of ``paths``, the isolated reads in one subprocess: the
    first file that fails is a :class:`~sygnify.errors.DataQualityError` naming it."""
    if fmt not in CRASHY_FORMATS:
        return
    local = filesystem is None or isinstance(filesystem, pafs.LocalFileSystem)
    names = list(origins) if origins is not None else list(paths)
    pending: list[tuple[str, str, tuple[str, int, int] | None]] = []
    for path, where in zip(paths, names):
        key = _file_key(path) if local else None
        if local and key is None:
            continue  # the reader names a missing file itself
        if key is not None:
            verdict = _recall(key, isolate)
            if verdict is _UNSEEN:
                verdict = _recall(key, True)  # an isolated check covers the plain one
            if isinstance(verdict, str):
                raise DataQualityError(f"{where}: {verdict}", resource=where)
            if verdict is None:
                continue
        try:
            if fmt == "json":
                check_json_lines(path, filesystem, limits=limits, origin=where)
            else:
                check_ipc(path, filesystem, origin=where)
        except DataQualityError as exc:
            _remember(key, isolate, str(exc)[len(where) + 2 :] if str(exc).startswith(where) else str(exc))
            raise
        pending.append((path, where, key))
    failed = read_isolated([path for path, _, _ in pending], fmt) if isolate and local and pending else {}
    for path, _, key in pending:
        _remember(key, isolate, failed.get(path))
    for path, where, _ in pending:
        if path in failed:
            raise DataQualityError(f"{where}: {failed[path]}; the file is malformed", resource=where)


def check_names(names: Sequence[str], origin: str) -> None:
    """Refuse column names holding a NUL character (a CSV header with ``\\0``): Polars
    panics when it hands such a column to Arrow.

    >>> check_names(["a", "b\\x00c"], "t.csv")
    Traceback (most recent call last):
    ...
    sygnify.errors.DataQualityError: t.csv: column name 'b\\x00c' holds a NUL character
    """
    for name in names:
        if "\x00" in name:
            raise DataQualityError(f"{origin}: column name {name!r} holds a NUL character", resource=origin)


def validated(batches: Iterable[pa.RecordBatch], origin: str) -> Iterator[pa.RecordBatch]:
    """``batches``, each checked with ``validate(full=True)``: a
    :class:`~sygnify.errors.DataQualityError` naming ``origin`` instead of a batch whose
    offsets or text point outside its buffers.

    >>> [b.num_rows for b in validated(pa.table({"x": [1, 2]}).to_batches(), "t")]
    [2]
    """
    for batch in batches:
        try:
            batch.validate(full=True)
        except pa.ArrowInvalid as exc:
            raise DataQualityError(f"{origin}: invalid data: {exc}", resource=origin) from exc
        yield batch
