"""Durable incremental state: a JSON document committed atomically, local or on an object store.

The commit protocol of incremental mode: a chunk's output is written under a
deterministic name and closed (fsynced), *then* the checkpoint that counts the chunk as
done is replaced atomically. A crash before the commit leaves at worst an output file that
the rerun rewrites with identical content; a crash after it loses nothing.

>>> import tempfile
>>> store = Checkpoint(tempfile.mkdtemp() + "/job.json")
>>> store.load() is None
True
>>> store.save({"cursor": encode_value(pa.scalar(41))})
>>> decode_value(store.load()["cursor"]).as_py()
41
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as pa_ipc

from sygnify.errors import ConfigurationError, DataQualityError
from sygnify.io.files import atomic_write, remove_temporaries, resolve_filesystem
from sygnify.processing.run_lock import DEFAULT_LEASE_TTL, RunLock, acquire

__all__ = ["Checkpoint", "decode_value", "encode_value", "literal"]

VERSION = 1


def encode_value(value: pa.Scalar) -> str:
    """A cursor value as text, exactly typed (a one-row Arrow IPC stream in base64)."""
    table = pa.table({"v": pa.array([value.as_py()], type=value.type)})
    sink = pa.BufferOutputStream()
    with pa_ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return base64.b64encode(sink.getvalue().to_pybytes()).decode("ascii")


def decode_value(text: str) -> pa.Scalar:
    """The Arrow scalar :func:`encode_value` encoded."""
    table = pa_ipc.open_stream(base64.b64decode(text)).read_all()
    return table.column("v")[0]


def literal(text: str) -> pl.Expr:
    """A Polars literal of an encoded value, with its exact type."""
    table = pa_ipc.open_stream(base64.b64decode(text)).read_all()
    values = pl.from_arrow(table)
    assert isinstance(values, pl.DataFrame)
    return pl.lit(values["v"][0], dtype=values["v"].dtype)


#: Seconds between commits within a run, by default.
DEFAULT_INTERVAL = 5.0


class Checkpoint:
    """Where an incremental job keeps its state: ``path`` (local or ``s3://...``).

    ``interval``: seconds between commits while a run goes on (each source file's end and
    the run's end are always committed). A crash redoes at most about that much work, and
    the rerun's output is still exactly an uninterrupted run's; ``0`` commits after every
    chunk, which costs a state write (and, for aggregations, a merge) per chunk.
    Side files (a merged aggregation's partial state) live next to it, named
    ``<path>.<tag>.arrow``.

    A run holds ``<path>.lock`` while it goes on (see :mod:`sygnify.processing.run_lock`):
    a second run of the same job at the same time raises ``ConcurrentRunError``. On an
    object store the lock is a lease renewed in the background; ``lock_ttl`` is how long
    the lease of a run that died blocks the next one.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        filesystem: pafs.FileSystem | None = None,
        interval: float = DEFAULT_INTERVAL,
        lock_ttl: float = DEFAULT_LEASE_TTL,
    ) -> None:
        if interval < 0:
            raise ConfigurationError(f"checkpoint interval must be >= 0 seconds, got {interval}")
        if lock_ttl < 1:
            raise ConfigurationError(f"checkpoint lock_ttl must be at least 1 second, got {lock_ttl}")
        self.path = str(path)
        self.interval = interval
        self.lock_ttl = lock_ttl
        self.filesystem, self.target = resolve_filesystem(self.path, filesystem)
        self._lock: RunLock | None = None

    @contextmanager
    def lock(self) -> Iterator[RunLock]:
        """Hold the job for one run; every write meanwhile checks it is still held.
        Raises ``ConcurrentRunError`` while another run holds it."""
        with acquire(self.filesystem, self.target, ttl=self.lock_ttl) as held:
            self._lock = held
            try:
                yield held
            finally:
                self._lock = None

    def check_lock(self) -> None:
        """Raise ``ConcurrentRunError`` if the run holding :meth:`lock` lost it (no-op
        outside a run). Called before every write the next commit would count."""
        if self._lock is not None:
            self._lock.check()

    def load(self) -> dict[str, Any] | None:
        """The last committed state, or None before the first commit."""
        info = self.filesystem.get_file_info(self.target)
        if info.type == pafs.FileType.NotFound:
            return None
        with self.filesystem.open_input_stream(self.target) as stream:
            raw = stream.read()
        try:
            state = json.loads(raw)
        except ValueError as exc:
            raise DataQualityError(
                f"checkpoint {self.path} is not valid JSON ({exc}); it was not written by sygnify "
                "or was edited; move it away to start over",
                resource=self.path,
            ) from exc
        if not isinstance(state, dict) or state.get("version", VERSION) != VERSION:
            raise ConfigurationError(f"checkpoint {self.path} has an unknown format", resource=self.path)
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Commit ``state`` atomically (temporary file, fsync, rename, fsync directory)."""
        payload = json.dumps({**state, "version": VERSION}, sort_keys=True).encode()
        self.check_lock()
        atomic_write(self.target, lambda out: out.write(payload), filesystem=self.filesystem)

    def side_path(self, tag: str) -> str:
        return f"{self.target}.{tag}.arrow"

    def write_table(self, tag: str, frame: pl.DataFrame) -> str:
        """Store a frame next to the checkpoint (committed by a later :meth:`save`), as an
        uncompressed Arrow IPC file: state is rewritten often and read back rarely."""
        return self.write_arrow(tag, frame.to_arrow())

    def write_arrow(self, tag: str, table: pa.Table) -> str:
        """Like :meth:`write_table`, for an Arrow table (its types kept exactly)."""
        path = self.side_path(tag)
        self.check_lock()

        def write(out: Any) -> None:
            with pa_ipc.new_file(out, table.schema) as writer:
                writer.write_table(table)

        atomic_write(path, write, filesystem=self.filesystem)
        return path

    def read_arrow(self, tag: str) -> pa.Table:
        """The Arrow table :meth:`write_arrow` stored."""
        with self.filesystem.open_input_file(self.side_path(tag)) as handle:
            return pa_ipc.open_file(handle).read_all()

    def read_table(self, tag: str) -> pl.DataFrame:
        with self.filesystem.open_input_file(self.side_path(tag)) as handle:
            frame = pl.from_arrow(pa_ipc.open_file(handle).read_all())
        assert isinstance(frame, pl.DataFrame)
        return frame

    def delete_side(self, tag: str) -> None:
        path = self.side_path(tag)
        if isinstance(self.filesystem, pafs.LocalFileSystem):
            if os.path.exists(path):
                os.unlink(path)
        elif self.filesystem.get_file_info(path).type != pafs.FileType.NotFound:
            self.filesystem.delete_file(path)

    def sweep(self, state: dict[str, Any] | None) -> list[str]:
        """Delete what interrupted runs left beside the checkpoint: temporaries of its
        files, and side files that the committed ``state`` does not name (a partial state
        written before a commit that never came). Call it holding :meth:`lock`; returns
        the paths deleted.

        >>> import tempfile
        >>> store = Checkpoint(tempfile.mkdtemp() + "/job.json")
        >>> path = store.write_table("s1.part", pl.DataFrame({"x": [1]}))
        >>> [os.path.basename(p) for p in store.sweep({"partial": None})]
        ['job.json.s1.part.arrow']
        """
        directory, _, name = self.target.rpartition("/")
        removed = remove_temporaries(directory or ".", filesystem=self.filesystem, of=name)
        state = state or {}
        tag, keys = state.get("partial"), state.get("partial_keys") or []
        keep = {os.path.basename(self.side_path(f"{tag}.{key}")) for key in keys} if tag else set()
        local = isinstance(self.filesystem, pafs.LocalFileSystem)
        if local:
            names = os.listdir(directory or ".") if os.path.isdir(directory or ".") else []
        else:
            selector = pafs.FileSelector(directory, allow_not_found=True)
            names = [info.base_name for info in self.filesystem.get_file_info(selector)]
        for found in names:
            if found.startswith(f"{name}.") and found.endswith(".arrow") and found not in keep:
                path = f"{directory}/{found}"
                if local:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                else:
                    self.filesystem.delete_file(path)
                removed.append(path)
        return removed

    def __repr__(self) -> str:
        return f"Checkpoint({self.path!r}, interval={self.interval})"
