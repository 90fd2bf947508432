"""Streaming mode: the Polars streaming engine end to end, or a bounded pipeline.

When the source is scannable (files, a connector's ``scan()``, frames), the transform
stays lazy, and no per-chunk error policy, schema enforcement or memory budget is asked
for (:attr:`Job.one_query`), the whole transform runs as one Polars streaming query
straight into the sink (``sink_parquet``/``sink_ipc``). Otherwise a reader thread, the
transform and a writer thread are connected by queues of two chunks, so the reader waits
when the writer falls behind (backpressure) and memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from sygnify.processing.chunk import ChunkOutcome
from sygnify.processing.job import Job
from sygnify.processing.modes.chunked import sequential_chunks
from sygnify.processing.result import ProcessResult
from sygnify.processing.sinks import IPCSink, ParquetSink

__all__ = ["run_streaming"]

_DONE = object()
QUEUE_DEPTH = 2


def run_streaming(job: Job) -> ProcessResult:
    lazy = job.source.lazy()
    if lazy is not None and job.one_query:
        return _polars(job, lazy)
    return _pipelined(job)


def _polars(job: Job, lazy: pl.LazyFrame) -> ProcessResult:
    query = job.plan.whole(lazy)
    sink = job.sink
    result = job.tracker.result
    known = job.source.total_rows()
    # A LazyFrame source knows its row count only once run: count it in the same batch of
    # queries (Polars shares the common sub-plan) or, for sinks, from the plan.
    counter = lazy.select(pl.len())
    if job.plan.aggregate is not None or sink is None:
        if known is None:
            output, counted = pl.collect_all([query, counter], engine="streaming")
            known = int(counted.item())
        else:
            output = query.collect(engine="streaming")
        result.rows_in = known
        result.rows_out = output.height
        result.chunks = 1
        return job.finish(output=output)
    result.rows_in = known if known is not None else int(counter.collect(engine="streaming").item())
    if isinstance(sink, ParquetSink) and not sink.partition_by and sink.filesystem.type_name == "local":
        target = sink.target if sink.single_file else f"{sink.target.rstrip('/')}/part-00000000.parquet"
        query.sink_parquet(target, mkdir=True, engine="streaming")
        result.rows_out = pq.ParquetFile(target).metadata.num_rows
        result.chunks = 1
        job.paths.append(target)
        return job.finish()
    if isinstance(sink, IPCSink) and sink.filesystem.type_name == "local":
        query.sink_ipc(sink.target, mkdir=True, engine="streaming")
        result.rows_out = pl.scan_ipc(sink.target).select(pl.len()).collect().item()
        result.chunks = 1
        job.paths.append(sink.target)
        return job.finish()
    rows_in = result.rows_in
    for index, frame in enumerate(query.collect_batches(chunk_size=job.chunk_rows, engine="streaming")):
        table = frame.to_arrow()
        job.paths += sink.write(table, f"{index:08d}")
        job.tracker.chunk(0, table.num_rows)
    result.rows_in = rows_in
    return job.finish()


def _stage(
    source: Iterable[Any], work: Callable[[Any], Any], out: queue.Queue[Any], stop: threading.Event
) -> Callable[[], None]:
    def run() -> None:
        try:
            for item in source:
                value = work(item)
                while not stop.is_set():
                    try:
                        out.put(value, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            out.put(_DONE)
        except BaseException as exc:
            out.put(exc)

    return run


def _drain(q: queue.Queue[Any]) -> Iterable[Any]:
    while True:
        item = q.get()
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
        target=_stage(_drain(read_q), transform, done_q, stop), name="sygnify-transform"
    )
    reader.start()
    worker.start()
    try:
        for outcome in _drain(done_q):
            job.absorb(outcome)  # the writer: this thread
    finally:
        stop.set()
        for q in (read_q, done_q):
            while not q.empty():
                q.get_nowait()
        reader.join()
        worker.join()
    return job.finish()
