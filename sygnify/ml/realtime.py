"""``RealTimeML``: named, versioned models behind one predict/stream API.

Version management and routing live in :class:`~sygnify.ml.versions.ModelVersions`; this
module is the serving half: predictions for one record, a table or a stream.

>>> import polars as pl
>>> ml = RealTimeML()
>>> _ = ml.register("double", backend="callable", fn=lambda X: X[:, 0] * 2, features=["x"])
>>> ml.predict("double", pl.DataFrame({"x": [1.0, 2.0]}))["prediction"].to_list()
[2.0, 4.0]
>>> ml.predict_one("double", {"x": 21.0}).prediction
42.0
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Callable, Generator, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa

from sygnify.errors import CircuitOpenError, ConfigurationError, SchemaError, TransientError
from sygnify.ml.answers import Answers, as_arrow_array, to_table
from sygnify.ml.backends import BackendOutput, ModelBackend
from sygnify.ml.routing import MISSING, ModelEntry
from sygnify.ml.stream import PredictionStream
from sygnify.ml.versions import ModelVersions
from sygnify.processing.stream_processor import StreamEvent

__all__ = ["OutputFormat", "Prediction", "RealTimeML"]

OutputFormat = Literal["arrow", "polars", "auto"]
Combine = Literal["mean", "weighted", "max", "min", "vote"] | Callable[[np.ndarray[Any, Any]], Any]
_FALLBACK_ERRORS = (CircuitOpenError, TransientError)

#: A scoring plan (:meth:`RealTimeML._score_plan`): all of :meth:`RealTimeML.score`'s logic
#: (routing, signature checks, fallbacks, shadows, metrics, the answer table) as a generator
#: that yields each ``(backend, validated table)`` to predict and is sent the backend's
#: output (or thrown its error). :func:`_run` drives it with ``backend.predict`` (blocking),
#: :func:`_arun` by awaiting (:func:`_apredict`), so sync and async scoring share one logic.
_Plan = Generator[tuple[ModelBackend, pa.Table], BackendOutput, pa.Table]


class Prediction(NamedTuple):
    """One record's answer from :meth:`RealTimeML.predict_one`."""

    prediction: Any
    probabilities: np.ndarray[Any, Any] | None
    model: str
    model_version: str
    latency_s: float


def _shadow_scorer(name: str, features: pa.Table) -> Callable[[ModelBackend], Any]:
    def run(shadow: ModelBackend) -> Any:
        validated = shadow.signature.validate(features, model=name) if shadow.signature else features
        return shadow.predict(validated).predictions

    return run


