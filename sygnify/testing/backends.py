"""The conformance checks every model backend passes, like River's ``check_estimator``.

:func:`check_model_backend` takes a factory returning a fresh backend and a table of sample
features (the model's features, in order, a few rows) and checks the contract of
:class:`~sygnify.ml.ModelBackend`: ``predict`` returns a
:class:`~sygnify.ml.BackendOutput` with one prediction per row (and probabilities that fit),
``predict_row`` agrees with ``predict``, predictions are deterministic, an empty table is
answered with no predictions or a typed error, a table with a missing or an unexpected
column is refused with a :class:`~sygnify.errors.SchemaError` naming the column, and
``metadata`` / ``ready`` / ``close`` behave::

    >>> import pyarrow as pa
    >>> from sygnify.ml import RealTimeML
    >>> with RealTimeML() as ml:
    ...     versions = iter(range(1, 100))
    ...     def make():  # a fresh backend: a new version of the model
    ...         return ml.register("total", backend="callable", version=next(versions),
    ...                            fn=lambda X: X.sum(axis=1), features=["a", "b"])
    ...     check_model_backend(make, pa.table({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.5, 0.5]}))
    ['predict_answers_every_row', 'predict_row_agrees_with_predict', ...]

In pytest, subclass :class:`ModelBackendConformance` and provide ``backend_factory`` and
``sample_features`` fixtures; each check is then its own test. The kit needs nothing beyond
sygnify (pytest only collects the class).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from sygnify.errors import ConfigurationError, SchemaError, SygnifyError
from sygnify.ml import BackendOutput, ModelBackend
from sygnify.testing._checks import expect, raises, run_checks

__all__ = ["ModelBackendConformance", "check_model_backend"]

BackendFactory = Callable[[], ModelBackend]

#: rows compared between ``predict_row`` and ``predict``
ROWS_COMPARED = 5


def _same(left: Any, right: Any) -> bool:
    """Equal labels, or numbers equal to float32 precision (backends may compute in float32)."""
    a, b = np.asarray(left), np.asarray(right)
    if a.shape != b.shape:
        return False
    if np.issubdtype(a.dtype, np.number) and np.issubdtype(b.dtype, np.number):
        return bool(np.allclose(a.astype(float), b.astype(float), rtol=1e-5, atol=1e-6, equal_nan=True))
    return bool(np.array_equal(a, b))


def _empty_like(table: pa.Table) -> pa.Table:
    return table.slice(0, 0)


class ModelBackendConformance:
    """Behaviour every model backend must show; fixtures ``backend_factory`` and ``sample_features``.

    ``backend_factory`` returns a fresh backend (the kit closes what it opens);
    ``sample_features`` is a table of at least one row with exactly the model's features.
    """

    def test_predict_answers_every_row(
        self, backend_factory: BackendFactory, sample_features: pa.Table
    ) -> None:
        backend = backend_factory()
        try:
            expect(isinstance(backend, ModelBackend), f"the factory returned {type(backend).__name__}")
            out = backend.predict(sample_features)
        finally:
            backend.close()
        rows = sample_features.num_rows
        expect(isinstance(out, BackendOutput), f"predict() returned {type(out).__name__}, not BackendOutput")
        predictions = np.asarray(out.predictions)
        expect(
            predictions.ndim == 1 and len(predictions) == rows,
            f"predict() on {rows} rows gave predictions of shape {predictions.shape}, not ({rows},)",
        )
        if out.probabilities is not None:
            proba = np.asarray(out.probabilities)
            expect(
                proba.ndim == 2 and proba.shape[0] == rows,
                f"probabilities have shape {proba.shape}, not ({rows}, classes)",
            )
            expect(
                np.allclose(proba.sum(axis=1), 1.0, atol=1e-4),
                f"probabilities of a row do not sum to 1: {proba.sum(axis=1)}",
            )
            if out.classes is not None:
                expect(
                    len(out.classes) == proba.shape[1],
                    f"{len(out.classes)} classes for {proba.shape[1]} probability columns",
                )

    def test_predict_row_agrees_with_predict(
        self, backend_factory: BackendFactory, sample_features: pa.Table
    ) -> None:
        backend = backend_factory()
        try:
            out = backend.predict(sample_features)
            for index, row in enumerate(sample_features.slice(0, ROWS_COMPARED).to_pylist()):
                label, proba = backend.predict_row(list(row.values()))
                expect(
                    _same(label, np.asarray(out.predictions)[index]),
                    f"row {index}: predict_row gave {label!r}, predict gave {out.predictions[index]!r}",
                )
                if out.probabilities is not None:
                    expect(
                        proba is not None and _same(proba, np.asarray(out.probabilities)[index]),
                        f"row {index}: predict_row probabilities {proba} differ from predict's "
                        f"{np.asarray(out.probabilities)[index]}",
                    )
        finally:
            backend.close()

    def test_predictions_are_deterministic(
        self, backend_factory: BackendFactory, sample_features: pa.Table
    ) -> None:
        first, second = backend_factory(), backend_factory()
        try:
            a, b = first.predict(sample_features), first.predict(sample_features)
            c = second.predict(sample_features)
        finally:
            first.close()
            second.close()
        expect(_same(a.predictions, b.predictions), "two predict() calls on the same rows disagree")
        expect(_same(a.predictions, c.predictions), "two backends from the same factory disagree")

    def test_an_empty_table_gets_no_predictions_or_a_typed_error(
        self, backend_factory: BackendFactory, sample_features: pa.Table
    ) -> None:
        backend = backend_factory()
        try:
            out = backend.predict(_empty_like(sample_features))
        except SygnifyError:
            return  # a model that cannot take zero rows says so with a typed error
        except Exception as exc:
            raise AssertionError(
                f"predict() on an empty table raised {type(exc).__name__}: {exc}; "
                "return no predictions or raise a sygnify error"
            ) from exc
        finally:
            backend.close()
        expect(
            len(out.predictions) == 0, f"predict() on an empty table gave {len(out.predictions)} predictions"
        )

    def test_missing_and_unexpected_columns_are_schema_errors(
        self, backend_factory: BackendFactory, sample_features: pa.Table
    ) -> None:
        backend = backend_factory()
        try:
            missing = sample_features.column_names[-1]
            short = sample_features.drop_columns([missing])
            wide = sample_features.append_column(
                "sygnify_unexpected", pa.array([0.0] * sample_features.num_rows)
            )
            signature = backend.signature
            if signature is None:  # nothing checks the input before the backend: it must itself
                for table, what in ((short, f"without column {missing!r}"), (wide, "with an extra column")):
                    with raises(SchemaError, f"predict() on a table {what} (the backend has no signature)"):
                        backend.predict(table)
                return
            expect(
                signature.names == sample_features.column_names,
                f"the signature's features {signature.names} are not the sample's "
                f"{sample_features.column_names}",
            )
            with raises(SchemaError, f"validating a table without feature {missing!r}", match=missing):
                signature.validate(short, model=backend.model_name)
            if signature.extra == "error":
                with raises(
                    SchemaError, "validating a table with an unexpected column", match="sygnify_unexpected"
                ):
                    signature.validate(wide, model=backend.model_name)
        finally:
            backend.close()

    def test_metadata_ready_and_close(
        self, backend_factory: BackendFactory, sample_features: pa.Table
    ) -> None:
        backend = backend_factory()
        try:
            meta = backend.metadata()
            expect(isinstance(meta, dict), f"metadata() returned {type(meta).__name__}, not a dict")
            expect(
                meta.get("backend") == backend.backend_name,
                f"metadata()['backend'] is {meta.get('backend')!r}, not {backend.backend_name!r}",
            )
            ready = backend.ready()
            expect(isinstance(ready, bool), f"ready() returned {ready!r}, not a bool")
            expect(backend.model_name in repr(backend), f"repr {backend!r} does not name the model")
        finally:
            backend.close()
        backend.close()  # closing twice does nothing


def check_model_backend(backend_factory: BackendFactory, sample_features: pa.Table) -> list[str]:
    """Run every check of :class:`ModelBackendConformance`; returns the names of those that ran.

    ``backend_factory()`` returns a fresh backend; ``sample_features`` holds at least one row
    of exactly the model's features. The first failing check raises AssertionError.
    """
    if sample_features.num_rows == 0:
        raise ConfigurationError("check_model_backend: sample_features is empty; give it at least one row")
    return run_checks(ModelBackendConformance(), backend_factory, sample_features)
