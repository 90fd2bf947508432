"""Configuration: pydantic models, resolved from kwargs > environment > TOML file.

A named connection can be described in a TOML file (``sygnify.toml`` in the working
directory, or the file named by ``SYGNIFY_CONFIG``), with ``${VAR}`` / ``${VAR:-default}``
interpolated from the environment::

    [connections.lake]
    type = "local"
    root = "${DATA_DIR:-./data}"

Any field can be overridden by an environment variable ``SYGNIFY_<NAME>__<FIELD>``
(nested fields with more ``__``), and keyword arguments win over both::

    >>> resolve_connection(
    ...     "lake", None, {"root": "/srv/data"},
    ...     environ={"SYGNIFY_LAKE__TYPE": "local", "SYGNIFY_LAKE__RETRY__MAX_ATTEMPTS": "2"},
    ...     config_file=None,
    ... )
    ('local', {'retry': {'max_attempts': '2'}, 'root': '/srv/data'})

Models, stream sources and the handler have sections too, validated by the same pydantic
models as keyword arguments (``[models.<name>]``, ``[sources.<name>]``, ``[handler]``)::

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "sygnify.toml"
    >>> _ = path.write_text('[models.risk]\\nbackend = "onnx"\\npath = "${MODELS:-/srv}/risk.onnx"\\n')
    >>> load_section("models", "risk", environ={}, config_file=path)
    {'backend': 'onnx', 'path': '/srv/risk.onnx'}
    >>> load_section("sources", "sensors", environ={}, config_file=path)
    {}

Secrets are :class:`pydantic.SecretStr`: they never show in ``repr``, logs or errors.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from sygnify import events, redaction
from sygnify.errors import ConfigurationError
from sygnify.resilience import BreakerState, CircuitBreaker, Resilience, RetryPolicy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "BreakerSettings",
    "ConnectorConfig",
    "RetrySettings",
    "SecretStr",
    "config_fingerprint",
    "config_kwargs",
    "find_config_file",
    "hold_secrets",
    "SECTIONS",
    "interpolate",
    "load_config_file",
    "load_section",
    "merge_settings",
    "parse_size",
    "resolve_connection",
    "validate_config",
]

ENV_PREFIX = "SYGNIFY_"
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

ModelT = TypeVar("ModelT", bound=BaseModel)

#: The tables of a sygnify TOML file: named sections per plugin kind, and the handler's one.
SECTIONS = ("connections", "models", "sources", "handler")
Section = Literal["connections", "models", "sources", "handler"]


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | float | str, *, what: str = "size") -> int:
    """Bytes in ``value``: an int, or a string such as ``"512MB"``, ``"2GiB"``, ``"1.5g"``.

    ``what`` names the option in errors (a :class:`~sygnify.errors.ConfigurationError`).

    >>> parse_size(1024), parse_size("2 KiB"), parse_size("1GB"), parse_size("128MiB")
    (1024, 2048, 1000000000, 134217728)
    """
    if isinstance(value, bool):
        raise ConfigurationError(f"{what} must be a size, got {value!r}", resource=what)
    if isinstance(value, int | float):
        size = int(value)
    else:
        match = _SIZE.match(value)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise ConfigurationError(
                f"cannot read {what}={value!r} as a memory size; use bytes or e.g. '512MB', '2GiB'",
                resource=what,
            )
        size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ConfigurationError(f"{what}: memory size must be positive, got {value!r}", resource=what)
    return size


class RetrySettings(BaseModel):
    """How transient failures are retried (see :class:`sygnify.resilience.RetryPolicy`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(4, ge=1)
    initial_delay: float = Field(0.2, ge=0)
    max_delay: float = Field(10.0, ge=0)
    jitter: float = Field(0.25, ge=0)


class BreakerSettings(BaseModel):
    """When a connection's circuit breaker opens and how long it stays open."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failure_threshold: int = Field(5, ge=1)
    reset_timeout: float = Field(30.0, ge=0)


class ConnectorConfig(BaseModel):
    """Options every connector accepts; each connector's config subclasses this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()

    def resilience(self, name: str) -> Resilience:
        """A fresh retry policy + circuit breaker built from these settings.

        Retries and breaker state changes are reported through :mod:`sygnify.events`.
        """

        def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
            events.emit(
                "connector.retry", name=name, attempt=attempt, error=type(exc).__name__, delay_s=delay
            )

        def on_state_change(old: BreakerState, new: BreakerState) -> None:
            events.emit("breaker.state", breaker=name, old=old.value, new=new.value)

        return Resilience(
            retry=RetryPolicy(**self.retry.model_dump(), on_retry=on_retry),
            breaker=CircuitBreaker(name, **self.breaker.model_dump(), on_state_change=on_state_change),
        )


def interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of ``value``."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            var, default = match.group(1), match.group(2)
            if var in environ:
                return environ[var]
            if default is not None:
                return default
            raise ConfigurationError(
                f"configuration refers to ${{{var}}}, but the environment variable {var} "
                "is not set (set it, or write ${" + var + ":-default})",
                resource=var,
            )

        return _INTERPOLATION.sub(substitute, value)
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ) for item in value]
    return value


