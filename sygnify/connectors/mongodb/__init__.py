"""The ``mongodb`` connector: MongoDB and Atlas, documents as Arrow."""

from sygnify.connectors.mongodb.connector import (
    ChangeStream,
    FileResumeTokenStore,
    MemoryResumeTokenStore,
    MongoDBConfig,
    MongoDBConnector,
    ResumeTokenStore,
)

__all__ = [
    "ChangeStream",
    "FileResumeTokenStore",
    "MemoryResumeTokenStore",
    "MongoDBConfig",
    "MongoDBConnector",
    "ResumeTokenStore",
]
