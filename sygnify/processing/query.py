"""A whole run as one Polars streaming query: typing, the error policy, the transform, the sink.

Every mode takes this path first (:func:`run_query`) and keeps its own loop of chunks only
for what the engine cannot do. The query is built so that clean data never leaves the
engine:

- **Typing.** Each group of input files with one schema is a scan. Columns whose type differs
  from the expected schema (``schema=``, or the first file's) are cast non-strictly inside
  the query; a row is *bad* when a cast turned a value into null. Bad rows are filtered out
  of the output and, under ``on_error="dead_letter"``, written by a second sink of the same
  query (``pl.collect_all``), with their reason, as ``dead-<label>-rows.parquet``: the same
  file the chunked path writes, every column as text plus ``_error``, ``_origin`` (the
  file) and ``_chunk``. Under ``skip`` they are counted by a third, tiny query; under
  ``raise`` a bad row fails the run with the :class:`SchemaError` the chunked path raises,
  and the output written to a temporary name is removed.
- **The sink.** Local Parquet files and dataset directories and Arrow IPC files are the
  engine's own sinks (``sink_parquet``/``sink_ipc``), written under a temporary name and
  renamed, so a reader never sees half a file. Every other sink (partitioned datasets,
  object stores, connectors, callbacks) is driven from ``sink_batches``: the engine hands
  over batches of ``chunk_size`` rows while it computes the next ones.
- **The budget.** Polars' streaming engine runs in bounded memory: a fixed part and a few
  morsels per thread (:func:`engine_bytes`). A ``max_memory`` steers the morsel size
  (:func:`morsel_rows`, ``pl.Config(streaming_chunk_size=...)`` for the query): a large
  budget costs nothing, 256 MB holds with morsels of tens of thousands of rows, and a
  budget too small even for morsels of ``MIN_MORSEL_BYTES`` keeps the chunk loop, where chunk sizes
  follow the measured memory.
- **Failures.** A query that fails (a transform that raises on some data, a CSV line the
  scanner cannot parse) is not reported from here: its temporary files are removed and the
  mode's chunk loop reruns the job, which names the failing chunk and applies the error
  policy row by row. A sink that may have received batches before the failure is only
  rerun when rewriting a label replaces its files (dataset directories); otherwise the
  error is raised as the chunked path would.

What stays on the chunk loop: functions of an eager ``DataFrame`` (they need the chunk in
memory), files whose columns differ from the expected ones, budgets below
:func:`engine_bytes` at the least morsel, dead letters on an object store, sources without a lazy scan
(iterators of batches), and processes/Dask/Ray executors (their tasks fuse queries
themselves, see :mod:`~sygnify.processing.modes.fused`).

>>> import polars as pl
>>> lf = pl.LazyFrame({"x": ["1", "2", "zz"]})
>>> good, bad = typed(lf, pl.Schema({"x": pl.Int64}), origin="t", label="00000000")
>>> good.collect()["x"].to_list(), bad.collect()["_error"].to_list()
([1, 2], ['x: not a valid Int64'])
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sygnify.errors import SchemaError, SygnifyError
from sygnify.processing.aggregate import Partial
from sygnify.processing.chunk import RUN_ERRORS, cast_expr, raise_mapped
from sygnify.processing.result import ChunkError, ProcessResult, Tracker
from sygnify.processing.sinks import IPCSink, ParquetSink, Sink, polars_compression
from sygnify.processing.sources import FileSource, IteratorSource, TableSource

if TYPE_CHECKING:
    import pyarrow as pa

    from sygnify.processing.job import Job

__all__ = [
    "QueryOutcome",
    "eligible",
    "engine_bytes",
    "morsel_rows",
    "record",
    "run_query",
    "run_query_job",
    "typed",
]

BAD = "__sygnify_bad"
#: The streaming engine's memory, measured on 2 cores (peak RSS growth of ``sink_parquet``
#: over a filter/join/with_columns of 5M-20M rows at several morsel sizes): a fixed part
#: (readers', writers' buffers) and, per thread, about ``MORSEL_COPIES`` morsels alive at once.
ENGINE_FIXED = 80 * 2**20
MORSEL_COPIES = 40
ENGINE_MARGIN = 1.4
#: Morsel rows: the engine's own size (no budget, or a large one), and the least a budget
#: may ask for (below it the chunk loop, whose chunks follow measured memory, takes over).
MORSEL_ROWS, MIN_MORSEL_ROWS = 100_000, 1_000
#: The least bytes a morsel may hold under a budget (narrow rows: more rows than the minimum).
MIN_MORSEL_BYTES = 256 * 2**10
#: Bytes per row assumed when the source cannot tell (as Arrow, after the transform).
DEFAULT_ROW_BYTES = 64.0
#: Rows read to measure the bytes per row of a Parquet source.
SAMPLE_ROWS = 4_096


def engine_bytes(
    morsel_rows: int = MORSEL_ROWS, bytes_per_row: float = DEFAULT_ROW_BYTES, threads: int | None = None
) -> int:
    """The memory one streaming query needs, with margin, at ``morsel_rows`` rows per
    morsel of ``bytes_per_row`` bytes, on ``threads`` threads (default: Polars' pool).

    >>> engine_bytes(100_000, 40.0, threads=2) // 2**20, engine_bytes(20_000, 40.0, threads=2) // 2**20
    (539, 197)
    """
    count = threads if threads is not None else pl.thread_pool_size()
    return int(ENGINE_MARGIN * (ENGINE_FIXED + MORSEL_COPIES * count * morsel_rows * bytes_per_row))


def _row_bytes(job: Job) -> float:
    """Bytes per row in the engine, measured once per job on the first rows of a local
    Parquet source as Polars holds them (the file's encoded sizes understate
    dictionary-encoded text many times), else the source's estimate; half again for the
    columns a transform adds."""
    if job.row_bytes is not None:
        return job.row_bytes
    source = job.source
    measured: float | None = None
    if isinstance(source, FileSource) and source.format() == "parquet" and not source.is_remote:
        files = source.files()
        if files:
            schema = job.processor.schema
            used = job.plan.columns(schema) if schema is not None else None  # what the query reads
            scan = pl.scan_parquet(files[0])
            try:
                sample = (scan.select(used) if used is not None else scan).head(SAMPLE_ROWS).collect()
            except RUN_ERRORS:  # a file that cannot be read: the run reports it, here it tells nothing
                sample = pl.DataFrame()
            if sample.height:
                measured = sample.estimated_size() / sample.height
    estimate = measured
    if estimate is None:
        try:
            estimate = source.bytes_per_row()
        except SygnifyError:  # the first file cannot be read (the run reports it)
            estimate = None
    job.row_bytes = max(8.0, estimate or DEFAULT_ROW_BYTES) * 1.5
    return job.row_bytes


def group_rows(job: Job) -> int:
    """Rows per Parquet row group written under ``job``'s budget: a 64th of it."""
    assert job.budget is not None
    return max(_least_rows(job), min(MORSEL_ROWS, int(job.budget.max_bytes / 64 / _row_bytes(job))))


def _least_rows(job: Job) -> int:
    return max(MIN_MORSEL_ROWS, int(MIN_MORSEL_BYTES / _row_bytes(job)))


def morsel_rows(job: Job) -> int | None:
    """Rows per morsel for ``job``'s queries: the engine's own without a budget, else the
    most that keep :func:`engine_bytes` within it; None when even
    ``MIN_MORSEL_BYTES`` (at least ``MIN_MORSEL_ROWS`` rows) do not fit."""
    if job.budget is None:
        return MORSEL_ROWS
    per_row = _row_bytes(job)
    threads = pl.thread_pool_size()
    room = job.budget.max_bytes / ENGINE_MARGIN - ENGINE_FIXED
    rows = int(room / (MORSEL_COPIES * threads * per_row)) if room > 0 else 0
    return min(MORSEL_ROWS, rows) if rows >= _least_rows(job) else None


@dataclass
class QueryOutcome:
    """What one query did: rows in and out, files written, errors and dead letters."""

    rows_in: int = 0
    rows_out: int = 0
    paths: list[str] = field(default_factory=list)
    dead_paths: list[str] = field(default_factory=list)
    dead_rows: int = 0
    errors: list[ChunkError] = field(default_factory=list)
    output: pl.DataFrame | None = None
    #: The partial aggregate, when asked for (``partial=True``) instead of the output.
    partial: Partial | None = None
    duration_s: float = 0.0


def _reason(casts: dict[str, pl.DataType], flags: dict[str, pl.Expr]) -> pl.Expr:
    return pl.concat_str(
        [pl.when(flags[c]).then(pl.lit(f"{c}: not a valid {dtype}")) for c, dtype in casts.items()],
        separator="; ",
        ignore_nulls=True,
    )


def typed(
    lazy: pl.LazyFrame,
    expected: pl.Schema,
    *,
    origin: str,
    label: str,
    have: pl.Schema | None = None,
) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
    """``lazy`` with the ``expected`` schema, and its bad rows as dead letters (None when
    no column needs a cast). ``have`` is ``lazy``'s schema when known.

    Raises :class:`SchemaError` when the columns themselves differ (a missing or an extra
    column is not a row's fault).
    """
    have = have if have is not None else lazy.collect_schema()
    missing = [c for c in expected if c not in have]
    extra = [c for c in have if c not in expected]
    if missing or extra:
        raise SchemaError(
            f"{origin} does not match the expected schema: missing columns {missing}, "
            f"unexpected columns {extra}; pass schema= or fix the input",
            resource=origin,
        )
    casts = {c: expected[c] for c in expected if have[c] != expected[c]}
    if not casts:
        return lazy.select(list(expected)) if list(have) != list(expected) else lazy, None
    temp = {c: f"__sygnify_t{i}" for i, c in enumerate(casts)}
    frame = lazy.with_columns(cast_expr(c, have[c], dtype).alias(temp[c]) for c, dtype in casts.items())
    flags = {c: pl.col(c).is_not_null() & pl.col(temp[c]).is_null() for c in casts}
    frame = frame.with_columns(pl.any_horizontal(list(flags.values())).alias(BAD))
    good = frame.filter(~pl.col(BAD)).select(
        pl.col(temp[c]).alias(c) if c in casts else pl.col(c) for c in expected
    )
    bad = frame.filter(pl.col(BAD)).select(  # the reason only for the bad rows (few)
        *(pl.col(c).cast(pl.String, strict=False) for c in expected),
        _reason(casts, flags).alias("_error"),
        pl.lit(origin).alias("_origin"),
        pl.lit(label).alias("_chunk"),
    )
    return good, bad


@dataclass
class _Branch:
    """One scan of the input: a group of files with one schema, or a lazy source."""

    lazy: pl.LazyFrame
    origin: str
    rows: int | None
    schema: pl.Schema


def _polars_schema(schema: pa.Schema) -> pl.Schema:
    frame = pl.from_arrow(schema.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.schema


def _branches(job: Job, files: list[str] | None) -> list[_Branch] | None:
    """The scans of the input, or None when the source has none the engine can run."""
    source = job.source
    if isinstance(source, FileSource):
        return _file_branches(job, source, files)
    if files is not None:
        return None
    if isinstance(source, IteratorSource) and not isinstance(source.stream, pl.LazyFrame):
        return None  # batches from an iterator: read once, by the chunk loop
    lazy = source.lazy()
    if lazy is None:
        return None
    rows = source.total_rows() if isinstance(source, TableSource) else None
    return [_Branch(lazy, source.origin, rows, lazy.collect_schema())]


def _file_branches(job: Job, source: FileSource, files: list[str] | None) -> list[_Branch] | None:
    remote = source.filesystem is not None and not isinstance(source.filesystem, pafs.LocalFileSystem)
    if remote and source.storage_options is None:
        return None  # Polars cannot reach this store: pyarrow reads it chunk by chunk
    fmt = source.format()
    wanted = files if files is not None else source.files()
    if any(source.partitions().get(path) for path in wanted):
        if files is not None:
            return None
        lazy = source.lazy()  # hive columns added per partition
        if lazy is None:
            return None
        return [_Branch(lazy, source.origin, source.total_rows(), lazy.collect_schema())]
    from sygnify.io.formats import polars_scan

    if fmt == "parquet" and not source.is_remote:
        groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
        rows: dict[str, int] = {}
        schemas: dict[tuple[tuple[str, str], ...], pl.Schema] = {}
        for path in wanted:
            meta = pq.read_metadata(path)
            schema = _polars_schema(meta.schema.to_arrow_schema())
            key = tuple((name, str(dtype)) for name, dtype in schema.items())
            groups.setdefault(key, []).append(path)
            schemas[key] = schema
            rows[path] = meta.num_rows
        return [
            _Branch(
                polars_scan("parquet", paths, storage_options=source.storage_options),
                ", ".join(paths),
                sum(rows[p] for p in paths),
                schemas[key],
            )
            for key, paths in groups.items()
        ]
    expected = job.processor.schema if job.user_schema else None
    if fmt == "csv" and expected is not None:
        # Every column as text, typed by the query: a value that does not parse is a bad
        # row with its reason instead of a failed scan.
        text = pl.Schema(dict.fromkeys(_csv_header(wanted[0], source.storage_options), pl.String))
        lazy = polars_scan("csv", wanted, schema=text, storage_options=source.storage_options)
        return [_Branch(lazy, ", ".join(wanted), None, text)]
    lazy = polars_scan(fmt, wanted, storage_options=source.storage_options, isolate=source.isolate)
    return [_Branch(lazy, ", ".join(wanted), None, lazy.collect_schema())]


def _csv_header(path: str, storage_options: dict[str, Any] | None) -> list[str]:
    return list(pl.scan_csv(path, infer_schema=False, storage_options=storage_options).collect_schema())


#: Seconds between progress reports of a running query.
PROGRESS_S = 0.5


class _Progress:
    """Rows the running query has read (counted by a pass-through step on its input),
    reported to the tracker every ``PROGRESS_S`` from a thread of its own: user callbacks
    never run inside the engine."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.rows = 0
        self.reported = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sygnify-query-progress", daemon=True)

    def wrap(self, lazy: pl.LazyFrame) -> pl.LazyFrame:
        # An identity step: every optimization may pass it (hive partitions stay pruned); the
        # count is then of the rows read after pushed-down filters, the final report exact.
        return lazy.map_batches(
            self._count,
            streamable=True,
            projection_pushdown=True,
            predicate_pushdown=True,
            slice_pushdown=True,
        )

    def _count(self, frame: pl.DataFrame) -> pl.DataFrame:
        with self._lock:
            self.rows += frame.height
        return frame

    def _run(self) -> None:
        while not self._stop.wait(PROGRESS_S):
            with self._lock:
                delta, self.reported = self.rows - self.reported, self.rows
            if delta > 0:
                self.tracker.advance(delta)

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _temporary(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.{uuid.uuid4().hex[:12]}.tmp")


def _remove(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


class _BatchWriter:
    """The ``sink_batches`` callback: each batch to ``sink.write`` under the next label."""

    def __init__(self, sink: Sink, first: int) -> None:
        self.sink = sink
        self.index = first
        self.paths: list[str] = []
        self.rows = 0
        self.error: BaseException | None = None

    def __call__(self, frame: pl.DataFrame) -> bool:
        if self.error is not None:
            return True
        try:
            self.paths += self.sink.write(frame.to_arrow(), f"{self.index:08d}")
        except BaseException as exc:  # raised after the query, by the caller
            self.error = exc
            return True
        self.index += 1
        self.rows += frame.height
        return False


def is_local_sink(sink: Sink) -> bool:
    """Whether ``sink`` writes to the local filesystem (the engine's own sinks can)."""
    filesystem = getattr(sink, "filesystem", None)
    return isinstance(filesystem, pafs.LocalFileSystem)


def eligible(job: Job) -> bool:
    """Whether :func:`run_query` may run ``job`` (reads no data). A plan with a step that
    takes a ``DataFrame`` runs in the engine too (:meth:`Plan.in_engine`), unless its
    chunks are smaller than the least morsel (a Python call per few rows)."""
    if morsel_rows(job) is None:
        return False
    if not job.plan.streamable and job.chunk_rows < MIN_MORSEL_ROWS:
        return False
    dead = job.processor.dead_letter
    local_dead = dead is not None and isinstance(dead.filesystem, pafs.LocalFileSystem)
    return job.processor.on_error != "dead_letter" or local_dead


def run_query(
    job: Job,
    *,
    files: list[str] | None = None,
    label: str = "00000000",
    partial: bool = False,
    failed: list[BaseException] | None = None,
) -> QueryOutcome | None:
    """Run ``job`` (or only ``files`` of its source) as one query, its output written under
    ``label`` (``partial``: an aggregation's mergeable partial instead, for incremental
    runs that commit it); None when the engine cannot (nothing is then left behind), and
    then, if the query ran and failed on the data, its error is appended to ``failed``."""
    if not eligible(job):
        return None
    try:
        branches = _branches(job, files)
    except SygnifyError:
        return None
    except RUN_ERRORS as exc:  # a file Polars or pyarrow cannot open: the chunk loop names it
        if failed is not None:
            failed.append(exc)
        return None
    if not branches:
        return None
    expected = job.processor.schema
    processor = job.processor
    good: list[pl.LazyFrame] = []
    bad: list[tuple[str, pl.LazyFrame]] = []
    progress = _Progress(job.tracker) if job.tracker.watched else None
    try:
        for branch in branches:
            scan = progress.wrap(branch.lazy) if progress is not None else branch.lazy
            if expected is None:
                good.append(scan)
                continue
            clean, dead = typed(scan, expected, origin=branch.origin, label=label, have=branch.schema)
            good.append(clean)
            if dead is not None:
                bad.append((branch.origin, dead))
    except SchemaError:
        return None  # the chunk loop reports the file whose columns differ, as it always has
    except RUN_ERRORS as exc:  # a schema Polars cannot read (a corrupt file): the chunk loop names it
        if failed is not None:
            failed.append(exc)
        return None
    started = time.perf_counter()
    clean = good[0] if len(good) == 1 else pl.concat(good, how="vertical")
    eager = not job.plan.streamable
    try:
        stepped = job.plan.in_engine(clean, job.chunk_rows) if eager else job.plan.apply(clean)
    except RUN_ERRORS:
        return None  # a DataFrame step that cannot take an empty frame: the chunk loop runs it
    aggregate = job.plan.aggregate
    query = stepped if partial or aggregate is None else aggregate.over(stepped)
    outcome = QueryOutcome()
    known = [b.rows for b in branches]
    extra: list[pl.LazyFrame] = []  # the queries beside the output, in this order:
    count_index = None
    if any(rows is None for rows in known):
        count_index = len(extra)
        raws = [b.lazy.select(pl.len().cast(pl.Int64)) for b in branches]
        extra.append(pl.concat(raws).select(pl.col("len").sum()))
    bad_counts_index = None
    dead_temp: str | None = None
    dead_path: str | None = None
    if bad and processor.on_error == "dead_letter":
        assert processor.dead_letter is not None
        dead_path = f"{processor.dead_letter.target.rstrip('/')}/dead-{label}-rows.parquet"
        os.makedirs(os.path.dirname(dead_path), exist_ok=True)
        dead_temp = _temporary(dead_path)
        frames = [frame for _, frame in bad]
        dead_all = frames[0] if len(frames) == 1 else pl.concat(frames)
        extra.append(dead_all.sink_parquet(dead_temp, lazy=True))
    elif bad:
        bad_counts_index = len(extra)
        tallies = [
            frame.select(
                pl.lit(origin).alias("origin"), pl.len().cast(pl.Int64).alias("n"), pl.col("_error").first()
            )
            for origin, frame in bad
        ]
        extra.append(pl.concat(tallies, how="vertical"))
    temps: list[str] = []
    renames: list[tuple[str, str]] = []
    writer: _BatchWriter | None = None
    sink = job.sink
    parts: dict[str, pl.LazyFrame] = {}
    if partial:
        assert aggregate is not None
        parts = aggregate.partial_lazy(query)
        mains = list(parts.values())
    elif aggregate is not None or sink is None:
        mains = [query]
    elif isinstance(sink, ParquetSink) and not sink.partition_by and is_local_sink(sink):
        target = sink.target if sink.single_file else f"{sink.target.rstrip('/')}/part-{label}.parquet"
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        temp = _temporary(target)
        temps.append(temp)
        renames.append((temp, target))
        codec = polars_compression(sink.compression)
        # Under a budget the writer's buffered row group is bounded too (a 64th of the budget)
        morsel = morsel_rows(job)
        tight = job.budget is not None and morsel is not None and morsel < MORSEL_ROWS
        group = group_rows(job) if tight else None  # else the engine's own row groups
        mains = [query.sink_parquet(temp, compression=codec or "zstd", row_group_size=group, lazy=True)]
    elif isinstance(sink, IPCSink) and is_local_sink(sink):
        os.makedirs(os.path.dirname(sink.target) or ".", exist_ok=True)
        temp = _temporary(sink.target)
        temps.append(temp)
        renames.append((temp, sink.target))
        mains = [query.sink_ipc(temp, lazy=True)]
    else:
        rewritable = isinstance(sink, ParquetSink) and is_local_sink(sink)
        if not (processor.on_error == "raise" and not bad) and not rewritable:
            return None  # a failure after some batches could neither be undone nor rerun
        writer = _BatchWriter(sink, int(label) if label.isdigit() else 0)
        mains = [query.sink_batches(writer, chunk_size=job.next_chunk_rows(), lazy=True)]
    try:
        morsel = morsel_rows(job)
        if eager and morsel is not None:
            morsel = min(morsel, job.chunk_rows)  # a DataFrame step gets about chunk_size rows
        small = morsel is not None and morsel < MORSEL_ROWS  # else the engine's own size
        steer = pl.Config(streaming_chunk_size=morsel) if small else contextlib.nullcontext()
        with steer, progress if progress is not None else contextlib.nullcontext():
            results = pl.collect_all([*mains, *extra], engine="streaming")
        if writer is not None and writer.error is not None:
            raise writer.error
    except RUN_ERRORS as exc:  # Polars' PanicException is no Exception
        _remove(temps + ([dead_temp] if dead_temp else []))
        if writer is not None and writer.paths:
            if processor.on_error == "raise" or not (isinstance(sink, ParquetSink) and is_local_sink(sink)):
                raise_mapped(exc, label, job.source.origin)
            _remove(writer.paths)  # the chunk loop rewrites this output
        if failed is not None:
            failed.append(exc)
        return None
    output = results[0] if not partial and (aggregate is not None or sink is None) else None
    if partial:
        outcome.partial = dict(zip(parts, results[: len(mains)], strict=True))
    rest = results[len(mains) :]
    if count_index is not None:
        outcome.rows_in = int(rest[count_index].item())
    else:
        outcome.rows_in = int(sum(r for r in known if r is not None))
    # Bad rows: counted from the dead-letter file (small), or by the counting query.
    per_origin: dict[str, tuple[int, str]] = {}
    if dead_temp is not None:
        letters = pl.read_parquet(dead_temp, columns=["_origin", "_error"])
        for key, frame in letters.group_by("_origin", maintain_order=True):
            per_origin[str(key[0])] = (frame.height, str(frame["_error"][0]))
    elif bad_counts_index is not None:
        for origin, n, first in rest[bad_counts_index].iter_rows():
            if n:
                per_origin[str(origin)] = (int(n), str(first))
    total_bad = sum(n for n, _ in per_origin.values())
    if total_bad and processor.on_error == "raise":
        _remove(temps)
        origin, (_, message) = next(iter(per_origin.items()))
        raise SchemaError(
            f"chunk {label} ({origin}): {total_bad} bad row(s), first: {message}; "
            "use on_error='skip' or 'dead_letter' to carry on",
            resource=origin,
        )
    action = "dead_letter" if processor.on_error == "dead_letter" else "skipped"
    chunk = int(label) if label.isdigit() else 0
    for origin, (count, message) in per_origin.items():
        outcome.errors.append(ChunkError(chunk, origin, "SchemaError", message, count, action))
    if dead_temp is not None and dead_path is not None:
        if total_bad:
            os.replace(dead_temp, dead_path)
            outcome.dead_paths.append(dead_path)
            outcome.dead_rows = total_bad
        else:
            _remove([dead_temp])
    for temp, target in renames:
        os.replace(temp, target)
        outcome.paths.append(target)
    if output is not None:
        outcome.output = output
        outcome.rows_out = output.height
    elif writer is not None:
        outcome.paths += writer.paths
        outcome.rows_out = writer.rows
    elif renames:
        target = renames[0][1]
        if isinstance(sink, IPCSink):
            outcome.rows_out = int(pl.scan_ipc(target).select(pl.len()).collect().item())
        else:
            outcome.rows_out = pq.read_metadata(target).num_rows
    outcome.duration_s = time.perf_counter() - started
    return outcome


def run_query_job(job: Job, failed: list[BaseException] | None = None) -> ProcessResult | None:
    """Run the whole ``job`` with :func:`run_query` and finish it; None when the engine
    cannot (a query that failed appends its error to ``failed``)."""
    outcome = run_query(job, failed=failed)
    if outcome is None:
        return None
    record(job, outcome)
    result = job.tracker.result
    result.chunks = max(1, math.ceil(outcome.rows_in / max(1, job.next_chunk_rows())))
    if outcome.output is not None and job.plan.aggregate is None:
        result.rows_out = outcome.output.height
    return job.finish(output=outcome.output)


def record(job: Job, outcome: QueryOutcome) -> None:
    """Account for a query in ``job``'s result: rows, errors, dead letters, files."""
    result = job.tracker.result
    for error in outcome.errors:
        job.tracker.error(error)
    result.dead_letters += outcome.dead_rows
    result.dead_letter_paths += outcome.dead_paths
    job.paths += outcome.paths
    rows_out = 0 if outcome.output is not None else outcome.rows_out  # collected: counted by finish()
    job.tracker.chunk(outcome.rows_in, rows_out, outcome.duration_s)
    result.one_query = True
    job.peak.sample()
