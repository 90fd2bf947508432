"""Orchestrators: services that run pipelines rather than hold data (Azure Data Factory)."""
