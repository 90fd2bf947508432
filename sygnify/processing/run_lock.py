"""One run at a time per incremental checkpoint.

Two runs of the same incremental job at once (an overlapping schedule, a retry started
while the first attempt still runs) would both take the same new data. The second run
therefore stops with :class:`~sygnify.errors.ConcurrentRunError` before it reads anything.

- **Local checkpoints** take an exclusive ``flock`` on ``<checkpoint>.lock``. The kernel
  drops it when the process ends, however it ends, so a rerun after a crash starts at once.
- **Object-store checkpoints** keep a lease object ``<checkpoint>.lock`` (owner and expiry).
  A heartbeat thread renews it every third of ``ttl`` seconds. A run that died leaves a
  lease that expires after at most ``ttl`` seconds; then the next run takes it over. Every
  commit, and an aggregation's result write, first checks that the lease still names this
  run and was renewed within ``ttl`` (fencing), so a run that lost its lease (paused, or
  unable to renew, for longer than ``ttl``) stops before it writes. Object stores offer no
  compare-and-swap through pyarrow, so the check and the next write are a few milliseconds
  apart: the fencing covers a paused run, not two runs taking an expired lease in the same
  milliseconds. Expiry compares wall clocks: hosts that share a checkpoint need clocks within
  a few seconds of each other.

>>> import tempfile
>>> path = tempfile.mkdtemp() + "/job.json"
>>> import pyarrow.fs as pafs
>>> with acquire(pafs.LocalFileSystem(), path):
...     try:
...         acquire(pafs.LocalFileSystem(), path)
...     except ConcurrentRunError as exc:
...         print(type(exc).__name__)
ConcurrentRunError
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import Any

import pyarrow.fs as pafs

from sygnify.errors import ConcurrentRunError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_LEASE_TTL", "FileLock", "Lease", "RunLock", "acquire"]

#: Seconds an object-store lease stays valid without renewal.
DEFAULT_LEASE_TTL = 30.0


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "run": uuid.uuid4().hex, "since": time.time()}


def _describe(owner: dict[str, Any]) -> str:
    if "pid" not in owner or "host" not in owner:
        return "owner unknown"
    try:
        since = time.strftime(" (since %Y-%m-%d %H:%M:%S)", time.localtime(float(owner["since"])))
    except (KeyError, TypeError, ValueError):
        since = ""
    return f"pid {owner['pid']} on {owner['host']}{since}"


def _expires(lease: dict[str, Any]) -> float:
    """A lease's expiry (wall clock); a lease without a readable one has expired."""
    try:
        return float(lease["expires"])
    except (KeyError, TypeError, ValueError):
        return 0.0


class RunLock:
    """Held by one run for its whole duration; :meth:`check` before every commit."""

    def check(self) -> None:
        """Raise :class:`ConcurrentRunError` when this run no longer holds the lock."""

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.release()


class FileLock(RunLock):
    """An exclusive ``flock`` on a local file (released by the kernel if the process dies)."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._fd: int | None = None
        try:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                else:  # pragma: no cover - Windows
                    import msvcrt

                    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except OSError as exc:
                raise ConcurrentRunError(
                    f"another run of this incremental job is in progress ({self._holder()}); it holds {path}",
                    resource=path,
                ) from exc
            # Who holds it, for the message of a run that is refused (informational only).
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(_owner()).encode())
        except BaseException:
            os.close(fd)  # drops the lock if it was taken
            raise
        self._fd = fd

    def _holder(self) -> str:
        try:
            with open(self.path, "rb") as handle:
                return _describe(json.loads(handle.read() or b"{}"))
        except (OSError, ValueError):
            return "owner unknown"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class Lease(RunLock):
    """A lease object on a filesystem without locks (an object store), renewed in the background."""

    def __init__(self, filesystem: pafs.FileSystem, path: str, *, ttl: float = DEFAULT_LEASE_TTL) -> None:
        self.filesystem, self.path, self.ttl = filesystem, path, ttl
        self.owner = _owner()
        self._mutex = threading.Lock()
        self._lost: str | None = None
        self._stop = threading.Event()
        #: When this run last wrote its lease (monotonic): past ``ttl``, it may be someone else's.
        self._renewed = 0.0
        current = self._read()
        if (
            current is not None
            and current.get("run") != self.owner["run"]
            and _expires(current) > time.time()
        ):
            raise ConcurrentRunError(
                f"another run of this incremental job is in progress ({_describe(current)}); its lease "
                f"{path} expires at {time.ctime(_expires(current))} if that run has died",
                resource=path,
            )
        self._write()
        try:
            self.check()  # a run that wrote at the same moment and came last wins
        except ConcurrentRunError:
            raise  # the lease is the winner's: leave it
        except BaseException:
            self._delete_own()  # else an immediate retry would be refused by this run's own lease
            raise
        self._heartbeat = threading.Thread(
            target=self._renew_until_stopped, name="sygnify-lease", daemon=True
        )
        self._heartbeat.start()

    def _read(self) -> dict[str, Any] | None:
        try:
            with self.filesystem.open_input_stream(self.path) as stream:
                value = json.loads(stream.read())
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # a torn or foreign lease object holds nothing
        return value if isinstance(value, dict) else None

    def _write(self) -> None:
        written = time.monotonic()
        body = json.dumps({**self.owner, "expires": time.time() + self.ttl}).encode()
        with self.filesystem.open_output_stream(self.path) as stream:
            stream.write(body)
        self._renewed = written

    def _delete_own(self) -> None:
        try:
            current = self._read()
            if current is not None and current.get("run") == self.owner["run"]:
                self.filesystem.delete_file(self.path)
        except OSError:
            pass  # the lease expires within ttl anyway; never mask the run's own outcome

    def check(self) -> None:
        with self._mutex:
            self._verify()

    def _verify(self) -> None:
        """Raise unless the lease object still names this run (call with the mutex held)."""
        if self._lost is None and time.monotonic() - self._renewed >= self.ttl:
            # Renewals failed (or this process was paused) for a whole ttl: another run may
            # have found the lease expired and taken over, even if it still names this run.
            self._lost = f"the lease {self.path} was not renewed for {self.ttl} s and expired"
        if self._lost is None:
            current = self._read()
            if current is None:
                self._lost = f"the lease {self.path} was deleted"
            elif current.get("run") != self.owner["run"]:
                self._lost = f"the lease {self.path} now belongs to {_describe(current)}"
        if self._lost is not None:
            raise ConcurrentRunError(
                f"this run lost its lock on the incremental job ({self._lost}); it stopped before "
                "committing anything more, so a rerun continues from the last commit without duplicates",
                resource=self.path,
            )

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                with self._mutex:
                    self._verify()
                    self._write()
            except ConcurrentRunError:
                return
            except OSError:
                continue  # a failed renewal is retried; the lease lasts ttl

    def release(self) -> None:
        self._stop.set()
        self._heartbeat.join()
        with self._mutex:
            self._delete_own()


def acquire(filesystem: pafs.FileSystem, checkpoint: str, *, ttl: float = DEFAULT_LEASE_TTL) -> RunLock:
    """Lock the job of ``checkpoint`` for one run, or raise :class:`ConcurrentRunError`."""
    path = f"{checkpoint}.lock"
    if isinstance(filesystem, pafs.LocalFileSystem):
        return FileLock(path)
    return Lease(filesystem, path, ttl=ttl)
