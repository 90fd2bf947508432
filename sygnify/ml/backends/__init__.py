"""Model backends (entry-point group ``sygnify.models``) and their registry.

Each backend is one module with one :class:`ModelBackend` subclass and its pydantic config
(``config_model``), loaded only when a model asks for it, so optional dependencies cost
nothing until used::

    >>> "onnx" in MODEL_BACKENDS.names()
    True
"""

from __future__ import annotations

from sygnify.errors import ConfigurationError
from sygnify.ml.backends.base import BackendConfig, BackendContext, BackendOutput, HttpClients, ModelBackend
from sygnify.plugins import GROUPS, Registry

__all__ = [
    "MODEL_BACKENDS",
    "BackendConfig",
    "BackendContext",
    "BackendOutput",
    "HttpClients",
    "ModelBackend",
]


def _validate(name: str, plugin: object) -> type[ModelBackend]:
    if not (isinstance(plugin, type) and issubclass(plugin, ModelBackend)):
        raise ConfigurationError(
            f"model backend plugin {name!r} ({plugin!r}) is not a subclass of "
            "sygnify.ml.backends.ModelBackend",
            resource=name,
        )
    return plugin


#: sygnify's model backends (from :data:`sygnify.plugins.BUILTINS`) and third-party ones, by name.
MODEL_BACKENDS: Registry[type[ModelBackend]] = Registry(
    GROUPS["model"], kind="model backend", validate=_validate
)
