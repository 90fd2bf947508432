"""What a run reports: :class:`ProcessResult`, per-chunk errors, progress.

>>> result = ProcessResult(mode="chunked", rows_in=10, rows_out=8, chunks=2, duration_s=0.5)
>>> result.throughput, result.ok
(20.0, True)
>>> "rows out" in result._repr_html_()
True
"""

from __future__ import annotations

import html
import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from sygnify import events

__all__ = ["ChunkError", "ProcessResult", "Progress", "ProgressCallback"]


@dataclass(frozen=True)
class ChunkError:
    """A chunk (or some of its rows) that failed, and what the error policy did with it."""

    chunk: int
    origin: str
    error_type: str
    message: str
    rows: int
    action: str  # "skipped" | "dead_letter" | "raised"


@dataclass(frozen=True)
class Progress:
    """Handed to a progress callback after every chunk."""

    mode: str
    chunks: int
    rows_in: int
    rows_out: int
    total_rows: int | None
    elapsed_s: float


ProgressCallback = Callable[[Progress], None]


@dataclass
class ProcessResult:
    """The outcome of :meth:`LargeDataHandler.process`.

    ``output`` is the result as a Polars frame when no sink was given (or for an
    aggregation); ``paths`` lists what the sink wrote. ``peak_memory`` is the peak resident
    memory of the process during the run and ``peak_memory_delta`` its growth over the
    memory held when the run started (what ``max_memory`` bounds).
    """

    mode: str
    rows_in: int = 0
    rows_out: int = 0
    chunks: int = 0
    duration_s: float = 0.0
    peak_memory: int = 0
    peak_memory_delta: int = 0
    errors: list[ChunkError] = field(default_factory=list)
    dead_letters: int = 0
    dead_letter_paths: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    output: pl.DataFrame | None = None
    executor: str | None = None
    chunk_rows: int | None = None
    skipped_chunks: int = 0
    #: The run was one Polars streaming query (see :mod:`sygnify.processing.query`), not a
    #: loop of chunks.
    one_query: bool = False

    @property
    def rows_skipped(self) -> int:
        """Input rows ``on_error="skip"`` dropped: bad rows, failed chunks, and each part that
        could not be read at all (one row each, like its dead letter under ``dead_letter``).

        Every input row is accounted for: for a transform that keeps every row,
        ``rows_in == rows_out + dead_letters + rows_skipped`` in every mode (with a filtering
        transform, the difference is what it filtered out).

        >>> result = ProcessResult(mode="chunked", rows_in=10, rows_out=7, dead_letters=0)
        >>> result.errors.append(ChunkError(0, "a.csv", "DataQualityError", "bad", 3, "skipped"))
        >>> result.rows_skipped, result.rows_in == result.rows_out + result.dead_letters + result.rows_skipped
        (3, True)
        """
        return sum(error.rows for error in self.errors if error.action == "skipped")

    @property
    def throughput(self) -> float:
        """Input rows per second."""
        return self.rows_in / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        """True when no chunk or row failed."""
        return not self.errors

    def summary(self) -> dict[str, Any]:
        """The figures as a plain dict (for logs and tables)."""
        return {
            "mode": self.mode,
            "executor": self.executor,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "chunks": self.chunks,
            "chunk_rows": self.chunk_rows,
            "one_query": self.one_query,
            "duration_s": round(self.duration_s, 4),
            "rows_per_s": round(self.throughput, 1),
            "peak_memory_mb": round(self.peak_memory / 2**20, 1),
            "peak_memory_delta_mb": round(self.peak_memory_delta / 2**20, 1),
            "errors": len(self.errors),
            "dead_letters": self.dead_letters,
            "rows_skipped": self.rows_skipped,
        }

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k.replace('_', ' '))}</th>"
            f"<td>{html.escape(str(v))}</td></tr>"
            for k, v in self.summary().items()
        )
        errors = "".join(
            f"<li>chunk {e.chunk} ({html.escape(e.origin)}): {html.escape(e.error_type)}: "
            f"{html.escape(e.message[:200])} [{e.action}, {e.rows} rows]</li>"
            for e in self.errors[:20]
        )
        more = f"<p>... and {len(self.errors) - 20} more</p>" if len(self.errors) > 20 else ""
        error_block = f"<details><summary>errors</summary><ul>{errors}</ul>{more}</details>" if errors else ""
        return f"<div><strong>ProcessResult</strong><table>{rows}</table>{error_block}</div>"


class Tracker:
    """Counts rows and chunks, drives the progress bar/callback and emits monitoring events.

    Thread-safe: parallel mode reports from completion callbacks.
    """

    def __init__(
        self,
        mode: str,
        *,
        progress: bool,
        callback: ProgressCallback | None,
        total_rows: int | None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.result = ProcessResult(mode=mode)
        self._callback = callback
        self._total = total_rows
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._advanced = 0  # rows reported by advance() for the chunk still running
        self._bar: Any = None
        if progress:
            # tqdm.auto picks the notebook widget when running in Jupyter.
            tqdm = importlib.import_module("tqdm.auto").tqdm
            self._bar = tqdm(total=total_rows, unit="rows", unit_scale=True, desc=f"sygnify {mode}")

    @property
    def watched(self) -> bool:
        """Whether a progress bar or callback follows the run."""
        return self._bar is not None or self._callback is not None

    def advance(self, rows_in: int) -> None:
        """Report ``rows_in`` more rows read by a chunk still running (a whole-run query):
        the bar and the callback move; the counts are the chunk's, once it is done."""
        with self._lock:
            self._advanced += rows_in
            result = self.result
            progress = Progress(
                result.mode,
                result.chunks,
                result.rows_in + self._advanced,
                result.rows_out,
                self._total,
                self.elapsed,
            )
            if self._bar is not None:
                self._bar.update(rows_in)
        if self._callback is not None:
            self._callback(progress)

    def chunk(self, rows_in: int, rows_out: int, duration_s: float = 0.0) -> None:
        with self._lock:
            result = self.result
            result.rows_in += rows_in
            result.rows_out += rows_out
            result.chunks += 1
            progress = Progress(
                result.mode, result.chunks, result.rows_in, result.rows_out, self._total, self.elapsed
            )
            if self._bar is not None:
                self._bar.update(max(0, rows_in - self._advanced))
            self._advanced = 0
        events.emit(
            "handler.chunk", mode=result.mode, rows_in=rows_in, rows_out=rows_out, duration_s=duration_s
        )
        if self._callback is not None:
            self._callback(progress)

    def error(self, error: ChunkError, dead_rows: int = 0) -> None:
        with self._lock:
            self.result.errors.append(error)
            self.result.dead_letters += dead_rows

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def finish(self) -> ProcessResult:
        result = self.result
        result.duration_s = self.elapsed
        if self._bar is not None:
            self._bar.close()
        events.emit(
            "handler.finish",
            mode=result.mode,
            rows_in=result.rows_in,
            rows_out=result.rows_out,
            duration_s=result.duration_s,
            chunks=result.chunks,
            errors=len(result.errors),
            peak_memory=result.peak_memory,
        )
        return result

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
