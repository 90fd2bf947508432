"""A transform compiled for chunks: row-local steps, then an optional ``Aggregate``.

>>> import polars as pl
>>> plan = Plan.of([(pl.col("x") * 2).alias("y")])
>>> plan.apply(pl.DataFrame({"x": [1, 2]}).lazy()).collect()["y"].to_list()
[2, 4]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import polars as pl
from polars.io.plugins import register_io_source

from sygnify.errors import ConfigurationError
from sygnify.processing.aggregate import Aggregate

__all__ = ["Plan", "Step", "TransformLike"]

Step: TypeAlias = Callable[[pl.LazyFrame], pl.LazyFrame]
TransformLike: TypeAlias = (
    "Callable[..., pl.LazyFrame | pl.DataFrame] | Sequence[pl.Expr] | Aggregate | Sequence[Any] | None"
)


def _wants_dataframe(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    annotation = params[0].annotation if params else None
    return annotation is pl.DataFrame or annotation in ("pl.DataFrame", "DataFrame", "polars.DataFrame")


@dataclass(frozen=True)
class _FunctionStep:
    fn: Callable[..., Any]
    eager: bool

    def __call__(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        result = self.fn(frame.collect() if self.eager else frame)
        if isinstance(result, pl.DataFrame):
            return result.lazy()
        if isinstance(result, pl.LazyFrame):
            return result
        raise ConfigurationError(
            f"transform {getattr(self.fn, '__name__', self.fn)!r} returned {type(result).__name__}; "
            "it must return a Polars LazyFrame or DataFrame"
        )


@dataclass(frozen=True)
class _Pieces:
    """A step that takes a DataFrame, run on each morsel of a streaming query in pieces
    of at most ``rows`` rows (what ``chunk_size`` promises it)."""

    step: _FunctionStep
    rows: int

    def __call__(self, frame: pl.DataFrame) -> pl.DataFrame:
        if frame.height <= self.rows:
            return self._one(frame)
        pieces = [self._one(frame.slice(start, self.rows)) for start in range(0, frame.height, self.rows)]
        return pl.concat(pieces, how="vertical")

    def _one(self, frame: pl.DataFrame) -> pl.DataFrame:
        result = self.step(frame.lazy())
        return result.collect()


@dataclass(frozen=True)
class _ExprStep:
    exprs: tuple[pl.Expr, ...]

    def __call__(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.with_columns(*self.exprs)


@dataclass(frozen=True)
class Plan:
    """A compiled transform: row-local steps, then an optional :class:`Aggregate`.

    ``transform`` may be a function of a ``LazyFrame`` (or of a ``DataFrame``, when its
    first parameter is annotated so), a list of expressions (added with
    ``with_columns``), an :class:`Aggregate`, or a list of those steps with the
    aggregate last. Steps run per chunk, so they must be row-local (filter, with_columns,
    a join with a small table); cross-chunk work belongs in the :class:`Aggregate`.
    """

    steps: tuple[Step, ...] = ()
    aggregate: Aggregate | None = None

    @classmethod
    def of(cls, transform: Any) -> Plan:
        if transform is None:
            return cls()
        if isinstance(transform, Plan):
            return transform
        if isinstance(transform, Aggregate):
            return cls((), transform)
        if isinstance(transform, pl.Expr):
            return cls((_ExprStep((transform,)),))
        if callable(transform):
            return cls((_FunctionStep(transform, _wants_dataframe(transform)),))
        if isinstance(transform, Sequence) and not isinstance(transform, str):
            items = list(transform)
            if items and all(isinstance(e, pl.Expr) for e in items):
                return cls((_ExprStep(tuple(items)),))
            steps: list[Step] = []
            aggregate = None
            for position, item in enumerate(items):
                if isinstance(item, Aggregate):
                    if position != len(items) - 1:
                        raise ConfigurationError("an Aggregate must be the last step of a transform list")
                    aggregate = item
                else:
                    steps += list(cls.of(item).steps)
            return cls(tuple(steps), aggregate)
        raise ConfigurationError(
            f"cannot use {type(transform).__name__} as a transform; pass a function of a LazyFrame, "
            "a list of Polars expressions, an Aggregate, or a list of those"
        )

    @property
    def streamable(self) -> bool:
        """Whether the whole plan stays lazy, so that one query over a large input runs in
        bounded memory. A function of a ``DataFrame`` needs its input collected, so it
        runs per chunk, where ``chunk_size`` bounds what it is given.

        >>> Plan.of([pl.col("x") + 1]).streamable
        True
        >>> def eager(df: pl.DataFrame) -> pl.DataFrame:
        ...     return df
        >>> Plan.of(eager).streamable
        False
        """
        return not any(isinstance(step, _FunctionStep) and step.eager for step in self.steps)

    def columns(self, schema: pl.Schema) -> list[str] | None:
        """The input columns the plan reads, found by Polars' projection pushdown over an
        empty source of ``schema``; None when that is every column or cannot be known
        (a step that takes a ``DataFrame``, or planning fails).

        >>> schema = pl.Schema({"a": pl.Int64, "b": pl.String, "c": pl.Float64})
        >>> Plan.of([pl.col("a") + 1]).columns(schema) is None  # keeps every column
        True
        >>> Plan.of(lambda lf: lf.filter(pl.col("c") > 0).select("a")).columns(schema)
        ['a', 'c']
        """
        if not self.streamable:
            return None
        read: list[list[str] | None] = []

        def empty(
            with_columns: list[str] | None, predicate: Any, n_rows: int | None, batch_size: int | None
        ) -> Iterator[pl.DataFrame]:
            read.append(with_columns)
            yield from ()

        try:
            self.whole(register_io_source(empty, schema=schema)).collect()
        except Exception:
            return None
        if not read or read[0] is None:
            return None
        wanted = set(read[0])
        return None if wanted >= set(schema) else [name for name in schema if name in wanted]

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """The row-local steps over ``frame`` (no aggregation)."""
        for step in self.steps:
            frame = step(frame)
        return frame

    def in_engine(self, frame: pl.LazyFrame, rows: int) -> pl.LazyFrame:
        """The row-local steps over ``frame`` as one streaming query, a step that takes a
        ``DataFrame`` included: it runs on each morsel the engine passes (``map_batches``),
        in pieces of at most ``rows`` rows, with no optimisation across it. Its output
        schema comes from calling it on an empty frame; a step that cannot take one raises
        here (the caller then runs the job chunk by chunk).

        >>> def eager(df: pl.DataFrame) -> pl.DataFrame:
        ...     return df.with_columns(y=pl.col("x") * 2)
        >>> Plan.of(eager).in_engine(pl.LazyFrame({"x": [1, 2, 3]}), rows=2).collect()["y"].to_list()
        [2, 4, 6]
        """
        for step in self.steps:
            if isinstance(step, _FunctionStep) and step.eager:
                schema = step(frame.clear()).collect_schema()
                frame = frame.map_batches(
                    _Pieces(step, rows),
                    schema=schema,
                    streamable=True,
                    predicate_pushdown=False,
                    projection_pushdown=False,
                    slice_pushdown=False,
                )
            else:
                frame = step(frame)
        return frame

    def whole(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """The whole transform, aggregation included, as one lazy query."""
        frame = self.apply(frame)
        return self.aggregate.over(frame) if self.aggregate is not None else frame