class RealTimeML(ModelVersions):
    """Serve named models with versions: predict, route, shadow, roll back and stream.

    ``http_client`` replaces the pooled :class:`httpx.Client` of remote backends (tests
    pass one with an ``httpx.MockTransport``); ``clock``, ``sleep`` and ``rng`` are
    injectable so retries, breakers and A/B splits are testable without waiting. Shadow
    traffic runs on ``shadow_workers`` background threads behind a queue of
    ``shadow_queue`` requests (see :meth:`shadow`, :meth:`flush_shadows`). ``config_file``
    holds ``[models.<name>]`` sections for :meth:`register` (default: ``./sygnify.toml``).
    """

    def __init__(
        self,
        *,
        http_client: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        timer: Callable[[], float] = time.perf_counter,
        shadow_queue: int = 256,
        shadow_workers: int = 1,
        config_file: str | Path | None = None,
    ) -> None:
        super().__init__(
            http_client=http_client,
            clock=clock,
            sleep=sleep,
            rng=rng,
            timer=timer,
            shadow_queue=shadow_queue,
            shadow_workers=shadow_workers,
            config_file=config_file,
        )
        self._callbacks: dict[StreamEvent, list[Callable[..., None]]] = {}
        self._answers = Answers()

    # -- events ---------------------------------------------------------------------
    def on(self, event: StreamEvent, callback: Callable[..., None]) -> Callable[[], None]:
        """Call ``callback(payload)`` on each :meth:`notify` of ``event``; returns an unsubscribe.

        Streams notify ``"prediction"`` with each result table (before it is yielded) and
        ``"late"`` with ``{"model": name, "rows": n}`` for rows dropped as late.
        """
        if event not in ("prediction", "late"):
            raise ConfigurationError(f"unknown event {event!r}; use 'prediction' or 'late'")
        self._callbacks.setdefault(event, []).append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks.get(event, []):
                self._callbacks[event].remove(callback)

        return unsubscribe

    def notify(self, event: StreamEvent, payload: Any) -> None:
        """Run the :meth:`on` callbacks of ``event`` with ``payload`` (streams call this).

        >>> ml = RealTimeML()
        >>> stop = ml.on("late", print)
        >>> ml.notify("late", {"model": "m", "rows": 2})
        {'model': 'm', 'rows': 2}
        """
        for callback in list(self._callbacks.get(event, [])):
            callback(payload)

    # -- prediction -----------------------------------------------------------------------------
    def predict_one(
        self,
        name: str,
        record: Mapping[str, Any] | Sequence[Any],
        *,
        key: Hashable | None = None,
        version: str | int | None = None,
    ) -> Prediction:
        """One record (a dict, or values in feature order) → :class:`Prediction`, without Arrow.

        This is the low-latency path: no table is built, the backend gets a one-row array.
        """
        entry = self._models.get(name) or self._entry(name)
        chosen = str(version) if version is not None else (entry.single or entry.pick(key))
        backend = entry.versions.get(chosen) or entry.require(chosen)
        signature = backend.signature
        if signature is not None:
            values = signature.row_values(record, model=name)
        else:
            values = list(record.values()) if isinstance(record, Mapping) else list(record)
        timer = self._timer
        start = timer()
        try:
            prediction, proba = backend.predict_row(values)
        except (ValueError, TypeError) as exc:
            error: SchemaError = (
                signature.bad_value(values, model=name)
                if signature is not None
                else SchemaError(f"model {name!r} could not use the record: {exc}", resource=name)
            )
            self._record(name, chosen, 1, timer() - start, error)
            raise error from exc
        except _FALLBACK_ERRORS as exc:
            self._record(name, chosen, 1, timer() - start, exc)
            return self._fallback_one(entry, chosen, values, exc, start)
        except Exception as exc:
            self._record(name, chosen, 1, timer() - start, exc)
            raise
        latency = timer() - start
        self._record(name, chosen, 1, latency, None)
        if isinstance(prediction, np.generic):
            prediction = prediction.item()
        if entry.shadow_version is not None and entry.shadow_version != chosen:
            self._mirror(entry, 1, [prediction], lambda shadow: [shadow.predict_row(values)[0]])
        return Prediction(prediction, proba, name, chosen, latency)

    def _fallback_one(
        self, entry: ModelEntry, failed: str, values: list[Any], exc: BaseException, start: float
    ) -> Prediction:
        fallback = entry.fallback
        if fallback.version is not None and fallback.version != failed:
            prediction, proba = entry.require(fallback.version).predict_row(values)
            latency = self._timer() - start
            self._record(entry.name, fallback.version, 1, latency, None)
            return Prediction(prediction, proba, entry.name, fallback.version, latency)
        if fallback.default is not MISSING:
            return Prediction(fallback.default, None, entry.name, "fallback", self._timer() - start)
        raise exc

    def _mirror(self, entry: ModelEntry, rows: int, served: Any, run: Callable[[ModelBackend], Any]) -> None:
        """Queue ``run(shadow_backend)`` off the serving path and compare it with ``served``.

        Nothing here can raise into, or wait in, the caller: a full queue drops the request
        (counted in the shadow report) and shadow failures are counted as errors.
        """
        stats, version = entry.shadow_stats, entry.shadow_version
        if stats is None or version is None:
            return
        backend = entry.versions.get(version)
        if backend is None:
            return

        def job() -> None:
            start = self._timer()
            try:
                shadow_predictions = run(backend)
            except Exception as exc:  # a shadow must never affect the answer
                stats.count_error()
                self._record(entry.name, version, rows, self._timer() - start, exc)
                return
            self._record(entry.name, version, rows, self._timer() - start, None)
            stats.compare(np.asarray(served), np.asarray(shadow_predictions))

        if not self._shadows.submit(job):
            stats.count_dropped()

    def predict(
        self,
        name: str,
        data: Any,
        *,
        key: str | Sequence[Hashable] | None = None,
        version: str | int | None = None,
        output: OutputFormat = "auto",
        include_input: bool = False,
    ) -> pa.Table | pl.DataFrame:
        """Predictions for Arrow/Polars/pandas data, a dict or a list of dicts.

        Answers with ``prediction`` (and ``probabilities``, ``classes`` when the model gives
        them), ``model``, ``model_version`` and ``latency_ms`` columns; Polars in → Polars
        out unless ``output`` says otherwise. ``key`` (a column name, or one key per row)
        makes A/B routing sticky; a key column is not sent to the model. :meth:`apredict` is
        the same for ``async`` code.
        """
        table, was_polars, features, keys = self._request(data, key)
        result = self.score(name, features, keys=keys, version=version)
        return self._answer(result, table, include_input, output, was_polars)

    async def apredict(
        self,
        name: str,
        data: Any,
        *,
        key: str | Sequence[Hashable] | None = None,
        version: str | int | None = None,
        output: OutputFormat = "auto",
        include_input: bool = False,
    ) -> pa.Table | pl.DataFrame:
        """:meth:`predict` for ``async`` code: the same arguments, routing, fallbacks,
        shadows, metrics, events, errors and answer; the event loop is never blocked.

        A backend with an ``async def apredict(table)`` (``kserve_v2``, on an
        ``httpx.AsyncClient`` with the same retries and breaker) is awaited; any other
        (``sklearn``, ``onnx``, ``torch``, ``callable``, and the remote backends without an
        async client) runs its ``predict`` in a worker thread (:func:`asyncio.to_thread`).
        Input conversion and the signature check (cheap, remembered per schema) run on the
        loop. Close with ``await ml.aclose()`` (or ``async with``) to close async clients.

        >>> import asyncio
        >>> ml = RealTimeML()
        >>> _ = ml.register("double", backend="callable", fn=lambda X: X[:, 0] * 2, features=["x"])
        >>> async def main() -> list[list[float]]:
        ...     answers = await asyncio.gather(*(ml.apredict("double", {"x": [i]}) for i in (1.0, 2.0)))
        ...     return [answer["prediction"].to_pylist() for answer in answers]
        >>> asyncio.run(main())
        [[2.0], [4.0]]
        """
        table, was_polars, features, keys = self._request(data, key)
        result = await _arun(self._score_plan(name, features, keys, version))
        return self._answer(result, table, include_input, output, was_polars)

    @staticmethod
    def _request(
        data: Any, key: str | Sequence[Hashable] | None
    ) -> tuple[pa.Table, bool, pa.Table, Sequence[Hashable] | None]:
        """A predict call's input: the table, whether it was Polars, the features and the keys."""
        table, was_polars = to_table(data)
        keys: Sequence[Hashable] | None = None
        features = table
        if isinstance(key, str):
            if key not in table.column_names:
                raise SchemaError(f"key column {key!r} is not in the input", resource=key)
            keys = table.column(key).to_pylist()
            features = table.drop_columns([key])
        elif key is not None:
            keys = list(key)
            if len(keys) != table.num_rows:
                raise ConfigurationError(f"{len(keys)} keys given for {table.num_rows} rows")
        return table, was_polars, features, keys

    def _answer(
        self, result: pa.Table, table: pa.Table, include_input: bool, output: OutputFormat, was_polars: bool
    ) -> pa.Table | pl.DataFrame:
        if include_input:
            for index, column_name in enumerate(table.column_names):
                result = result.add_column(index, column_name, table.column(column_name))
        return self._output(result, output, was_polars)

    @staticmethod
    def _output(result: pa.Table, output: OutputFormat, was_polars: bool) -> pa.Table | pl.DataFrame:
        if output == "polars" or (output == "auto" and was_polars):
            frame = pl.from_arrow(result)
            assert isinstance(frame, pl.DataFrame)
            return frame
        return result

    def score(
        self,
        name: str,
        features: pa.Table,
        *,
        keys: Sequence[Hashable] | None = None,
        version: str | int | None = None,
    ) -> pa.Table:
        """The answer table of model ``name`` for an Arrow ``features`` table, nothing else.

        The Arrow-only core of :meth:`predict` (which converts inputs, handles key columns
        and output formats): ``keys`` (one per row) make A/B routing sticky, ``version``
        pins a version. Streams score through this.

        >>> ml = RealTimeML()
        >>> _ = ml.register("double", backend="callable", fn=lambda X: X[:, 0] * 2, features=["x"])
        >>> ml.score("double", pa.table({"x": [1.0, 2.0]})).column("prediction").to_pylist()
        [2.0, 4.0]
        """
        return _run(self._score_plan(name, features, keys, version))

    def _score_plan(
        self,
        name: str,
        features: pa.Table,
        keys: Sequence[Hashable] | None,
        version: str | int | None,
    ) -> _Plan:
        entry = self._entry(name)
        if version is not None:
            return (yield from self._version_plan(entry, str(version), features))
        if entry.single is not None:
            return (yield from self._version_plan(entry, entry.single, features))
        assigned = np.asarray(entry.pick_many(keys, features.num_rows))
        parts: list[pa.Table] = []
        positions: list[np.ndarray[Any, Any]] = []
        for chosen in dict.fromkeys(assigned.tolist()):
            rows = np.flatnonzero(assigned == chosen)
            parts.append((yield from self._version_plan(entry, chosen, features.take(pa.array(rows)))))
            positions.append(rows)
        combined = pa.concat_tables(parts, promote_options="permissive")
        order = np.argsort(np.concatenate(positions), kind="stable")
        return combined.take(pa.array(order))

    def _version_plan(self, entry: ModelEntry, version: str, features: pa.Table) -> _Plan:
        backend: ModelBackend = entry.require(version)
        validated = backend.signature.validate(features, model=entry.name) if backend.signature else features
        start = self._timer()
        try:
            out = yield backend, validated
        except _FALLBACK_ERRORS as exc:
            self._record(entry.name, version, features.num_rows, self._timer() - start, exc)
            return (yield from self._fallback_plan(entry, version, features, exc))
        except Exception as exc:
            self._record(entry.name, version, features.num_rows, self._timer() - start, exc)
            raise
        latency = self._timer() - start
        self._record(entry.name, version, features.num_rows, latency, None)
        if entry.shadow_version is not None and entry.shadow_version != version:
            self._mirror(entry, features.num_rows, out.predictions, _shadow_scorer(entry.name, features))
        return self._answers.table(out, entry.name, version, latency_s=latency, rows=features.num_rows)

    def _fallback_plan(self, entry: ModelEntry, failed: str, features: pa.Table, exc: BaseException) -> _Plan:
        fallback = entry.fallback
        if fallback.version is not None and fallback.version != failed:
            return (yield from self._version_plan(entry, fallback.version, features))
        if fallback.default is not MISSING:
            out = BackendOutput([fallback.default] * features.num_rows)
            return self._answers.table(out, entry.name, "fallback", latency_s=0.0, rows=features.num_rows)
        raise exc

    def ensemble(
        self,
        names: Sequence[str],
        data: Any,
        *,
        combine: Combine = "mean",
        weights: Sequence[float] | None = None,
        output: OutputFormat = "auto",
    ) -> pa.Table | pl.DataFrame:
        """Score ``data`` with several models in one call and combine their predictions.

        The answer has ``prediction_<name>`` per model and ``prediction`` combined by
        ``combine``: ``"mean"``, ``"weighted"`` (with ``weights``), ``"max"``, ``"min"``,
        ``"vote"`` (majority label) or a callable on the ``(rows, models)`` array.
        """
        if not names:
            raise ConfigurationError("ensemble needs at least one model name")
        table, was_polars = to_table(data)
        columns: dict[str, Any] = {}
        scores = []
        for name in names:
            result = self.score(name, table)
            column = result.column("prediction")
            columns[f"prediction_{name}"] = column
            scores.append(column.to_numpy())
        matrix = np.column_stack(scores)
        combined: Any
        if callable(combine):
            combined = combine(matrix)
        elif combine == "vote":
            combined = [max(set(row.tolist()), key=row.tolist().count) for row in matrix]
        elif combine == "weighted":
            if weights is None or len(weights) != len(names):
                raise ConfigurationError("combine='weighted' needs one weight per model")
            w = np.asarray(weights, dtype=float)
            combined = matrix.astype(float) @ (w / w.sum())
        elif combine in ("mean", "max", "min"):
            combined = getattr(np, combine)(matrix.astype(float), axis=1)
        else:
            raise ConfigurationError(f"unknown combine {combine!r}")
        columns["prediction"] = as_arrow_array(combined)
        columns["model"] = self._answers.constant("+".join(names), table.num_rows)
        return self._output(pa.table(columns), output, was_polars)

    # -- streaming ------------------------------------------------------------------------------
    def stream(self, source: Any, *, model: str, mode: str = "streaming", **options: Any) -> PredictionStream:
        """Score a stream; returns a :class:`~sygnify.ml.stream.PredictionStream`.

        ``source`` is a :class:`~sygnify.streams.StreamSource`, or an (async) iterable of
        Arrow batches/tables, Polars frames or dicts. Iterate it (``for`` or ``async for``)
        to get one prediction table per micro-batch or window; ``on("prediction", cb)``
        callbacks run before each is yielded, and source batches are acknowledged only
        after that. See :mod:`sygnify.ml.stream` for the modes and their options.

        Events carry more than a model's features (ids, timestamps, other aggregates): a
        model declared with ``features=`` gets just its features (the other columns are
        passed through to the results); a model without declared features gets them all.
        """
        entry = self._entry(model)

        def score(features: pa.Table, keys: Sequence[Hashable] | None) -> pa.Table:
            return self.score(model, _model_columns(entry.versions.values(), features), keys=keys)

        return PredictionStream(
            source, model=model, mode=mode, score=score, notify=self.notify, clock=self._clock, **options
        )

    def __enter__(self) -> RealTimeML:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def aclose(self) -> None:
        """:meth:`close` (in a worker thread: it waits for mirrored work), then each backend's
        async HTTP client (made by :meth:`apredict` on remote backends)."""
        backends = [backend for entry in self._models.values() for backend in entry.versions.values()]
        await asyncio.to_thread(self.close)
        for backend in backends:
            aclose = getattr(backend, "aclose", None)
            if aclose is not None and inspect.iscoroutinefunction(aclose):
                await aclose()

    async def __aenter__(self) -> RealTimeML:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"RealTimeML(models={list(self._models)})"