def find_config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The TOML file to read: ``$SYGNIFY_CONFIG``, else ``./sygnify.toml`` if it exists."""
    environ = os.environ if environ is None else environ
    if "SYGNIFY_CONFIG" in environ:
        return Path(environ["SYGNIFY_CONFIG"])
    default = Path("sygnify.toml")
    return default if default.is_file() else None


def load_config_file(path: Path) -> dict[str, Any]:
    """Parse a sygnify TOML file (no interpolation yet)."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"config file {path} does not exist", resource=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {path} is not valid TOML: {exc}", resource=str(path)) from exc


def _parse_env_value(raw: str) -> Any:
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _env_overrides(name: str, environ: Mapping[str, str]) -> dict[str, Any]:
    prefix = f"{ENV_PREFIX}{name.upper()}__"
    overrides: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(prefix):
            continue
        path = [part.lower() for part in key[len(prefix) :].split("__")]
        target = overrides
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = _parse_env_value(raw)
    return overrides


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_connection(
    name: str | None,
    connector_type: str | None,
    kwargs: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> tuple[str, dict[str, Any]]:
    """Merge a connection's settings from TOML, environment and kwargs (in rising priority).

    Returns the connector type and the raw options, to be validated by that connector's
    config model.
    """
    environ = os.environ if environ is None else environ
    options: dict[str, Any] = {}
    if name is not None:
        options = load_section("connections", name, environ=environ, config_file=config_file)
        options = _deep_merge(options, _env_overrides(name, environ))
    options = _deep_merge(options, kwargs)
    declared_type = options.pop("type", None)
    resolved_type = connector_type or declared_type
    if resolved_type is None:
        where = f"connection {name!r}" if name else "this connection"
        raise ConfigurationError(
            f"no connector type for {where}: pass it (connect('local', ...)), or set "
            f"type in [connections.{name or 'NAME'}] of the config file or "
            f"{ENV_PREFIX}{(name or 'NAME').upper()}__TYPE",
            resource=name,
        )
    return str(resolved_type), options


def load_section(
    table: Section,
    name: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> dict[str, Any]:
    """The raw (interpolated, not yet validated) settings of ``[table.name]`` in the TOML file.

    ``name`` is None for a table that is one section (``[handler]``). A missing file
    (``config_file=None``) or section gives ``{}``; the caller validates the result with
    the plugin's config model, merged under its keyword arguments.
    """
    if table not in SECTIONS:
        raise ConfigurationError(
            f"unknown config table {table!r}; sygnify reads {', '.join(SECTIONS)}", resource=table
        )
    if config_file is None:
        return {}
    environ = os.environ if environ is None else environ
    section: Any = load_config_file(config_file).get(table, {})
    if name is not None:
        section = section.get(name, {}) if isinstance(section, dict) else {}
    where = f"[{table}.{name}]" if name is not None else f"[{table}]"
    if not isinstance(section, dict):
        raise ConfigurationError(
            f"{where} in {config_file} must be a table of settings, got {type(section).__name__}",
            resource=str(config_file),
        )
    interpolated: dict[str, Any] = interpolate(section, environ)
    return interpolated


def merge_settings(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, nested tables merged key by key (kwargs over a file section).

    >>> merge_settings({"retry": {"max_attempts": 2, "jitter": 0}, "url": "a"}, {"retry": {"jitter": 1}})
    {'retry': {'max_attempts': 2, 'jitter': 1}, 'url': 'a'}
    """
    return _deep_merge(dict(base), override)


def _fields_at(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """The field names of the (nested) model at ``path``, for a did-you-mean on a typo."""
    for part in path:
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        candidates = [field.annotation, *get_args(field.annotation)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested or get_origin(field.annotation) in (list, dict):
            return []
        model = nested[0]
    return sorted(field.alias or name for name, field in model.model_fields.items())


def _problem(model: type[BaseModel], error: Any) -> str:
    location = tuple(error["loc"])
    where = ".".join(str(part) for part in location) or "(root)"
    if error["type"] != "extra_forbidden":
        return f"{where}: {error['msg']}"
    valid = _fields_at(model, location[:-1])
    close = difflib.get_close_matches(str(location[-1]), valid, n=1)
    suggestion = f" (did you mean {'.'.join([*map(str, location[:-1]), close[0]])!r}?)" if close else ""
    return f"does not take option {where!r}{suggestion}; it takes: {', '.join(valid) or 'nothing'}"


def validate_config(model: type[ModelT], options: Mapping[str, Any] | BaseModel, *, context: str) -> ModelT:
    """Validate ``options`` with ``model``; errors name the fields but never echo values.

    ``options`` may already be a ``model`` (returned as is). An unknown field is refused
    with the closest valid one and the list of valid fields:

    >>> try:
    ...     validate_config(RetrySettings, {"max_attempt": 3}, context="retry")
    ... except ConfigurationError as exc:
    ...     print(exc)
    invalid configuration for retry: does not take option 'max_attempt' (did you mean
    'max_attempts'?); it takes: initial_delay, jitter, max_attempts, max_delay
    """
    if isinstance(options, model):
        hold_secrets(options)
        return options
    if isinstance(options, BaseModel):
        raise ConfigurationError(
            f"invalid configuration for {context}: expected {model.__name__} (or a mapping of its "
            f"fields), got {type(options).__name__}",
            resource=context,
        )
    try:
        validated = model.model_validate(dict(options))
    except ValidationError as exc:
        problems = "; ".join(
            _problem(model, error) for error in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigurationError(
            f"invalid configuration for {context}: {problems}", resource=context
        ) from None
    hold_secrets(validated)
    return validated


def hold_secrets(config: Any, *, credentials: bool = False) -> None:
    """Have logs mask the secrets ``config`` holds (:mod:`sygnify.redaction`).

    Every :class:`SecretStr` in it (nested models, lists and dicts included) is held, and
    so are the password and credential parameters of any URL among its strings (a model
    server's ``https://user:pass@...``, a scoring URI's ``?sig=``). :func:`validate_config`
    calls this on every config it returns, so a plugin built from configuration never
    needs to. ``credentials=True`` (a cloud's credentials model) installs the filter even
    when no value is a secret: the SDK's default chain finds the credentials, and the SDK
    logs their tokens.

    >>> class Service(BaseModel):
    ...     url: str
    ...     token: SecretStr
    >>> hold_secrets(Service(url="https://me:pa55word@svc.example/", token=SecretStr("tok-123456")))
    >>> redaction.redact("pa55word and tok-123456")
    '*** and ***'
    """
    if credentials:
        redaction.install()
    if isinstance(config, SecretStr):
        redaction.hold_secret(config.get_secret_value())
    elif isinstance(config, str):
        if "://" in config:
            redaction.hold_url_secrets(config)
    elif isinstance(config, BaseModel):
        for name in type(config).model_fields:
            hold_secrets(getattr(config, name, None))
    elif isinstance(config, Mapping):
        for value in config.values():
            hold_secrets(value)
    elif isinstance(config, list | tuple | set | frozenset):
        for value in config:
            hold_secrets(value)


def config_kwargs(config: BaseModel) -> dict[str, Any]:
    """A validated config as keyword arguments for a constructor: each field by its name (or
    alias), with its validated value, secrets revealed (plugins whose constructors take plain
    keyword arguments are built this way).

    >>> config_kwargs(RetrySettings(max_attempts=2))
    {'max_attempts': 2, 'initial_delay': 0.2, 'max_delay': 10.0, 'jitter': 0.25}
    """
    return {
        field.alias or name: _reveal_secret(getattr(config, name))
        for name, field in type(config).model_fields.items()
    }


def _reveal_secret(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {key: _reveal(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


#: Per-process key of :func:`config_fingerprint` (never stored or sent anywhere).
_FINGERPRINT_KEY = secrets.token_bytes(32)


def config_fingerprint(config: BaseModel, *, exclude: frozenset[str] = frozenset()) -> str:
    """A hash of a config, secrets included, to key pooled clients by configuration.

    Two configs that differ only in a password get different fingerprints; the hash is
    all that is kept, never the secret. It is keyed with a random per-process secret
    (HMAC), so a fingerprint that reaches a log cannot be used to guess a password offline;
    it is stable within one process only, which is all a client pool needs.
    """
    dumped = {key: value for key, value in config.model_dump().items() if key not in exclude}
    payload = json.dumps(_reveal(dumped), sort_keys=True, default=str)
    digest = hmac.new(_FINGERPRINT_KEY, payload.encode(), hashlib.sha256).hexdigest()
    return f"{type(config).__qualname__}:{digest}"
