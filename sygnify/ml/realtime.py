"""``RealTimeML``: named, versioned models behind one predict/stream API.

>>> import polars as pl
>>> ml = RealTimeML()
>>> _ = ml.register("double", backend="callable", fn=lambda X: X[:, 0] * 2, features=["x"])
>>> ml.predict("double", pl.DataFrame({"x": [1.0, 2.0]}))["prediction"].to_list()
[2.0, 4.0]
>>> ml.predict_one("double", {"x": 21.0}).prediction
42.0
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa

from sygnify._arrow import to_arrow_table
from sygnify.errors import (
    CircuitOpenError,
    ConfigurationError,
    ModelError,
    NotFoundError,
    SchemaError,
    TransientError,
)
from sygnify.ml.backends import MODEL_BACKENDS, BackendContext, BackendOutput, HttpClients, ModelBackend
from sygnify.ml.metrics import ModelMetrics
from sygnify.ml.registry import MISSING, Fallback, ModelEntry, ShadowStats
from sygnify.monitoring import hooks

__all__ = ["OutputFormat", "Prediction", "RealTimeML"]

OutputFormat = Literal["arrow", "polars", "auto"]
Combine = Literal["mean", "weighted", "max", "min", "vote"] | Callable[[np.ndarray[Any, Any]], Any]
_FALLBACK_ERRORS = (CircuitOpenError, TransientError)


class Prediction(NamedTuple):
    """One record's answer from :meth:`RealTimeML.predict_one`."""

    prediction: Any
    probabilities: np.ndarray[Any, Any] | None
    model: str
    model_version: str
    latency_s: float


def _to_table(data: Any) -> tuple[pa.Table, bool]:
    """Input as an Arrow table, and whether it came as Polars (to answer in kind)."""
    if isinstance(data, Mapping):
        values = list(data.values())
        if values and all(isinstance(v, list | tuple | np.ndarray | pa.Array) for v in values):
            return pa.table(dict(data)), False
        return pa.Table.from_pylist([dict(data)]), False
    if isinstance(data, list):
        if data and not all(isinstance(row, Mapping) for row in data):
            raise ConfigurationError("a list input must be a list of records (dicts)")
        return pa.Table.from_pylist(data), False
    return to_arrow_table(data), isinstance(data, pl.DataFrame | pl.LazyFrame)


def _as_arrow_array(values: Any) -> pa.Array:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    array = np.asarray(values)
    if array.dtype == object:
        return pa.array(array.tolist())
    return pa.array(array)


def _repeat_string(value: str, rows: int) -> pa.Array:
    """A string column of one repeated value, built from buffers (no Python list of rows)."""
    data = value.encode()
    offsets = np.arange(rows + 1, dtype=np.int32) * len(data)
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data * rows))


