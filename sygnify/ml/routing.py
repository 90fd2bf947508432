"""Named models with versions, traffic routing (A/B, canary), shadows, fallbacks, rollback.

The routing table is kept apart from prediction so it can be tested on its own::

    >>> import random
    >>> entry = ModelEntry("churn", rng=random.Random(0))
    >>> entry.add_version("v1", object()); entry.add_version("v2", object())
    >>> entry.set_routes({"v1": 0.5, "v2": 0.5})
    >>> entry.pick("customer-42") == entry.pick("customer-42")   # sticky by key
    True
    >>> entry.rollback(); entry.routes
    {'v1': 1.0}
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sygnify.errors import ConfigurationError, NotFoundError

__all__ = ["MISSING", "Fallback", "ModelEntry", "ShadowStats", "stable_unit"]

MISSING: Any = object()


def stable_unit(model: str, key: Hashable) -> float:
    """A number in [0, 1) fixed by ``(model, key)``: the same key always gets the same version."""
    digest = hashlib.blake2b(f"{model}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class Fallback:
    """What to answer when a model's breaker is open or it keeps failing transiently."""

    version: str | None = None
    default: Any = MISSING

    @property
    def configured(self) -> bool:
        return self.version is not None or self.default is not MISSING


@dataclass
class ShadowStats:
    """How a shadow version compares with the answers actually served (thread-safe).

    Mirrored work runs off the serving path, so updates come from a background thread.

    >>> stats = ShadowStats("v2")
    >>> stats.compare(np.array([1.0, 2.0]), np.array([1.0, 2.5]))
    >>> stats.as_dict()
    {'version': 'v2', 'rows': 2, 'errors': 0, 'agreement_rate': 0.5, 'mean_abs_diff': 0.25}
    """

    version: str
    rows: int = 0
    agreements: int = 0
    errors: int = 0
    abs_diff_sum: float = 0.0
    numeric_rows: int = 0
    #: requests not mirrored because the shadow queue was full
    dropped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def compare(self, served: np.ndarray[Any, Any], shadow: np.ndarray[Any, Any]) -> None:
        """Count agreements (and absolute differences, for numbers) of one mirrored request."""
        agreements = int(np.sum(served == shadow)) if served.shape == shadow.shape else 0
        numeric = np.issubdtype(served.dtype, np.number) and np.issubdtype(shadow.dtype, np.number)
        diff = float(np.abs(served.astype(float) - shadow.astype(float)).sum()) if numeric else 0.0
        with self._lock:
            self.rows += len(served)
            self.agreements += agreements
            if numeric:
                self.abs_diff_sum += diff
                self.numeric_rows += len(served)

    def count_error(self) -> None:
        with self._lock:
            self.errors += 1

    def count_dropped(self) -> None:
        with self._lock:
            self.dropped += 1

    def as_dict(self) -> dict[str, Any]:
        """The report; ``dropped`` appears only when some requests were not mirrored."""
        with self._lock:
            report: dict[str, Any] = {
                "version": self.version,
                "rows": self.rows,
                "errors": self.errors,
                "agreement_rate": self.agreements / self.rows if self.rows else None,
                "mean_abs_diff": self.abs_diff_sum / self.numeric_rows if self.numeric_rows else None,
            }
            if self.dropped:
                report["dropped"] = self.dropped
            return report


@dataclass
class ModelEntry:
    """One named model: its versions, routing weights and history of routing changes."""

    name: str
    rng: random.Random = field(default_factory=random.Random)
    versions: dict[str, Any] = field(default_factory=dict)
    routes: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    shadow_version: str | None = None
    shadow_stats: ShadowStats | None = None
    fallback: Fallback = field(default_factory=Fallback)
    canary_version: str | None = None
    #: the only routed version, when there is just one (the fast path); see :meth:`set_routes`
    single: str | None = None
    _cumulative: list[tuple[float, str]] = field(default_factory=list)

    def add_version(self, version: str, backend: Any) -> None:
        self.versions[version] = backend
        if not self.routes:
            self.set_routes({version: 1.0}, remember=False)

    def require(self, version: str) -> Any:
        if version not in self.versions:
            raise NotFoundError(
                f"model {self.name!r} has no version {version!r} (versions: {', '.join(self.versions)})",
                resource=f"{self.name}:{version}",
            )
        return self.versions[version]

    def set_routes(self, weights: Mapping[str, float], *, remember: bool = True) -> None:
        for version in weights:
            self.require(version)
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ConfigurationError(
                f"route weights for model {self.name!r} must be >= 0 with a positive sum, "
                f"got {dict(weights)}",
                resource=self.name,
            )
        total = float(sum(weights.values()))
        if remember and self.routes:
            self.history.append(dict(self.routes))
        self.routes = {v: w / total for v, w in weights.items() if w > 0}
        running = 0.0
        cumulative = []
        for version, weight in self.routes.items():
            running += weight
            cumulative.append((running, version))
        self._cumulative = cumulative
        self.single = cumulative[0][1] if len(cumulative) == 1 else None

    def pick(self, key: Hashable | None = None) -> str:
        """The version for one request: sticky by ``key`` when given, else random by weight."""
        single = self.single
        if single is not None:
            return single
        u = stable_unit(self.name, key) if key is not None else self.rng.random()
        for bound, version in self._cumulative:
            if u < bound:
                return version
        return self._cumulative[-1][1]

    def pick_many(self, keys: Sequence[Hashable] | None, rows: int) -> list[str]:
        if self.single is not None:
            return [self.single] * rows
        if keys is None:
            return [self.pick() for _ in range(rows)]
        return [self.pick(k) for k in keys]

    def rollback(self) -> None:
        """Go back to the routing before the last change (the first version if none)."""
        if self.history:
            self.routes = {}
            self.set_routes(self.history.pop(), remember=False)
        else:
            first = next(iter(self.versions))
            self.set_routes({first: 1.0}, remember=False)
        self.canary_version = None
