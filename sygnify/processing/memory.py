"""Memory budget: parse sizes, pick chunk sizes from measured bytes/row, track peak RSS.

The budget (``max_memory``) bounds the *working memory* of a run, defined precisely as
the peak resident set size (RSS, sampled every 20 ms and at every chunk boundary) minus
the RSS of the process when ``process()`` started: the interpreter, imported libraries
and the user's own data are not the handler's to control. It is reported as
``ProcessResult.peak_memory_delta`` and tested in a fresh subprocess on a dataset ten
times the budget.

Chunk sizes follow two measurements. The bytes per row of the data give the starting
size, so a wide table gets smaller chunks than a narrow one; then the RSS measured after
every chunk steers it (a feedback loop): chunks grow while the run uses under half of
the budget and halve when it passes three quarters. The feedback is what holds the
bound: a chunk lives as several copies at once (reader buffers, the Arrow batch, the
Polars frame, the transform's output, the sink's encoder) and the allocators of Arrow,
Polars and the C library each keep freed memory for a while, so the memory a run needs
is a fixed cost plus ~10x the chunk's Arrow size, with both terms depending on the
machine and the transform::

    >>> budget = MemoryBudget(parse_memory("64MB"))
    >>> budget.chunk_rows(bytes_per_row=100.0, ceiling=1_000_000)
    64000
    >>> parse_memory("1.5GiB")
    1610612736
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

import psutil
import pyarrow as pa

from sygnify.config import parse_size
from sygnify.errors import ConfigurationError, MemoryBudgetError

__all__ = ["MemoryBudget", "PeakMemory", "parse_memory"]


#: Share of the budget one chunk may take: a chunk exists several times at once (the
#: source's buffers, the Arrow batch, the Polars frame, the transform's output, the sink's
#: buffers, allocator slack), so one copy gets a tenth of the budget.
CHUNK_SHARE = 0.1
#: The feedback loop: grow chunks (x GROW) while the working memory is under LOW of the
#: budget, halve them above HIGH; a run starts at START of the bytes/row estimate.
LOW, HIGH, GROW, START = 0.5, 0.75, 1.25, 0.25
#: Chunks never shrink below this many rows (per-chunk overhead would dominate).
MIN_ROWS = 2_048


def parse_memory(value: int | float | str) -> int:
    """Bytes in ``value``: an int, or a string such as ``"512MB"``, ``"2GiB"``, ``"1.5g"``.

    >>> parse_memory(1024), parse_memory("2 KiB"), parse_memory("1GB")
    (1024, 2048, 1000000000)
    """
    return parse_size(value, what="max_memory")


class MemoryBudget:
    """Chunk sizes that keep a run within ``max_bytes`` of working memory.

    The estimate of bytes per row is refined as chunks are seen (exponential moving
    average), so chunk sizes adapt when rows grow or shrink along the data; ``scale``
    (0 < scale <= 1) is steered by :meth:`feedback` with the working memory measured
    after each chunk.

    >>> budget = MemoryBudget(100 * 2**20, scale=1.0)
    >>> budget.chunk_rows(bytes_per_row=100.0, ceiling=10**9)
    104857
    >>> budget.feedback(90 * 2**20)  # over three quarters of the budget: halve
    >>> budget.chunk_rows(bytes_per_row=100.0, ceiling=10**9)
    52428
    """

    def __init__(self, max_bytes: int, *, share: float = CHUNK_SHARE, scale: float = 1.0) -> None:
        if not 0 < scale <= 1:
            raise ConfigurationError(f"scale must be in (0, 1], got {scale}")
        self.max_bytes = max_bytes
        self.share = share
        self.scale = scale
        self.bytes_per_row: float | None = None

    def feedback(self, used: int) -> None:
        """Steer chunk sizes with ``used``: the working memory measured since the last call."""
        if used > HIGH * self.max_bytes:
            self.scale = max(self.scale / 2, 1e-6)
        elif used < LOW * self.max_bytes:
            self.scale = min(1.0, self.scale * GROW)

    def observe(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Update the bytes/row estimate from a chunk that was just read."""
        if batch.num_rows == 0:
            return
        measured = batch.nbytes / batch.num_rows
        previous = self.bytes_per_row
        self.bytes_per_row = measured if previous is None else 0.7 * previous + 0.3 * measured

    def chunk_rows(self, *, bytes_per_row: float | None = None, ceiling: int) -> int:
        """Rows per chunk: at most ``ceiling``, and small enough for the budget.

        Raises :class:`MemoryBudgetError` when not even a small chunk fits.
        """
        per_row = bytes_per_row if bytes_per_row is not None else self.bytes_per_row
        if per_row is None or per_row <= 0:
            return ceiling
        rows = int(self.max_bytes * self.share / per_row)
        if rows < 1:
            raise MemoryBudgetError(
                f"a budget of {self.max_bytes:,} bytes cannot hold a useful chunk of rows of "
                f"~{per_row:,.0f} bytes each; raise max_memory or select fewer columns",
                resource="max_memory",
            )
        steered = max(min(rows, MIN_ROWS), int(rows * self.scale))
        return max(1, min(ceiling, steered))


class PeakMemory:
    """Sample this process's resident memory in a background thread; keep the maximum.

    What is counted is the memory the process allocated: the resident set minus its
    file-backed pages (``rss - shared`` on Linux). Pages of input files the engine maps
    are the OS's page cache, which it reclaims under pressure without harm to the run,
    and the engine may keep several files mapped at once (on Linux, up to the whole input).

    ``rss`` is injectable for tests (a function returning bytes).

    >>> with PeakMemory(interval=0.01) as peak:
    ...     data = bytearray(10_000_000)
    >>> peak.peak >= peak.baseline > 0
    True
    """

    def __init__(self, *, interval: float = 0.02, rss: Callable[[], int] | None = None) -> None:
        self.interval = interval
        self._rss = rss if rss is not None else psutil.Process().memory_info
        self.baseline = 0
        self.peak = 0
        self._window = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> int:
        value = self._rss()
        if isinstance(value, int):
            return value
        return int(value.rss - getattr(value, "shared", 0))  # no `shared` (macOS): all of it

    def sample(self) -> int:
        """Take one sample now (also called by the handler at chunk boundaries)."""
        current = self._read()
        self.peak = max(self.peak, current)
        self._window = max(self._window, current)
        return current

    def window(self) -> int:
        """Peak minus baseline since the previous call (what the budget's feedback uses)."""
        self.sample()
        peak, self._window = self._window, 0
        return max(0, peak - self.baseline)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.baseline = self.sample()
        self._thread = threading.Thread(target=self._run, name="sygnify-peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    @property
    def delta(self) -> int:
        """Peak minus baseline: the working memory the run used."""
        return max(0, self.peak - self.baseline)
