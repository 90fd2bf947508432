"""One chunk through the pipeline: type it, transform it, apply the error policy.

This is the unit of work every mode shares; it is picklable so that worker processes and
Dask/Ray workers run exactly the same code as the sequential modes.

>>> import polars as pl
>>> import pyarrow as pa
>>> from sygnify.resilience import RetryPolicy
>>> processor = ChunkProcessor(
...     Plan.of([(pl.col("x") * 2).alias("y")]), schema=None, on_error="raise",
...     dead_letter=None, retry=RetryPolicy(),
... )
>>> processor.run(pa.table({"x": [1, 2]}), "00000000", "example").table["y"].to_pylist()
[2, 4]
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, TypeAlias

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sygnify.errors import (
    CircuitOpenError,
    ConfigurationError,
    DataQualityError,
    MemoryBudgetError,
    NotFoundError,
    PermissionDeniedError,
    QueryError,
    SchemaError,
    SygnifyError,
    TransientError,
)
from sygnify.io.files import atomic_write, resolve_filesystem
from sygnify.io.untrusted import READ_ERRORS
from sygnify.processing.aggregate import Partial
from sygnify.processing.parts import BadRow, Part
from sygnify.processing.plan import Plan
from sygnify.processing.result import ChunkError
from sygnify.processing.sinks import Sink
from sygnify.resilience import RetryPolicy

__all__ = [
    "FATAL_ERRORS",
    "RUN_ERRORS",
    "ChunkOutcome",
    "ChunkProcessor",
    "DeadLetter",
    "ErrorPolicy",
    "cast_expr",
    "classify_error",
    "errors_mapped",
    "is_fatal",
    "raise_mapped",
    "unreadable_row",
]

ErrorPolicy: TypeAlias = Literal["raise", "skip", "dead_letter"]


@dataclass
class ChunkOutcome:
    """What one chunk produced; ``failure`` is set when the policy is ``raise``."""

    label: str
    rows_in: int = 0
    rows_out: int = 0
    table: pa.Table | None = None
    partial: Partial | None = None
    errors: list[ChunkError] = field(default_factory=list)
    dead_rows: int = 0
    paths: list[str] = field(default_factory=list)
    failure: SygnifyError | None = None
    duration_s: float = 0.0
    #: The partial was merged into another outcome's (a worker merges its chunks' partials).
    partial_merged: bool = False


class DeadLetter:
    """Bad rows and chunks as Parquet files ``dead-<label>-<kind>.parquet`` with the reason.

    Every column is stored as text (a bad row is bad because its values do not fit the
    schema), plus ``_error``, ``_origin`` and ``_chunk``.
    """

    def __init__(self, path: str, *, filesystem: pafs.FileSystem | None = None) -> None:
        self.path = path
        self.filesystem, self.target = resolve_filesystem(path, filesystem)

    def write(
        self, rows: pl.DataFrame, label: str, kind: str, origin: str | pl.Series, reason: str | pl.Series
    ) -> str:
        """Write ``rows`` with their ``reason`` and ``origin`` (one for all, or one per row)."""
        text = rows.select(pl.all().cast(pl.String, strict=False)) if rows.width else rows
        errors = reason if isinstance(reason, pl.Series) else pl.repeat(reason, rows.height, eager=True)
        origins = origin if isinstance(origin, pl.Series) else pl.repeat(origin, rows.height, eager=True)
        table = text.with_columns(
            errors.alias("_error"), origins.cast(pl.String).alias("_origin"), pl.lit(label).alias("_chunk")
        ).to_arrow()
        path = f"{self.target.rstrip('/')}/dead-{label}-{kind}.parquet"
        atomic_write(path, lambda out: pq.write_table(table, out), filesystem=self.filesystem)
        return path

    def remove(self, path: str) -> None:
        """Remove a dead-letter file :meth:`write` wrote (its rows are recorded another way)."""
        with contextlib.suppress(FileNotFoundError):
            self.filesystem.delete_file(path)


#: What a run catches to map onto the error tree: Polars' ``PanicException`` derives from
#: ``BaseException`` (not ``Exception``) in some releases, and must not escape as it is.
RUN_ERRORS: tuple[type[BaseException], ...] = READ_ERRORS  # the one tuple, of sygnify.io.untrusted

#: Errors about columns and types rather than values.
_SCHEMA_ERRORS = (
    pl.exceptions.SchemaError,
    pl.exceptions.ColumnNotFoundError,
    pl.exceptions.SchemaFieldNotFoundError,
    pl.exceptions.StructFieldNotFoundError,
    pl.exceptions.DuplicateError,
    pa.ArrowTypeError,
)
#: Errors about the values themselves: data that cannot be parsed, decoded or converted.
_DATA_ERRORS = (
    pl.exceptions.ComputeError,
    pl.exceptions.InvalidOperationError,
    pl.exceptions.NoDataError,
    pl.exceptions.OutOfBoundsError,
    pl.exceptions.PanicException,  # Polars gave up on the input (a corrupt file, usually)
    pa.ArrowException,
    OSError,  # without an errno: pyarrow's "Couldn't deserialize thrift", a truncated file
    ValueError,  # UnicodeDecodeError, ArrowInvalid
    ArithmeticError,
    RecursionError,  # nesting too deep to decode
)
#: Failures of the run itself, not of the data: a skip or dead-letter policy never hides them.
FATAL_ERRORS = (TransientError, CircuitOpenError, ConfigurationError, MemoryBudgetError)


def classify_error(exc: BaseException, label: str, origin: str) -> SygnifyError:
    """``exc`` as a sygnify error naming the chunk ``label`` and the file ``origin``, with
    ``exc`` as its ``__cause__``: the one map of Polars, pyarrow and Python errors for every
    mode. A sygnify error stays as it is.

    Columns and types (a missing column, a type mismatch) are a :class:`SchemaError`; values
    that cannot be read, decoded or converted (a CSV line with extra fields, invalid
    UTF-8, a failed strict cast, a Polars panic on a corrupt file) a
    :class:`DataQualityError`; a missing file a :class:`NotFoundError`, an unreadable one a
    :class:`PermissionDeniedError`; anything else (a transform that fails for its own
    reasons, a system call that failed: a full disk) a :class:`QueryError`.

    >>> error = classify_error(pl.exceptions.ColumnNotFoundError("nope"), "00000003", "a.csv")
    >>> type(error).__name__, error.resource, str(error)
    ('SchemaError', 'a.csv', 'chunk 00000003 (a.csv): ColumnNotFoundError: nope')
    >>> type(error.__cause__).__name__
    'ColumnNotFoundError'
    >>> type(classify_error(pl.exceptions.PanicException("index out of bounds"), "", "b.parquet")).__name__
    'DataQualityError'
    """
    if isinstance(exc, SygnifyError):
        return exc
    where = f"chunk {label} ({origin})" if label else origin
    detail = f"{where}: {type(exc).__name__}: {exc}"
    failed = f"{where} failed: {type(exc).__name__}: {exc}"
    error: SygnifyError
    if isinstance(exc, FileNotFoundError):
        error = NotFoundError(detail, resource=origin)
    elif isinstance(exc, PermissionError):
        error = PermissionDeniedError(detail, resource=origin)
    elif isinstance(exc, OSError) and exc.errno is not None:  # the system failed (disk full), not the data
        error = QueryError(failed, resource=origin)
    elif isinstance(exc, _SCHEMA_ERRORS):
        error = SchemaError(detail, resource=origin)
    elif isinstance(exc, MemoryError):
        error = MemoryBudgetError(f"{failed} (lower chunk_size or max_memory)", resource=origin)
    elif isinstance(exc, _DATA_ERRORS):
        error = DataQualityError(failed, resource=origin)
    else:
        error = QueryError(failed, resource=origin)
    error.__cause__ = exc
    return error


def raise_mapped(exc: BaseException, label: str, origin: str) -> NoReturn:
    """Raise ``exc`` mapped by :func:`classify_error` (a sygnify error as it is, with its
    own cause); call it inside the ``except`` clause that caught ``exc``."""
    error = classify_error(exc, label, origin)
    if error is exc:
        raise error
    raise error from exc


@contextlib.contextmanager
def errors_mapped(origin: str) -> Iterator[None]:
    """Let only sygnify errors out: anything else (a Polars ``PanicException`` included)
    is mapped by :func:`classify_error` naming ``origin``, the original as its cause. The
    last line of :meth:`LargeDataHandler.process <sygnify.processing.LargeDataHandler.process>`;
    the modes map what they catch themselves, naming the chunk and file.

    >>> with errors_mapped("in.csv"):
    ...     raise pl.exceptions.ComputeError("found more fields than defined in 'Schema'")
    Traceback (most recent call last):
    ...
    sygnify.errors.DataQualityError: in.csv failed: ComputeError: found more fields than defined in 'Schema'
    """
    try:
        yield
    except SygnifyError:
        raise
    except RUN_ERRORS as exc:
        raise_mapped(exc, "", origin)


def unreadable_row(origin: str, error: SygnifyError) -> BadRow:
    """A part (a file, some row groups) that could not be read, as one bad row: under
    ``skip`` or ``dead_letter`` it is counted and dead-lettered like an unparsable line,
    with ``_origin`` naming the file and ``_error`` the reason (``_raw`` empty, ``_line`` null).

    >>> unreadable_row("a.parquet", DataQualityError("cannot read a.parquet: bad footer")).reason
    'unreadable (DataQualityError): cannot read a.parquet: bad footer'
    """
    return BadRow(origin, None, "", f"unreadable ({type(error).__name__}): {error.message}")


def is_fatal(error: SygnifyError) -> bool:
    """Whether ``error`` ends a run whatever its error policy (see :data:`FATAL_ERRORS`)."""
    return isinstance(error, FATAL_ERRORS)


def cast_expr(column: str, source: pl.DataType, target: pl.DataType) -> pl.Expr:
    """``column`` (of type ``source``) as ``target``, null where a value does not convert:
    the one conversion of the chunk loop and of the one-query path
    (:mod:`~sygnify.processing.query`). Text becomes dates, datetimes and booleans by
    parsing (``"true"``/``"false"``, any case), everything else by a non-strict cast.

    >>> frame = pl.DataFrame({"b": ["TRUE", "no", None]})
    >>> frame.select(cast_expr("b", pl.String, pl.Boolean))["b"].to_list()
    [True, None, None]
    """
    col = pl.col(column)
    if source == pl.String and isinstance(target, pl.Datetime):
        return col.str.to_datetime(time_unit=target.time_unit, time_zone=target.time_zone, strict=False)
    if source == pl.String and target == pl.Date:
        return col.str.to_date(strict=False)
    if source == pl.String and target == pl.Boolean:
        lowered = col.str.to_lowercase()
        return pl.when(lowered == "true").then(True).when(lowered == "false").then(False).alias(column)
    return col.cast(target, strict=False)


class ChunkProcessor:
    """Types, transforms and error-handles chunks; shared by every mode and worker."""

    def __init__(
        self,
        plan: Plan,
        *,
        schema: pl.Schema | None,
        on_error: ErrorPolicy,
        dead_letter: DeadLetter | None,
        retry: RetryPolicy,
        sink: Sink | None = None,
    ) -> None:
        self.plan = plan
        self.schema = schema
        self.on_error = on_error
        self.dead_letter = dead_letter
        self.retry = retry
        self.sink = sink  # set only when workers write their own output

    def replaced(self, **changes: Any) -> ChunkProcessor:
        """A copy with some settings changed (``schema=``, ``sink=``...)."""
        settings = {
            "schema": self.schema,
            "on_error": self.on_error,
            "dead_letter": self.dead_letter,
            "retry": self.retry,
            "sink": self.sink,
            **changes,
        }
        return ChunkProcessor(self.plan, **settings)

    def conform(self, frame: pl.DataFrame, label: str, origin: str, outcome: ChunkOutcome) -> pl.DataFrame:
        """Give ``frame`` the expected schema; rows whose values do not convert are bad rows."""
        expected = self.schema
        # ``frame.schema`` builds a new Schema of every column on each access: read it once,
        # or a wide frame costs columns² (2,000 columns took 20 s a chunk).
        have = frame.schema
        if expected is None or have == expected:
            return frame
        missing = [c for c in expected if c not in have]
        extra = [c for c in have if c not in expected]
        if missing or extra:
            raise SchemaError(
                f"chunk {label} ({origin}) does not match the expected schema: missing columns "
                f"{missing}, unexpected columns {extra}; pass schema= or fix the input",
                resource=origin,
            )
        differing = {c: expected[c] for c in expected if have[c] != expected[c]}
        typed = frame.select(
            cast_expr(c, have[c], expected[c]) if c in differing else pl.col(c) for c in expected
        )
        failed = [(typed[c].is_null() & frame[c].is_not_null()).alias(c) for c in differing]
        mask_frame = pl.DataFrame(failed) if failed else pl.DataFrame()
        if mask_frame.width == 0:
            return typed
        bad = mask_frame.select(pl.any_horizontal(pl.all())).to_series()
        if not bad.any():
            return typed
        reasons = mask_frame.select(
            pl.concat_str(
                [pl.when(pl.col(c)).then(pl.lit(f"{c}: not a valid {expected[c]}")) for c in differing],
                separator="; ",
                ignore_nulls=True,
            )
        ).to_series()
        self._bad(frame.filter(bad), label, "rows", origin, reasons.filter(bad), outcome, "SchemaError")
        return typed.filter(~bad)

    def _bad(
        self,
        rows: pl.DataFrame,
        label: str,
        kind: str,
        origin: str | pl.Series,
        reason: str | pl.Series,
        outcome: ChunkOutcome,
        error_type: str,
    ) -> None:
        message = reason if isinstance(reason, str) else str(reason[0])
        first_origin = origin if isinstance(origin, str) else str(origin[0])
        if self.on_error == "raise":
            error_class = SchemaError if error_type == "SchemaError" else DataQualityError
            raise error_class(
                f"chunk {label} ({first_origin}): {rows.height} bad row(s), first: {message}; "
                "use on_error='skip' or 'dead_letter' to carry on",
                resource=first_origin,
            )
        action = "dead_letter" if self.on_error == "dead_letter" else "skipped"
        if self.dead_letter is not None and self.on_error == "dead_letter":
            outcome.paths.append(self.dead_letter.write(rows, label, kind, origin, reason))
            outcome.dead_rows += rows.height
        outcome.errors.append(
            ChunkError(int(label.split("-")[0]), first_origin, error_type, message, rows.height, action)
        )

    def run(
        self, data: pa.RecordBatch | pa.Table, label: str, origin: str, bad_rows: Sequence[BadRow] = ()
    ) -> ChunkOutcome:
        """Process one chunk; never raises for data errors (see ``outcome.failure``)."""
        started = time.perf_counter()
        outcome = ChunkOutcome(label, rows_in=data.num_rows + len(bad_rows))
        frame: pl.DataFrame | None = None
        try:
            if bad_rows:
                raw = pl.DataFrame(
                    {"_raw": [r.text for r in bad_rows], "_line": [r.number for r in bad_rows]},
                    schema={"_raw": pl.String, "_line": pl.Int64},
                )
                reasons = pl.Series([r.reason for r in bad_rows], dtype=pl.String)
                origins = pl.Series([r.origin for r in bad_rows], dtype=pl.String)  # rows of several parts
                self._bad(raw, label, "unparsed", origins, reasons, outcome, "DataQualityError")
            if data.num_columns == 0:
                return outcome
        except RUN_ERRORS as exc:  # the dead letter of the unparsed rows could not be written
            outcome.failure = classify_error(exc, label, origin)
            return outcome
        # The rows of this chunk as recorded so far; a failure below records the whole chunk
        # instead, so rows conform() dead-lettered are not counted (or kept) twice.
        recorded = (len(outcome.errors), len(outcome.paths), outcome.dead_rows)
        try:
            frame = _safe_frame(data)
            frame = self.conform(frame, label, origin, outcome)
            self._produce(frame.lazy(), outcome)
        except RUN_ERRORS as exc:
            error = classify_error(exc, label, origin)
            if self.on_error == "raise" or is_fatal(error):
                outcome.failure = error
            else:
                for path in outcome.paths[recorded[1] :]:
                    if self.dead_letter is not None and "/dead-" in path:
                        self.dead_letter.remove(path)
                del outcome.errors[recorded[0] :], outcome.paths[recorded[1] :]
                outcome.dead_rows = recorded[2]
                rows = _safe_frame(data)
                try:
                    self._bad(rows, label, "chunk", origin, error.message, outcome, type(error).__name__)
                except SygnifyError as nested:  # writing the dead letter failed: that is fatal
                    outcome.failure = nested
                outcome.table, outcome.partial, outcome.rows_out = None, None, 0
        outcome.duration_s = time.perf_counter() - started
        return outcome

    def scannable(self, scan: pl.LazyFrame) -> bool:
        """Whether ``scan``'s rows can skip typing: its schema is the expected one, if any."""
        return self.schema is None or scan.collect_schema() == self.schema

    def run_lazy(self, lazy: pl.LazyFrame, label: str, rows_in: int) -> ChunkOutcome:
        """Process one chunk given as a query over its rows (a scan, usually): reading, the
        transform and a partial aggregation run as one query. Raises what the query raises;
        callers fall back to the batch path, which applies the error policy."""
        started = time.perf_counter()
        outcome = ChunkOutcome(label, rows_in=rows_in)
        self._produce(lazy, outcome)
        outcome.duration_s = time.perf_counter() - started
        return outcome

    def _produce(self, frame: pl.LazyFrame, outcome: ChunkOutcome) -> None:
        """Run the plan over a chunk: its partial aggregate, or its output rows (written
        here when this processor writes its own output)."""
        lazy = self.plan.apply(frame)
        if self.plan.aggregate is not None:
            outcome.partial = self.plan.aggregate.partial(lazy)
            return
        result = lazy.collect()
        outcome.rows_out = result.height
        outcome.table = result.to_arrow()
        if self.sink is not None:
            outcome.paths += self.sink.write(outcome.table, outcome.label)
            outcome.table = None

    def run_scan(self, part: Part, batch_rows: int) -> list[ChunkOutcome] | None:
        """Process a part as Polars queries over a scan of its rows, if it can be.

        Each chunk of ``batch_rows`` rows is one query (see :meth:`run_lazy`). None when
        the part cannot be scanned, its schema differs from the expected one (rows need
        typing) or a query fails: the caller then takes the batch path, which types rows
        and applies the error policy.
        """
        scan = part.scan()
        if scan is None or part.rows is None:
            return None
        try:
            if not self.scannable(scan):
                return None
            return [
                self.run_lazy(scan.slice(offset, count), label, count)
                for label, offset, count in part.chunk_spans(batch_rows)
            ]
        except RUN_ERRORS:  # the batch path reports it with the row-level policy
            return None

    def run_part(self, part: Part, batch_rows: int, *, scan: bool = True) -> list[ChunkOutcome]:
        """Load a part (retrying transient failures) and process it chunk by chunk.

        With ``scan``, a part that Polars can scan is one query (see :meth:`run_scan`).
        """
        if scan:
            scanned = self.run_scan(part, batch_rows)
            if scanned is not None:
                return scanned

        def load() -> tuple[list[pa.RecordBatch], list[BadRow]]:
            bad: list[BadRow] = []
            keep = None if self.on_error == "raise" else bad
            batches: list[pa.RecordBatch] = []
            try:
                for batch in part.batches(batch_rows, keep):
                    batches.append(batch)
            except RUN_ERRORS as exc:
                error = classify_error(exc, f"{part.index:06d}", part.origin)
                if keep is None or is_fatal(error):  # a transient one is retried by retry.call
                    raise_mapped(exc, f"{part.index:06d}", part.origin)
                # What was read before the failure is processed; the rest is one bad row.
                keep.append(unreadable_row(part.origin, error))
            return batches, bad

        try:
            batches, bad = self.retry.call(load)
        except RUN_ERRORS as exc:  # raise, or a failure no policy hides (retries exhausted)
            outcome = ChunkOutcome(f"{part.index:06d}-0000")
            outcome.failure = classify_error(exc, f"{part.index:06d}", part.origin)
            return [outcome]
        if not batches:
            return [self.run(pa.table({}), f"{part.index:06d}-0000", part.origin, bad)] if bad else []
        return [
            self.run(batch, f"{part.index:06d}-{sub:04d}", part.origin, bad if sub == 0 else ())
            for sub, batch in enumerate(batches)
        ]


def _safe_frame(data: pa.RecordBatch | pa.Table) -> pl.DataFrame:
    try:
        frame = pl.from_arrow(data)
        return frame if isinstance(frame, pl.DataFrame) else frame.to_frame()
    except Exception:
        return pl.DataFrame({"_raw": [str(row) for row in data.to_pylist()]})  # off the hot path
