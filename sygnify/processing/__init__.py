"""Larger-than-memory processing (``LargeDataHandler``).

>>> import polars as pl
>>> from sygnify.processing import LargeDataHandler
>>> result = LargeDataHandler(progress=False).process(
...     pl.DataFrame({"x": [1, 2, 3]}), transform=[(pl.col("x") * 10).alias("y")], mode="chunked"
... )
>>> result.output["y"].to_list(), result.rows_in
([10, 20, 30], 3)
"""

from sygnify.processing.aggregate import Aggregate
from sygnify.processing.checkpoint import Checkpoint
from sygnify.processing.handler import LargeDataHandler, Mode
from sygnify.processing.memory import parse_memory
from sygnify.processing.plan import Plan
from sygnify.processing.result import ChunkError, ProcessResult, Progress
from sygnify.processing.sinks import CallbackSink, ConnectorSink, IPCSink, ParquetSink, Sink
from sygnify.processing.sources import ConnectorSource, FileSource, Source

__all__ = [
    "Aggregate",
    "CallbackSink",
    "Checkpoint",
    "ChunkError",
    "ConnectorSink",
    "ConnectorSource",
    "FileSource",
    "IPCSink",
    "LargeDataHandler",
    "Mode",
    "ParquetSink",
    "Plan",
    "ProcessResult",
    "Progress",
    "Sink",
    "Source",
    "parse_memory",
]