def _model_columns(backends: Any, features: pa.Table) -> pa.Table:
    """The columns of ``features`` that the model's versions declare (all of them if one declares none).

    Missing features are left for the signature check to name.
    """
    wanted: dict[str, None] = {}
    for backend in backends:
        signature = getattr(backend, "signature", None)
        if signature is None:
            return features
        wanted.update(dict.fromkeys(signature.names))
    present = [name for name in features.column_names if name in wanted]
    if len(present) == features.num_columns:
        return features
    return features.select(present)


def _run(plan: _Plan) -> pa.Table:
    """Drive a scoring plan in this thread: each step is ``backend.predict(table)``."""
    try:
        step = next(plan)
        while True:
            backend, table = step
            try:
                out = backend.predict(table)
            except Exception as exc:  # the plan decides: fallback, record, re-raise
                step = plan.throw(exc)
            else:
                step = plan.send(out)
    except StopIteration as done:
        result: pa.Table = done.value
        return result


async def _arun(plan: _Plan) -> pa.Table:
    """Drive a scoring plan on the event loop: each step is awaited (:func:`_apredict`)."""
    try:
        step = next(plan)
        while True:
            backend, table = step
            try:
                out = await _apredict(backend, table)
            except Exception as exc:  # the plan decides (a cancellation is not an Exception)
                step = plan.throw(exc)
            else:
                step = plan.send(out)
    except StopIteration as done:
        result: pa.Table = done.value
        return result


async def _apredict(backend: ModelBackend, table: pa.Table) -> BackendOutput:
    """``backend``'s own ``async def apredict`` if it has one, else its ``predict`` in a worker thread."""
    native = getattr(backend, "apredict", None)
    if native is not None and inspect.iscoroutinefunction(native):
        out: BackendOutput = await native(table)
        return out
    return await asyncio.to_thread(backend.predict, table)
