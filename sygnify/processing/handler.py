"""``LargeDataHandler``: larger-than-memory processing on Arrow/Polars.

>>> import polars as pl
>>> from sygnify.processing import Aggregate, LargeDataHandler
>>> data = pl.DataFrame({"account": ["a", "b", "a", "c"], "amount": [5.0, 7.0, 1.0, 2.0]})
>>> handler = LargeDataHandler(chunk_size=2, progress=False)
>>> result = handler.process(data, transform=Aggregate(by="account", total=("amount", "sum")), mode="chunked")
>>> result.output.rows(), result.chunks
([('a', 6.0), ('b', 7.0), ('c', 2.0)], 2)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeAlias, get_args

import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from sygnify.config import find_config_file, load_section, validate_config
from sygnify.errors import ConfigurationError
from sygnify.io.arrow import DEFAULT_BATCH_SIZE
from sygnify.processing.checkpoint import Checkpoint
from sygnify.processing.chunk import (
    RUN_ERRORS,
    ChunkProcessor,
    DeadLetter,
    ErrorPolicy,
    classify_error,
    errors_mapped,
    is_fatal,
    raise_mapped,
)
from sygnify.processing.executors import Executor, make_executor
from sygnify.processing.job import Job
from sygnify.processing.memory import START, MemoryBudget, PeakMemory, parse_memory
from sygnify.processing.modes.chunked import run_chunked
from sygnify.processing.modes.incremental import run_incremental
from sygnify.processing.modes.parallel import run_parallel
from sygnify.processing.modes.streaming import run_streaming
from sygnify.processing.plan import Plan
from sygnify.processing.result import ProcessResult, ProgressCallback, Tracker
from sygnify.processing.sinks import as_sink
from sygnify.processing.sources import FileSource, as_source
from sygnify.processing.stream_process import is_stream_source, run_stream
from sygnify.processing.stream_processor import OnLate
from sygnify.processing.stream_run import StreamRun
from sygnify.processing.tables import table_sink, table_source
from sygnify.resilience import RetryPolicy
from sygnify.streams.windows import WindowSpec

__all__ = ["HandlerConfig", "LargeDataHandler", "Mode"]

Mode: TypeAlias = Literal["streaming", "chunked", "parallel", "incremental"]


def _schema(schema: Any) -> pl.Schema | None:
    if schema is None:
        return None
    if isinstance(schema, pa.Schema):
        frame = pl.from_arrow(schema.empty_table())
        assert isinstance(frame, pl.DataFrame)
        return frame.schema
    if isinstance(schema, pl.Schema):
        return schema
    if isinstance(schema, Mapping):
        return pl.Schema(schema)
    raise ConfigurationError(
        f"schema must be a pyarrow/Polars schema or a mapping, got {type(schema).__name__}"
    )


class HandlerConfig(BaseModel):
    """The ``[handler]`` table of ``sygnify.toml``: defaults for :class:`LargeDataHandler`.

    ``executor`` names an executor plugin; ``executor_options`` are validated by that
    executor's config when it starts::

        [handler]
        max_memory = "4GB"
        chunk_size = 200_000
        executor = "processes"
        executor_options = { start_method = "spawn" }
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_memory: int | str | None = None
    chunk_size: int | None = Field(None, ge=1)
    max_workers: int | None = Field(None, ge=1)
    executor: str = "local"
    executor_options: dict[str, Any] = {}
    max_in_flight: int | None = Field(None, ge=1)
    progress: bool = True

    @classmethod
    def from_file(cls, config_file: str | Path | None = None) -> HandlerConfig:
        """The ``[handler]`` table of ``config_file`` (default: ``$SYGNIFY_CONFIG`` or ``./sygnify.toml``)."""
        path = Path(config_file) if config_file is not None else find_config_file()
        section = load_section("handler", config_file=path)
        return validate_config(cls, section, context=f"[handler] of {path}")


