"""How sources name objects in a store: URLs or relative keys, prefixes and globs.

Sources name objects as URLs (``s3://bucket/path/*.parquet``, ``az://container/path/``) or
as keys relative to the connection's default bucket/container. A key ending in ``/`` (or
without a file extension) is a prefix "directory", read with hive partitions; a key with
``*``, ``?`` or ``[...]`` is a glob, matched by the one glob of :mod:`sygnify.io.files`
(``*`` stays within one path segment, ``**`` crosses them)::

    >>> locate("s3://lake/raw/x.parquet", schemes=("s3",), type_name="s3", default_bucket=None)
    ('lake', 'raw/x.parquet', True)
    >>> locate("/raw/x.parquet", schemes=("s3",), type_name="s3", default_bucket="lake")
    ('lake', 'raw/x.parquet', False)
"""

from __future__ import annotations

from collections.abc import Sequence

from sygnify.errors import ConfigurationError

__all__ = ["locate"]


def locate(
    source: str, *, schemes: Sequence[str], type_name: str, default_bucket: str | None
) -> tuple[str, str, bool]:
    """``(bucket, key, is_url)`` of a URL in one of ``schemes`` or a key relative to ``default_bucket``."""
    scheme, sep, rest = source.partition("://")
    if sep:
        if scheme.lower() not in schemes:
            raise ConfigurationError(
                f"{source!r} is not a {type_name} URL; use {schemes[0]}://BUCKET/KEY",
                resource=source,
            )
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise ConfigurationError(f"{source!r} names no bucket/container", resource=source)
        return bucket, key, True
    if default_bucket is None:
        raise ConfigurationError(
            f"{source!r} is a relative key but the connection has no default bucket/container; "
            f"set it in the config or pass a full URL ({schemes[0]}://BUCKET/KEY)",
            resource=source,
        )
    return default_bucket, source.lstrip("/"), False
