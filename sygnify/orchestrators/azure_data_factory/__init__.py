"""The ``azure_data_factory`` orchestrator: trigger, watch and read Azure Data Factory pipeline runs."""

from sygnify.orchestrators.azure_data_factory.connector import (
    ActivityRun,
    AzureDataFactoryConfig,
    AzureDataFactoryConnector,
    PipelineRun,
    PipelineRunFailedError,
    StorageLocation,
    TriggerInfo,
    open_output,
    parse_storage_url,
    storage_urls,
)

__all__ = [
    "ActivityRun",
    "AzureDataFactoryConfig",
    "AzureDataFactoryConnector",
    "PipelineRun",
    "PipelineRunFailedError",
    "StorageLocation",
    "TriggerInfo",
    "open_output",
    "parse_storage_url",
    "storage_urls",
]
