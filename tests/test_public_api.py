from __future__ import annotations

import inspect
from pathlib import Path

import sygnify
from sygnify import errors


def test_top_level_surface_is_exactly_the_public_api() -> None:
    assert sorted(sygnify.__all__) == [
        "CloudDataConnector",
        "LargeDataHandler",
        "RealTimeML",
        "__version__",
        "errors",
    ]
    for name in sygnify.__all__:
        assert hasattr(sygnify, name)


def test_package_ships_py_typed() -> None:
    assert (Path(sygnify.__file__).parent / "py.typed").is_file()


def test_every_error_is_a_sygnify_error_and_exported() -> None:
    classes = {
        name: obj for name, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, Exception)
    }
    assert set(errors.__all__) == set(classes)
    assert all(issubclass(cls, errors.SygnifyError) for cls in classes.values())


def test_error_families() -> None:
    transient = [errors.ConnectionFailedError, errors.OperationTimeoutError, errors.ThrottledError]
    assert all(issubclass(cls, errors.TransientError) for cls in transient)
    permanent = [
        errors.ConfigurationError,
        errors.AuthenticationError,
        errors.QueryError,
        errors.SchemaError,
        errors.DataQualityError,
        errors.MemoryBudgetError,
        errors.ModelError,
        errors.NotFoundError,
        errors.CircuitOpenError,
        errors.PermissionDeniedError,
    ]
    assert not any(issubclass(cls, errors.TransientError) for cls in permanent)
    assert issubclass(errors.PathEscapeError, errors.PermissionDeniedError)
    assert issubclass(errors.PluginNotFoundError, errors.ConfigurationError)


def test_errors_carry_the_resource_they_are_about() -> None:
    error = errors.ThrottledError("slow down", resource="bucket", retry_after=2.5)
    assert (error.resource, error.retry_after, str(error)) == ("bucket", 2.5, "slow down")