class RealTimeML:
    """Serve named models with versions: predict, route, shadow, roll back and stream.

    ``http_client`` replaces the pooled :class:`httpx.Client` of remote backends (tests
    pass one with an ``httpx.MockTransport``); ``clock``, ``sleep`` and ``rng`` are
    injectable so retries, breakers and A/B splits are testable without waiting.
    """

    def __init__(
        self,
        *,
        http_client: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._rng = rng or random.Random()
        self._clock = clock
        self._timer = timer
        self._context = BackendContext(http=HttpClients(http_client), clock=clock, sleep=sleep, rng=self._rng)
        self._models: dict[str, ModelEntry] = {}
        self._metrics: dict[tuple[str, str], ModelMetrics] = {}
        self._callbacks: dict[str, list[Callable[..., None]]] = {}
        self._lock = threading.RLock()

    # -- model management -----------------------------------------------------------------------
    def register(
        self,
        name: str,
        backend: str | ModelBackend = "callable",
        *,
        version: str | int = "1",
        activate: bool | None = None,
        fallback_version: str | None = None,
        fallback_default: Any = MISSING,
        **config: Any,
    ) -> ModelBackend:
        """Add version ``version`` of model ``name``, served by ``backend`` with ``config``.

        ``backend`` is a plugin name from the ``sygnify.models`` group (``"onnx"``,
        ``"sklearn"``, ``"kserve_v2"``...) or a ready :class:`ModelBackend`. The first
        version of a model takes all traffic; later ones take none until routed or
        ``activate=True``. ``fallback_version``/``fallback_default`` answer for it when
        its breaker is open or it keeps failing transiently.
        """
        version = str(version)
        if isinstance(backend, ModelBackend):
            if config:
                raise ConfigurationError(
                    "pass options to the backend itself when giving a ModelBackend instance"
                )
            instance = backend
        else:
            instance = MODEL_BACKENDS.load(backend).from_options(config, name=name, context=self._context)
        with self._lock:
            entry = self._models.setdefault(name, ModelEntry(name, rng=self._rng))
            if version in entry.versions:
                raise ConfigurationError(
                    f"model {name!r} already has version {version!r}; unregister it first", resource=name
                )
            entry.add_version(version, instance)
            self._metrics[(name, version)] = ModelMetrics(clock=self._clock)
            if activate:
                entry.set_routes({version: 1.0})
            if fallback_version is not None or fallback_default is not MISSING:
                entry.fallback = Fallback(fallback_version, fallback_default)
        return instance

    def unregister(self, name: str, version: str | int | None = None) -> None:
        """Remove a version (or the whole model) and close its backend(s)."""
        with self._lock:
            entry = self._entry(name)
            versions = [str(version)] if version is not None else list(entry.versions)
            for v in versions:
                backend = entry.require(v)
                if v in entry.routes and len(entry.versions) > 1 and version is not None:
                    raise ConfigurationError(
                        f"version {v!r} of model {name!r} still takes traffic; route it away first",
                        resource=name,
                    )
                del entry.versions[v]
                backend.close()
            if not entry.versions:
                del self._models[name]

    def models(self) -> dict[str, dict[str, Any]]:
        """Every model with its versions, routes, shadow and canary."""
        return {
            name: {
                "versions": list(e.versions),
                "routes": dict(e.routes),
                "shadow": e.shadow_version,
                "canary": e.canary_version,
            }
            for name, e in self._models.items()
        }

    def _entry(self, name: str) -> ModelEntry:
        entry = self._models.get(name)
        if entry is None:
            raise NotFoundError(
                f"no model named {name!r} is registered (models: {', '.join(self._models) or 'none'})",
                resource=name,
            )
        return entry

    def route(self, name: str, weights: Mapping[str | int, float]) -> None:
        """Split traffic between versions by weight, e.g. ``{"v1": 0.9, "v2": 0.1}``.

        With a ``key`` at predict time the split is deterministic per key (sticky A/B);
        without, each row is assigned at random (``rng``).
        """
        with self._lock:
            self._entry(name).set_routes({str(v): w for v, w in weights.items()})

    def shadow(self, name: str, version: str | int | None) -> None:
        """Mirror every request to ``version`` and compare; its answers are never served.

        ``None`` stops shadowing. See :meth:`shadow_report`.
        """
        with self._lock:
            entry = self._entry(name)
            if version is None:
                entry.shadow_version = None
                return
            entry.require(str(version))
            entry.shadow_version = str(version)
            entry.shadow_stats = ShadowStats(str(version))

    def shadow_report(self, name: str) -> dict[str, Any] | None:
        """Rows mirrored, agreement rate, mean absolute difference and errors of the shadow."""
        stats = self._entry(name).shadow_stats
        return stats.as_dict() if stats else None

    def rollback(self, name: str) -> dict[str, float]:
        """Undo the last routing change (route/canary/promote); returns the routes now in force."""
        with self._lock:
            entry = self._entry(name)
            entry.rollback()
            return dict(entry.routes)

    def canary(self, name: str, version: str | int, weight: float = 0.05) -> None:
        """Send ``weight`` of traffic to ``version``, the rest to the current versions."""
        if not 0 < weight < 1:
            raise ConfigurationError(f"canary weight must be between 0 and 1, got {weight}", resource=name)
        with self._lock:
            entry = self._entry(name)
            version = str(version)
            entry.require(version)
            current = {v: w * (1 - weight) for v, w in entry.routes.items() if v != version}
            entry.set_routes({**current, version: weight})
            entry.canary_version = version

    def promote(
        self, name: str, version: str | int | None = None, *, max_error_rate: float | None = None
    ) -> None:
        """Give all traffic to ``version`` (default: the canary).

        With ``max_error_rate``, refuse (``ModelError``) if the version's observed error rate
        is higher, so an automated rollout stops on a bad canary.
        """
        with self._lock:
            entry = self._entry(name)
            chosen = str(version) if version is not None else entry.canary_version
            if chosen is None:
                raise ConfigurationError(
                    f"model {name!r} has no canary; name the version to promote", resource=name
                )
            entry.require(chosen)
            if max_error_rate is not None:
                rate = self._metrics[(name, chosen)].snapshot()["error_rate"]
                if rate > max_error_rate:
                    raise ModelError(
                        f"not promoting {name!r} version {chosen!r}: "
                        f"error rate {rate:.3f} > {max_error_rate}",
                        resource=name,
                    )
            entry.set_routes({chosen: 1.0})
            entry.canary_version = None

    def set_fallback(self, name: str, *, version: str | int | None = None, default: Any = MISSING) -> None:
        """Answer with another version, or a default value, when the routed one is unavailable."""
        with self._lock:
            entry = self._entry(name)
            if version is not None:
                entry.require(str(version))
            entry.fallback = Fallback(str(version) if version is not None else None, default)

    # -- events and metrics ---------------------------------------------------------------------
    def on(self, event: str, callback: Callable[..., None]) -> Callable[[], None]:
        """Call ``callback(table)`` for ``"prediction"`` (each streamed result) or ``"late"`` events."""
        if event not in ("prediction", "late"):
            raise ConfigurationError(f"unknown event {event!r}; use 'prediction' or 'late'")
        self._callbacks.setdefault(event, []).append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks.get(event, []):
                self._callbacks[event].remove(callback)

        return unsubscribe

    def _fire(self, event: str, payload: Any) -> None:
        for callback in list(self._callbacks.get(event, [])):
            callback(payload)

    def metrics(self, name: str | None = None) -> dict[str, dict[str, Any]]:
        """Per ``"model:version"``: count, errors, latency percentiles/histogram, throughput."""
        return {
            f"{m}:{v}": metrics.snapshot()
            for (m, v), metrics in self._metrics.items()
            if name is None or m == name
        }

    def health(self, name: str) -> dict[str, bool]:
        """Whether each version of ``name`` is ready (remote backends ask their server)."""
        result = {}
        for version, backend in self._entry(name).versions.items():
            try:
                result[version] = bool(backend.ready())
            except Exception:
                result[version] = False
        return result

    def _record(
        self, name: str, version: str, rows: int, latency: float, error: BaseException | None
    ) -> None:
        metrics = self._metrics.get((name, version))
        if metrics is not None:
            metrics.record(rows=rows, latency_s=latency, ok=error is None)
        hooks.emit(
            "model.prediction",
            model=name,
            version=version,
            rows=rows,
            latency_s=latency,
            outcome="ok" if error is None else "error",
            error=type(error).__name__ if error is not None else None,
        )

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
        chosen = str(version) if version is not None else entry.pick(key)
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
            self._shadow_one(entry, values, prediction)
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

    def _shadow_one(self, entry: ModelEntry, values: list[Any], served: Any) -> None:
        stats = entry.shadow_stats
        assert stats is not None
        assert entry.shadow_version is not None
        try:
            shadow_prediction, _ = entry.versions[entry.shadow_version].predict_row(values)
        except Exception:
            stats.errors += 1
            return
        self._compare(stats, np.asarray([served]), np.asarray([shadow_prediction]))

    @staticmethod
    def _compare(stats: ShadowStats, served: np.ndarray[Any, Any], shadow: np.ndarray[Any, Any]) -> None:
        stats.rows += len(served)
        stats.agreements += int(np.sum(served == shadow))
        if np.issubdtype(served.dtype, np.number) and np.issubdtype(shadow.dtype, np.number):
            stats.abs_diff_sum += float(np.abs(served.astype(float) - shadow.astype(float)).sum())
            stats.numeric_rows += len(served)

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
        makes A/B routing sticky; a key column is not sent to the model.
        """
        table, was_polars = _to_table(data)
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
        result = self._score(name, features, keys=keys, version=version)
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

    def _score(
        self,
        name: str,
        features: pa.Table,
        *,
        keys: Sequence[Hashable] | None = None,
        version: str | int | None = None,
    ) -> pa.Table:
        entry = self._entry(name)
        if version is not None:
            return self._score_version(entry, str(version), features)
        if entry.single is not None:
            return self._score_version(entry, entry.single, features)
        assigned = np.asarray(entry.pick_many(keys, features.num_rows))
        parts: list[pa.Table] = []
        positions: list[np.ndarray[Any, Any]] = []
        for chosen in dict.fromkeys(assigned.tolist()):
            rows = np.flatnonzero(assigned == chosen)
            parts.append(self._score_version(entry, chosen, features.take(pa.array(rows))))
            positions.append(rows)
        combined = pa.concat_tables(parts, promote_options="permissive")
        order = np.argsort(np.concatenate(positions), kind="stable")
        return combined.take(pa.array(order))

    def _score_version(self, entry: ModelEntry, version: str, features: pa.Table) -> pa.Table:
        backend: ModelBackend = entry.require(version)
        validated = backend.signature.validate(features, model=entry.name) if backend.signature else features
        start = self._timer()
        try:
            out = backend.predict(validated)
        except _FALLBACK_ERRORS as exc:
            self._record(entry.name, version, features.num_rows, self._timer() - start, exc)
            return self._fallback_table(entry, version, validated, features, exc)
        except Exception as exc:
            self._record(entry.name, version, features.num_rows, self._timer() - start, exc)
            raise
        latency = self._timer() - start
        self._record(entry.name, version, features.num_rows, latency, None)
        if entry.shadow_version is not None and entry.shadow_version != version:
            self._shadow_table(entry, features, out)
        return self._result_table(out, entry.name, version, latency, features.num_rows)

    def _fallback_table(
        self, entry: ModelEntry, failed: str, validated: pa.Table, features: pa.Table, exc: BaseException
    ) -> pa.Table:
        fallback = entry.fallback
        if fallback.version is not None and fallback.version != failed:
            return self._score_version(entry, fallback.version, features)
        if fallback.default is not MISSING:
            out = BackendOutput([fallback.default] * features.num_rows)
            return self._result_table(out, entry.name, "fallback", 0.0, features.num_rows)
        raise exc

    def _shadow_table(self, entry: ModelEntry, features: pa.Table, served: BackendOutput) -> None:
        stats = entry.shadow_stats
        assert stats is not None
        assert entry.shadow_version is not None
        shadow_backend = entry.versions[entry.shadow_version]
        start = self._timer()
        try:
            validated = (
                shadow_backend.signature.validate(features, model=entry.name)
                if shadow_backend.signature
                else features
            )
            out = shadow_backend.predict(validated)
        except Exception as exc:  # a shadow must never affect the answer
            stats.errors += 1
            self._record(entry.name, entry.shadow_version, features.num_rows, self._timer() - start, exc)
            return
        self._record(entry.name, entry.shadow_version, features.num_rows, self._timer() - start, None)
        self._compare(stats, np.asarray(served.predictions), np.asarray(out.predictions))

    @staticmethod
    def _result_table(out: BackendOutput, name: str, version: str, latency: float, rows: int) -> pa.Table:
        predictions = _as_arrow_array(out.predictions)
        if len(predictions) != rows:
            raise ModelError(
                f"model {name!r} returned {len(predictions)} predictions for {rows} rows", resource=name
            )
        columns: dict[str, Any] = {"prediction": predictions}
        if out.probabilities is not None:
            proba = np.asarray(out.probabilities, dtype=np.float64)
            width = proba.shape[1] if proba.ndim == 2 else 1
            columns["probabilities"] = pa.FixedSizeListArray.from_arrays(pa.array(proba.ravel()), width)
        columns["model"] = _repeat_string(name, rows)
        columns["model_version"] = _repeat_string(version, rows)
        columns["latency_ms"] = pa.array(np.full(rows, latency * 1000.0))
        return pa.table(columns)

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
        table, was_polars = _to_table(data)
        columns: dict[str, Any] = {}
        scores = []
        for name in names:
            result = self._score(name, table)
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
        columns["prediction"] = _as_arrow_array(combined)
        columns["model"] = pa.array(["+".join(names)] * table.num_rows)
        return self._output(pa.table(columns), output, was_polars)

    # -- streaming ------------------------------------------------------------------------------
    def stream(self, source: Any, *, model: str, mode: str = "streaming", **options: Any) -> Any:
        """Score a stream; returns a :class:`~sygnify.ml.streaming.PredictionStream`.

        ``source`` is a :class:`~sygnify.ml.sources.StreamSource`, or an (async) iterable of
        Arrow batches/tables, Polars frames or dicts. Iterate it (``for`` or ``async for``)
        to get one prediction table per micro-batch or window; ``on("prediction", cb)``
        callbacks run before each is yielded, and source batches are acknowledged only
        after that. See :mod:`sygnify.ml.streaming` for the modes and their options.
        """
        from sygnify.ml.streaming import PredictionStream

        self._entry(model)
        return PredictionStream(self, source, model=model, mode=mode, clock=self._clock, **options)

    def close(self) -> None:
        """Close every backend and the pooled HTTP clients."""
        with self._lock:
            for entry in self._models.values():
                for backend in entry.versions.values():
                    backend.close()
            self._models.clear()
        self._context.http.close()

    def __enter__(self) -> RealTimeML:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RealTimeML(models={list(self._models)})"
