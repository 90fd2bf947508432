"""What the three clouds' credential specs and error maps share.

:class:`CloudCredentials` is the base of every cloud's credentials model: frozen, no unknown
options, and a table of renamed options that are still accepted for one release with a
:class:`DeprecationWarning`. :func:`retry_after` reads how long a service asked the client
to wait, whichever header it used::

    >>> retry_after({"Retry-After": "2"}), retry_after({"retry-after-ms": "1500"})
    (2.0, 1.5)
    >>> retry_after({"x-ms-retry-after-ms": "250", "Retry-After": "9"}), retry_after({})
    (0.25, None)

A :data:`Refine` hook lets one plugin put its own meaning on an SDK error before the
cloud's map does (S3's ``NoSuchBucket`` is a :class:`~sygnify.errors.BucketNotFoundError`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

from sygnify.config import hold_secrets
from sygnify.errors import SygnifyError

__all__ = ["CloudCredentials", "Refine", "refined", "retry_after"]

#: A plugin's refinement of a cloud's error map: ``(exception, message, resource)`` to the
#: sygnify error it means for that plugin, or ``None`` to leave it to the cloud's map.
Refine = Callable[[BaseException, str, "str | None"], "SygnifyError | None"]

# Milliseconds first: Azure sends both, and the millisecond value is the precise one.
_RETRY_HEADERS = (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0), ("retry-after", 1.0))


def retry_after(headers: Mapping[str, Any] | None, *, now: datetime | None = None) -> float | None:
    """Seconds a response asked to wait (``retry-after-ms``, ``x-ms-retry-after-ms``, ``Retry-After``).

    ``Retry-After`` may be seconds or an HTTP date (compared with ``now``, default the
    current time). ``None`` when no header says, or none parses.
    """
    if not headers:
        return None
    lowered = {str(name).lower(): value for name, value in headers.items()}
    for name, scale in _RETRY_HEADERS:
        raw = lowered.get(name)
        if raw is None:
            continue
        with contextlib.suppress(TypeError, ValueError):
            return max(0.0, float(raw) / scale)
        if scale == 1.0:
            with contextlib.suppress(TypeError, ValueError):
                moment = parsedate_to_datetime(str(raw))
                return max(0.0, (moment - (now or datetime.now(timezone.utc))).total_seconds())
    return None


def refined(
    refine: Refine | None, exc: BaseException, message: str, resource: str | None
) -> SygnifyError | None:
    """What ``refine`` makes of ``exc`` (``None`` without a hook, or when it leaves it)."""
    return refine(exc, message, resource) if refine is not None else None


class CloudCredentials(BaseModel):
    """Base of the clouds' credentials models.

    A subclass (or a plugin's config that mixes it in) lists renamed options in
    ``deprecated_options`` (``{old: new}``): the old name still works for one release and
    warns with a :class:`DeprecationWarning` naming the new one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    deprecated_options: ClassVar[Mapping[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _rename_deprecated_options(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not cls.deprecated_options:
            return data
        renamed = dict(data)
        for old, new in cls.deprecated_options.items():
            if old not in renamed:
                continue
            if new in renamed:
                raise ValueError(f"{old} is the old name of {new}: give only {new}")
            warnings.warn(
                f"{cls.__name__}: option {old!r} is deprecated, use {new!r} (same meaning)",
                DeprecationWarning,
                stacklevel=2,
            )
            renamed[new] = renamed.pop(old)
        return renamed

    def model_post_init(self, context: Any, /) -> None:
        # Credentials are held from here on, given (their SecretStr values, also when the
        # model is built directly rather than by validate_config) or found by the SDK's
        # default chain (whose session tokens travel in headers the SDK logs): mask them.
        hold_secrets(self, credentials=True)
