"""The ``s3`` connector: AWS S3 and S3-compatible object storage."""

from sygnify.connectors.s3.connector import (
    BucketNotFoundError,
    ObjectInfo,
    ObjectNotFoundError,
    S3Config,
    S3Connector,
)

__all__ = [
    "BucketNotFoundError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "S3Config",
    "S3Connector",
]
