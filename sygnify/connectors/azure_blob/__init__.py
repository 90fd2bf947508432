"""The ``azure_blob`` connector: Azure Blob Storage and ADLS Gen2."""

from sygnify.connectors.azure_blob.connector import (
    AzureBlobConfig,
    AzureBlobConnector,
    BucketNotFoundError,
    ObjectInfo,
    ObjectNotFoundError,
)

__all__ = [
    "AzureBlobConfig",
    "AzureBlobConnector",
    "BucketNotFoundError",
    "ObjectInfo",
    "ObjectNotFoundError",
]
