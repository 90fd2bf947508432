"""What the object-store connectors (S3, Azure Blob) share: the store seam, datasets, keys, transfers."""
