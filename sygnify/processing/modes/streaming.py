"""Streaming mode: the Polars streaming engine end to end, or a bounded pipeline.

The whole job runs as one Polars streaming query when the engine can run it, whatever
the options (:mod:`~sygnify.processing.query`: the error policy, the schema and the memory
budget are part of the query). Otherwise a reader thread, the transform and a writer
thread are connected by queues of two chunks, so the reader waits when the writer falls
behind (backpressure) and memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sygnify.processing.chunk import ChunkOutcome
from sygnify.processing.job import Job
from sygnify.processing.modes.chunked import run_engine, sequential_chunks
from sygnify.processing.result import ProcessResult

__all__ = ["run_streaming"]

_DONE = object()
QUEUE_DEPTH = 2


def run_streaming(job: Job) -> ProcessResult:
    done = run_engine(job)
    return done if done is not None else _pipelined(job)


def _put(out: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put ``item`` on ``out``, waiting for room until ``stop`` is set (then False)."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _stage(
    source: Iterable[Any], work: Callable[[Any], Any], out: queue.Queue[Any], stop: threading.Event
) -> Callable[[], None]:
    # Every wait watches ``stop``: once the writer stops (it raised, or its caller did), no
    # stage may block on a queue nobody reads or fills, or joining it would hang the run.
    def run() -> None:
        try:
            for item in source:
                if not _put(out, work(item), stop):
                    return
            _put(out, _DONE, stop)
        except BaseException as exc:  # handed to the writer, which raises it (mapped)
            _put(out, exc, stop)

    return run


def _drain(q: queue.Queue[Any], stop: threading.Event) -> Iterable[Any]:
    while True:
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return
            continue
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _pipelined(job: Job) -> ProcessResult:
    # Under a memory budget the queues hold one chunk each: with the chunk being read,
    # transformed and written, up to five chunks are alive, and each gets a fifth of the
    # chunk share of the budget.
    depth = 1 if job.budget is not None else QUEUE_DEPTH
    job.chunks_alive = 3 + 2 * depth if job.budget is not None else 1
    read_q: queue.Queue[Any] = queue.Queue(depth)
    done_q: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()
    reader = threading.Thread(
        target=_stage(sequential_chunks(job), lambda item: item, read_q, stop), name="sygnify-read"
    )

    def transform(item: Any) -> ChunkOutcome:
        label, batch, bad, origin = item
        return job.processor.run(batch, label, origin, bad)

    worker = threading.Thread(
        target=_stage(_drain(read_q, stop), transform, done_q, stop), name="sygnify-transform"
    )
    reader.start()
    worker.start()
    try:
        for outcome in _drain(done_q, stop):
            job.absorb(outcome)  # the writer: this thread
    finally:
        stop.set()
        for q in (read_q, done_q):
            while not q.empty():
                q.get_nowait()
        reader.join()
        worker.join()
    return job.finish()
