"""The management half of :class:`~sygnify.ml.RealTimeML`: versions, routing, shadows, metrics.

:class:`ModelVersions` owns the named models, their versions and routing (A/B, canary,
promote, rollback, shadow, fallback) and the per-version metrics; ``RealTimeML`` adds the
serving half (predict, stream) on top. Nothing here scores data::

    >>> versions = ModelVersions()
    >>> _ = versions.register("m", backend="callable", fn=lambda X: X[:, 0], features=["x"], version="v1")
    >>> _ = versions.register("m", backend="callable", fn=lambda X: X[:, 0], features=["x"], version="v2")
    >>> versions.canary("m", "v2", weight=0.1)
    >>> versions.models()["m"]["canary"], versions.rollback("m")
    ('v2', {'v1': 1.0})
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sygnify import events
from sygnify.config import find_config_file, load_section, merge_settings
from sygnify.errors import ConfigurationError, ModelError, NotFoundError
from sygnify.ml.backends import MODEL_BACKENDS, HttpClients, ModelBackend
from sygnify.ml.metrics import ModelMetrics
from sygnify.ml.routing import MISSING, Fallback, ModelEntry, ShadowStats
from sygnify.ml.shadow import ShadowRunner
from sygnify.plugins import PluginContext

__all__ = ["ModelVersions"]


class ModelVersions:
    """Named models with versions and the traffic rules between them.

    ``shadow_queue``/``shadow_workers`` size the background executor of shadow traffic:
    mirrored requests beyond ``shadow_queue`` waiting ones are dropped (and counted).
    ``config_file`` is the TOML file whose ``[models.<name>]`` sections configure models
    (default: ``$SYGNIFY_CONFIG``, else ``./sygnify.toml`` if there is one).
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
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._timer = timer
        self._http = HttpClients(http_client)
        self._config_file = Path(config_file) if config_file is not None else find_config_file()
        self._models: dict[str, ModelEntry] = {}
        self._metrics: dict[tuple[str, str], ModelMetrics] = {}
        self._shadows = ShadowRunner(capacity=shadow_queue, workers=shadow_workers)
        self._lock = threading.RLock()

    def register(
        self,
        name: str,
        backend: str | ModelBackend | None = None,
        *,
        version: str | int = "1",
        activate: bool | None = None,
        fallback_version: str | None = None,
        fallback_default: Any = MISSING,
        **config: Any,
    ) -> ModelBackend:
        """Add version ``version`` of model ``name``, served by ``backend`` with ``config``.

        ``backend`` is a plugin name from the ``sygnify.models`` group (``"onnx"``,
        ``"sklearn"``, ``"kserve_v2"``...) or a ready :class:`ModelBackend`. Settings in
        ``[models.<name>]`` of the config file (``backend = "onnx"``, ``path = ...``) are
        used under ``config`` (keyword arguments win); without either, the backend is
        ``"callable"``. The backend's ``config_model`` validates the merged settings. The first
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
            settings = merge_settings(load_section("models", name, config_file=self._config_file), config)
            file_backend = settings.pop("backend", None)
            chosen = backend or file_backend or "callable"
            context = PluginContext(
                name, http=self._http, clock=self._clock, sleep=self._sleep, rng=self._rng
            )
            instance = MODEL_BACKENDS.load(chosen).from_config(settings, context=context)
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
        self._shadows.flush()  # mirrored work may still use a backend about to be closed
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
                if entry.shadow_version == v:
                    entry.shadow_version = None
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

        Mirrored requests run in the background (see :mod:`sygnify.ml.shadow`), so a shadow
        adds no latency to the answer. ``None`` stops shadowing. See :meth:`shadow_report`.
        """
        with self._lock:
            entry = self._entry(name)
            if version is None:
                entry.shadow_version = None
                return
            entry.require(str(version))
            entry.shadow_version = str(version)
            entry.shadow_stats = ShadowStats(str(version))

    def shadow_report(self, name: str, *, wait: bool = True) -> dict[str, Any] | None:
        """Rows mirrored, agreement rate, mean absolute difference and errors of the shadow.

        ``dropped`` is added when the shadow queue was full for some requests. By default
        the report waits for the requests already mirrored (``wait=False`` reads it as is).
        """
        stats = self._entry(name).shadow_stats
        if stats is None:
            return None
        if wait:
            self._shadows.flush()
        return stats.as_dict()

    def flush_shadows(self, timeout: float | None = None) -> bool:
        """Wait until every request mirrored so far has been scored and compared.

        ``False`` if ``timeout`` seconds ran out first. Serving never waits for shadows; this
        is for reports, tests and shutdown.
        """
        return self._shadows.flush(timeout)

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
        if not events.listening():
            return
        events.emit(
            "model.prediction",
            model=name,
            version=version,
            rows=rows,
            latency_s=latency,
            outcome="ok" if error is None else "error",
            error=type(error).__name__ if error is not None else None,
        )

    def close(self) -> None:
        """Finish mirrored work, then close every backend and the pooled HTTP clients."""
        self._shadows.close()
        with self._lock:
            for entry in self._models.values():
                for backend in entry.versions.values():
                    backend.close()
            self._models.clear()
        self._http.close()