class LargeDataHandler:
    """Process data larger than memory in one of four modes.

    ``max_memory`` (bytes or ``"2GB"``) bounds the working memory of a run: chunk sizes
    follow the measured bytes/row. ``chunk_size`` is the largest chunk in rows (default
    100k). ``max_workers``/``executor`` configure parallel mode: ``"local"``/``"threads"``,
    ``"processes"``, ``"dask"`` (``executor_options`` go to the executor, e.g.
    ``{"address": "tcp://scheduler:8786"}``), or an executor instance. An executor named
    by string is started on the first parallel run and reused by later runs (worker
    processes and Dask clusters start once); ``close()`` (or ``with``) stops it. ``progress``
    shows a tqdm bar (the notebook widget in Jupyter); ``on_progress`` is called after each
    chunk. ``retry`` re-reads a source part after a transient error.

    Settings not given here come from the ``[handler]`` table of ``config_file`` (default:
    ``$SYGNIFY_CONFIG``, else ``./sygnify.toml`` if it exists), validated by
    :class:`HandlerConfig`; ``executor_options`` then go through the executor's own config.
    """

    def __init__(
        self,
        *,
        max_memory: int | str | None = None,
        chunk_size: int | None = None,
        max_workers: int | None = None,
        executor: str | Executor | None = None,
        executor_options: Mapping[str, Any] | None = None,
        max_in_flight: int | None = None,
        progress: bool | None = None,
        on_progress: ProgressCallback | None = None,
        retry: RetryPolicy | None = None,
        config_file: str | Path | None = None,
    ) -> None:
        file = HandlerConfig.from_file(config_file)  # what is not given here comes from [handler]
        max_memory = max_memory if max_memory is not None else file.max_memory
        chunk_size = chunk_size if chunk_size is not None else file.chunk_size
        max_workers = max_workers if max_workers is not None else file.max_workers
        max_in_flight = max_in_flight if max_in_flight is not None else file.max_in_flight
        executor_options = executor_options if executor_options is not None else file.executor_options
        progress = progress if progress is not None else file.progress
        if chunk_size is not None and chunk_size < 1:
            raise ConfigurationError(f"chunk_size must be >= 1, got {chunk_size}")
        if max_workers is not None and max_workers < 1:
            raise ConfigurationError(f"max_workers must be >= 1, got {max_workers}")
        if max_in_flight is not None and max_in_flight < 1:
            raise ConfigurationError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.max_memory = parse_memory(max_memory) if max_memory is not None else None
        self.chunk_size = chunk_size or DEFAULT_BATCH_SIZE
        self.max_workers = max_workers or min(4, os.cpu_count() or 1)
        self.executor: str | Executor = executor if executor is not None else file.executor
        self.executor_options = dict(executor_options or {})
        self._pool: Executor | None = None
        self.max_in_flight = max_in_flight
        self.progress = progress
        self.on_progress = on_progress
        self.retry = retry or RetryPolicy()
        self._streams: list[StreamRun] = []  # stream-source runs in progress (stop() ends them)

    def process(
        self,
        source: Any,
        *,
        transform: Any = None,
        mode: Mode = "streaming",
        sink: Any = None,
        checkpoint: str | Path | Checkpoint | None = None,
        cursor: str | None = None,
        on_error: ErrorPolicy = "raise",
        dead_letter: str | Path | None = None,
        schema: Any = None,
        window: WindowSpec | None = None,
        time: str | None = None,
        key: str | Sequence[str] | None = None,
        allowed_lateness: float | timedelta = 0.0,
        close_after: float | None = None,
        on_late: OnLate | None = None,
        idle_timeout: float | None = None,
        max_latency: float | None = None,
        checkpoint_interval: float | None = None,
        isolate: bool | None = None,
    ) -> ProcessResult:
        """Run ``transform`` over ``source`` in ``mode`` and write to ``sink``.

        ``source``: a path/glob (local or ``s3://``...), ``(connector, source)``, a
        :class:`~sygnify.processing.sources.Source`, an Arrow table/reader, a Polars or
        pandas frame, or an iterator of batches. ``transform``: see
        :class:`~sygnify.processing.plan.Plan`. ``sink``: a Parquet path (file or dataset
        directory), an ``.arrow`` path, ``(connector, target)``, a callable, or None to get
        ``result.output``. ``checkpoint``/``cursor``: incremental mode's state and cursor
        column (without a cursor, new files are the new data). ``on_error``: what a bad
        chunk or row does: ``raise`` a typed error, ``skip`` it (recorded in
        ``result.errors``) or write it to ``dead_letter`` (a directory) with the reason.
        ``schema``: the expected schema; chunks are cast to it and rows that do not
        convert are bad rows (default: the first file's schema for file sources).
        ``isolate``: decode each JSON lines and Arrow IPC file once in a subprocess before
        reading it, so that a native reader crashing on a malformed file is a
        ``DataQualityError`` (or a dead letter) naming the file, not the end of the process
        (:func:`sygnify.io.untrusted.read_isolated`; default: on with ``dead_letter``).

        Only :class:`~sygnify.errors.SygnifyError` s leave ``process()``, in every mode:
        Polars, pyarrow and Python errors are mapped (see
        :func:`~sygnify.processing.chunk.classify_error`: ``SchemaError`` for columns and
        types, ``DataQualityError`` for values, ``QueryError`` otherwise), the original as
        ``__cause__``, naming the chunk and file. Under ``skip`` and ``dead_letter`` bad data
        never ends a run: a row that does not parse or convert is a bad row with its reason,
        a chunk the transform fails on is bad as a whole, and a file (or some row groups)
        that cannot be read at all is one bad row naming the file and why; only failures
        of the run itself (a store still unreachable after ``retry``, the memory budget, the
        configuration) raise. Every input row is accounted for: with a transform that keeps
        every row, ``rows_in == rows_out + dead_letters + rows_skipped``.

        ``source`` may also be a stream source (Kafka, Redis Streams, NATS JetStream, MQTT,
        any :class:`~sygnify.streams.StreamSource`), in ``streaming`` mode: the run goes on
        until the source closes, ``idle_timeout`` passes without records or :meth:`stop`
        is called, with micro-batches of at most ``max_latency`` seconds, or windows
        (``window=``, ``time=``, ``key=``, ``allowed_lateness=``, ``close_after=``,
        ``on_late=``) when ``transform`` ends in an :class:`Aggregate`; ``checkpoint=PATH``
        makes it exactly-once towards ``sink`` (saved every ``checkpoint_interval``
        seconds). See :mod:`sygnify.processing.stream_process`.
        """
        stream_options = {
            "window": window,
            "time": time,
            "key": key,
            "allowed_lateness": allowed_lateness,
            "close_after": close_after,
            "on_late": on_late,
            "idle_timeout": idle_timeout,
            "max_latency": max_latency,
            "checkpoint_interval": checkpoint_interval,
        }
        if is_stream_source(source):
            with errors_mapped(_describe(source)):
                return self._process_stream(
                    source,
                    transform,
                    mode,
                    sink,
                    checkpoint,
                    cursor,
                    on_error,
                    dead_letter,
                    schema,
                    stream_options,
                )
        given = sorted(name for name, value in stream_options.items() if value not in (None, 0.0))
        if given:
            raise ConfigurationError(
                f"{', '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to stream sources "
                "(Kafka, Redis, NATS, MQTT), not to files or tables"
            )
        if mode not in get_args(Mode):
            raise ConfigurationError(f"mode must be one of {', '.join(get_args(Mode))}, got {mode!r}")
        if on_error not in get_args(ErrorPolicy):
            raise ConfigurationError(
                f"on_error must be one of {', '.join(get_args(ErrorPolicy))}, got {on_error!r}"
            )
        if on_error == "dead_letter" and dead_letter is None:
            raise ConfigurationError("on_error='dead_letter' needs dead_letter= (a directory for bad rows)")
        if mode == "incremental" and checkpoint is None:
            raise ConfigurationError("incremental mode needs checkpoint= (a file path or Checkpoint)")
        if mode != "incremental" and (checkpoint is not None or cursor is not None):
            raise ConfigurationError("checkpoint= and cursor= apply to mode='incremental' only")
        if isolate is not None and not isinstance(isolate, bool):
            raise ConfigurationError(f"isolate must be True, False or None, got {type(isolate).__name__}")
        with errors_mapped(_describe(source)):
            return self._process_files(
                source,
                transform,
                mode,
                sink,
                checkpoint,
                cursor,
                on_error,
                dead_letter,
                schema,
                on_error == "dead_letter" if isolate is None else isolate,
            )

    def _process_files(
        self,
        source: Any,
        transform: Any,
        mode: Mode,
        sink: Any,
        checkpoint: str | Path | Checkpoint | None,
        cursor: str | None,
        on_error: ErrorPolicy,
        dead_letter: str | Path | None,
        schema: Any,
        isolate: bool = False,
    ) -> ProcessResult:
        the_source = table_source(source) or as_source(source)
        if isinstance(the_source, FileSource):
            the_source.isolate = isolate
        plan = Plan.of(transform)
        the_sink = None if sink is None else table_sink(sink) or as_sink(sink)
        expected = _schema(schema)
        user_schema = expected is not None
        if expected is None and isinstance(the_source, FileSource):
            expected = _first_schema(the_source, on_error)  # drift between files is checked against it
        processor = ChunkProcessor(
            plan,
            schema=expected,
            on_error=on_error,
            dead_letter=DeadLetter(str(dead_letter)) if dead_letter is not None else None,
            retry=self.retry,
        )
        budget = MemoryBudget(self.max_memory, scale=START) if self.max_memory is not None else None
        total = None if mode == "incremental" else _safe_total(the_source)
        tracker = Tracker(mode, progress=self.progress, callback=self.on_progress, total_rows=total)
        with PeakMemory() as peak:
            job = Job(
                source=the_source,
                plan=plan,
                processor=processor,
                sink=the_sink,
                tracker=tracker,
                chunk_rows=self.chunk_size,
                budget=budget,
                peak=peak,
                retry=self.retry,
                max_workers=self.max_workers,
                executor=self._executor() if mode == "parallel" else self.executor,
                executor_options=self.executor_options,
                max_in_flight=self.max_in_flight,
                user_schema=user_schema,
            )
            if budget is not None:
                job.next_chunk_rows()  # fail fast when the budget cannot hold a chunk
            tracker.result.chunk_rows = job.next_chunk_rows()
            try:
                if mode == "streaming":
                    return run_streaming(job)
                if mode == "chunked":
                    return run_chunked(job)
                if mode == "parallel":
                    return run_parallel(job)
                store = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(str(checkpoint))
                return run_incremental(job, store, cursor)
            finally:
                tracker.close_bar()

    def _process_stream(
        self,
        source: Any,
        transform: Any,
        mode: str,
        sink: Any,
        checkpoint: Any,
        cursor: str | None,
        on_error: ErrorPolicy,
        dead_letter: str | Path | None,
        schema: Any,
        options: dict[str, Any],
    ) -> ProcessResult:
        if mode != "streaming":
            raise ConfigurationError(
                f"a stream source runs in mode='streaming' (with window= for windows), not {mode!r}"
            )
        if on_error not in get_args(ErrorPolicy):
            raise ConfigurationError(
                f"on_error must be one of {', '.join(get_args(ErrorPolicy))}, got {on_error!r}"
            )
        if cursor is not None:
            raise ConfigurationError("cursor= applies to mode='incremental' over files and tables")
        if schema is not None:
            raise ConfigurationError(
                "schema= of a stream belongs to its source (e.g. KafkaSource(..., schema=...)), "
                "which dead-letters records that do not match"
            )
        if on_error != "dead_letter" and dead_letter is not None:
            raise ConfigurationError("dead_letter= needs on_error='dead_letter'")
        mine: list[StreamRun] = []

        def started(run: StreamRun) -> None:
            mine.append(run)
            self._streams.append(run)

        try:
            return run_stream(
                source,
                transform,
                sink=sink,
                checkpoint=checkpoint,
                on_error=on_error,
                dead_letter=None if dead_letter is None else str(dead_letter),
                options=options,
                started=started,
            )
        finally:
            self._streams = [run for run in self._streams if run not in mine]

    def stop(self) -> None:
        """End the stream-source runs of :meth:`process` in progress, committing what was processed.

        Safe from another thread or a signal handler
        (``signal.signal(signal.SIGTERM, lambda *_: handler.stop())``); a run ends within
        a quarter of a second plus the step in progress.
        """
        runs, self._streams = self._streams, []
        for run in runs:
            run.stop()

    def _executor(self) -> Executor:
        if not isinstance(self.executor, str):
            return self.executor
        if self._pool is None:
            self._pool = make_executor(
                self.executor, max_workers=self.max_workers, options=self.executor_options
            )
        return self._pool

    def close(self) -> None:
        """Stop the executor this handler started (worker processes, a Dask cluster)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> LargeDataHandler:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # The garbage collector runs this in whatever thread allocates at the time, maybe
        # while that thread holds a lock another thread needs (starting a thread here
        # deadlocked inside Thread.start): a local pool is stopped without waiting for its
        # workers; Dask and Ray clean up at interpreter exit themselves.
        pool = getattr(self, "_pool", None)  # None if __init__ refused its arguments
        self._pool = None
        abandon = getattr(pool, "abandon", None)
        if abandon is not None:
            with contextlib.suppress(Exception):  # interpreter shutdown: the pool may be gone
                abandon()

    def __repr__(self) -> str:
        budget = f"{self.max_memory:,} B" if self.max_memory else "none"
        return (
            f"LargeDataHandler(max_memory={budget}, chunk_size={self.chunk_size:,}, "
            f"max_workers={self.max_workers}, executor={self.executor!r})"
        )


def _first_schema(source: FileSource, on_error: ErrorPolicy) -> pl.Schema | None:
    """The schema a file source's chunks are held to: its first file's. Under ``skip`` and
    ``dead_letter`` a first file that cannot be read does not end the run (the run
    dead-letters it): the next file that can be read sets the schema; None when none can.
    """
    for index, path in enumerate(source.files()):
        try:
            # The whole source's schema is its first file's (with its partition columns).
            return _schema((source if index == 0 else source.only([path])).schema())
        except RUN_ERRORS as exc:
            if on_error == "raise" or is_fatal(classify_error(exc, "", path)):
                raise_mapped(exc, "", path)
    return None


def _describe(source: Any) -> str:
    """What an error names as the source: the path, ``connector:source``, or its kind."""
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], str):
        return f"{getattr(source[0], 'name', type(source[0]).__name__)}:{source[1]}"
    return type(source).__name__


def _safe_total(source: Any) -> int | None:
    try:
        total = source.total_rows()
    except Exception:  # a hint for the progress bar only
        return None
    return int(total) if total is not None else None
