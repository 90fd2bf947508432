"""Shadow traffic off the serving path: a small bounded background executor.

A request mirrored to a shadow version must never slow down or change the answer that is
served. :class:`ShadowRunner` runs mirrored work on a few daemon threads behind a bounded
queue; when the queue is full the work is dropped and counted instead of making the caller
wait. :meth:`ShadowRunner.flush` waits until everything queued so far has run, so reports
(and tests) see complete numbers without sleeping::

    >>> seen = []
    >>> runner = ShadowRunner(capacity=8)
    >>> runner.submit(lambda: seen.append("mirrored"))
    True
    >>> runner.flush(timeout=5)
    True
    >>> seen, runner.dropped
    (['mirrored'], 0)
    >>> runner.close()
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from sygnify.errors import ConfigurationError

__all__ = ["ShadowRunner"]

_logger = logging.getLogger(__name__)


class ShadowRunner:
    """Run shadow work in the background: at most ``capacity`` jobs waiting, ``workers`` threads.

    Threads start on the first job (a ``RealTimeML`` without shadows starts none) and are
    daemons, so a forgotten ``close()`` never blocks interpreter exit.
    """

    def __init__(self, *, capacity: int = 256, workers: int = 1) -> None:
        if capacity < 1 or workers < 1:
            raise ConfigurationError(
                f"shadow queue capacity and workers must be >= 1, got capacity={capacity}, workers={workers}"
            )
        self.capacity = capacity
        self.workers = workers
        #: jobs refused because the queue was full (never run)
        self.dropped = 0
        #: jobs that have run (successfully or not)
        self.completed = 0
        self._queue: deque[Callable[[], None]] = deque()
        self._pending = 0  # queued + running
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue ``job``; ``False`` (and ``dropped`` + 1) when the queue is full. Never blocks."""
        with self._cond:
            if len(self._queue) >= self.capacity:
                self.dropped += 1
                return False
            self._queue.append(job)
            self._pending += 1
            if len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name="sygnify-shadow", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._cond.notify_all()
        return True

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                job = self._queue.popleft()
            try:
                job()
            except Exception:  # a shadow must never take the runner down
                _logger.exception("sygnify shadow job failed")
            finally:
                with self._cond:
                    self._pending -= 1
                    self.completed += 1
                    self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Jobs queued or running now."""
        return self._pending

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every job queued so far has run; ``False`` if ``timeout`` (s) ran out first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Run what is queued, then stop the threads (a later ``submit`` starts them again)."""
        with self._cond:
            self._stopping = True
            threads, self._threads = self._threads, []
            self._cond.notify_all()
        for thread in threads:
            thread.join()
        with self._cond:
            self._stopping = False

    def __repr__(self) -> str:
        return (
            f"ShadowRunner(capacity={self.capacity}, workers={self.workers}, "
            f"pending={self._pending}, dropped={self.dropped})"
        )
