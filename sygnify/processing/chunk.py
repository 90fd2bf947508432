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

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sygnify.errors import DataQualityError, SchemaError, SygnifyError
from sygnify.io.files import atomic_write, resolve_filesystem
from sygnify.processing.aggregate import Partial
from sygnify.processing.parts import BadRow, Part
from sygnify.processing.plan import Plan
from sygnify.processing.result import ChunkError
from sygnify.processing.sinks import Sink
from sygnify.resilience import RetryPolicy

__all__ = ["ChunkOutcome", "ChunkProcessor", "DeadLetter", "ErrorPolicy", "cast_expr", "classify_error"]

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

    def write(self, rows: pl.DataFrame, label: str, kind: str, origin: str, reason: str | pl.Series) -> str:
        text = rows.select(pl.all().cast(pl.String, strict=False)) if rows.width else rows
        errors = reason if isinstance(reason, pl.Series) else pl.repeat(reason, rows.height, eager=True)
        table = text.with_columns(
            errors.alias("_error"), pl.lit(origin).alias("_origin"), pl.lit(label).alias("_chunk")
        ).to_arrow()
        path = f"{self.target.rstrip('/')}/dead-{label}-{kind}.parquet"
        atomic_write(path, lambda out: pq.write_table(table, out), filesystem=self.filesystem)
        return path


def classify_error(exc: BaseException, label: str, origin: str) -> SygnifyError:
    if isinstance(exc, SygnifyError):
        return exc
    where = f"chunk {label} ({origin})"
    if isinstance(
        exc,
        pl.exceptions.SchemaError
        | pl.exceptions.ColumnNotFoundError
        | pl.exceptions.SchemaFieldNotFoundError,
    ):
        return SchemaError(f"{where}: {type(exc).__name__}: {exc}", resource=origin)
    return DataQualityError(f"{where} failed: {type(exc).__name__}: {exc}", resource=origin)


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
        if expected is None or frame.schema == expected:
            return frame
        missing = [c for c in expected if c not in frame.schema]
        extra = [c for c in frame.schema if c not in expected]
        if missing or extra:
            raise SchemaError(
                f"chunk {label} ({origin}) does not match the expected schema: missing columns "
                f"{missing}, unexpected columns {extra}; pass schema= or fix the input",
                resource=origin,
            )
        differing = [c for c in expected if frame.schema[c] != expected[c]]
        typed = frame.select(
            cast_expr(c, frame.schema[c], expected[c]) if c in differing else pl.col(c) for c in expected
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
        origin: str,
        reason: str | pl.Series,
        outcome: ChunkOutcome,
        error_type: str,
    ) -> None:
        message = reason if isinstance(reason, str) else str(reason[0])
        if self.on_error == "raise":
            error_class = SchemaError if error_type == "SchemaError" else DataQualityError
            raise error_class(
                f"chunk {label} ({origin}): {rows.height} bad row(s), first: {message}; "
                "use on_error='skip' or 'dead_letter' to carry on",
                resource=origin,
            )
        action = "dead_letter" if self.on_error == "dead_letter" else "skipped"
        if self.dead_letter is not None and self.on_error == "dead_letter":
            outcome.paths.append(self.dead_letter.write(rows, label, kind, origin, reason))
            outcome.dead_rows += rows.height
        outcome.errors.append(
            ChunkError(int(label.split("-")[0]), origin, error_type, message, rows.height, action)
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
                    {"_raw": [r.text for r in bad_rows], "_line": [r.number for r in bad_rows]}
                )
                reasons = pl.Series([r.reason for r in bad_rows], dtype=pl.String)
                self._bad(raw, label, "unparsed", bad_rows[0].origin, reasons, outcome, "DataQualityError")
            if data.num_columns == 0:
                return outcome
            frame = _safe_frame(data)
            frame = self.conform(frame, label, origin, outcome)
            self._produce(frame.lazy(), outcome)
        except Exception as exc:
            error = classify_error(exc, label, origin)
            if self.on_error == "raise":
                outcome.failure = error
            else:
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
        except Exception:  # the batch path reports it with the row-level policy
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
            return list(part.batches(batch_rows, keep)), bad

        try:
            batches, bad = self.retry.call(load)
        except Exception as exc:
            error = classify_error(exc, f"{part.index:06d}", part.origin)
            outcome = ChunkOutcome(f"{part.index:06d}-0000")
            if self.on_error == "raise":
                outcome.failure = error
            else:
                outcome.errors.append(
                    ChunkError(part.index, part.origin, type(error).__name__, error.message, 0, "skipped")
                )
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
