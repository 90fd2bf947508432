"""Delta Lake tables as a run's sink and source (``deltalake``, ``pip install 'sygnify[delta]'``).

:class:`DeltaSink` commits each chunk's output to a Delta table (one atomic commit per
chunk: a reader never sees half a chunk); with ``merge_on`` each chunk is upserted by key,
so rewriting a chunk after a crash replaces its rows instead of duplicating them.
:class:`DeltaSource` reads a table (at a ``version`` or ``as_of`` a point in time) through
``pl.scan_delta`` in streaming mode, or batch by batch. Pass them as ``sink=`` / ``source=``
of ``LargeDataHandler``; a connector's tables are reached with ``ConnectorSink(connector,
target, format="delta")`` and ``(connector, target)`` (its reads find the ``_delta_log/``).

>>> import tempfile, pyarrow as pa
>>> folder = tempfile.mkdtemp()
>>> sink = DeltaSink(folder + "/out", merge_on=["id"])
>>> _ = sink.write(pa.table({"id": [1, 2], "v": ["a", "b"]}), "00000000")
>>> _ = sink.write(pa.table({"id": [2], "v": ["B"]}), "00000001")
>>> DeltaSource(folder + "/out").lazy().sort("id").collect()["v"].to_list()
['a', 'B']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from sygnify.io.tables import (
    AsOf,
    SchemaMode,
    TableLocation,
    table_batches,
    table_dataset,
    table_scan,
    write_table_format,
)
from sygnify.processing.parts import Part, TablePart
from sygnify.processing.sinks import Sink
from sygnify.processing.sources import Source

__all__ = ["DELTA_PREFIX", "DeltaSink", "DeltaSource", "is_delta_table", "table_sink", "table_source"]

#: ``"delta:out/"``: a path with this prefix names a Delta table (``DeltaSink("delta:out/")``).
DELTA_PREFIX = "delta:"


def _location(path: str | Path, storage_options: Mapping[str, str] | None) -> TableLocation:
    text = str(path)
    if text.startswith(DELTA_PREFIX):
        text = text[len(DELTA_PREFIX) :]
    url = text if "://" in text else str(Path(text).expanduser().resolve())
    return TableLocation(
        url=url.rstrip("/") or url, storage_options=dict(storage_options or {}), resource=text
    )


def is_delta_table(path: str | Path) -> bool:
    """Whether ``path`` is a local directory holding a Delta table (a ``_delta_log/`` folder).

    >>> is_delta_table("/nonexistent/table")
    False
    """
    text = str(path)
    return "://" not in text and (Path(text).expanduser() / "_delta_log").is_dir()


class DeltaSink(Sink):
    """Each chunk's output committed to a Delta table (local path or ``s3://``/``az://`` URL).

    ``mode="overwrite"`` replaces the table's rows with the first chunk, then appends
    (the old version stays readable by time travel); ``merge_on`` upserts every chunk by
    those key columns (idempotent: a rewritten chunk replaces its rows). ``partition_by``
    and ``schema_mode`` go to the Delta writer; ``storage_options`` are deltalake's
    (endpoint, keys) for cloud URLs.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        mode: str = "append",
        merge_on: Sequence[str] | None = None,
        partition_by: Sequence[str] | None = None,
        schema_mode: SchemaMode = None,
        storage_options: Mapping[str, str] | None = None,
    ) -> None:
        self.location = _location(path, storage_options)
        self.mode = "merge" if merge_on else mode
        self.merge_on = list(merge_on) if merge_on else None
        self.partition_by = list(partition_by) if partition_by else None
        self.schema_mode = schema_mode
        self.name = f"delta:{self.location.name}"
        self.idempotent = self.merge_on is not None
        self.stream_labels = False  # see for_stream()
        self._first = True

    def _commit(self, table: pa.Table, mode: str, transaction: tuple[str, int] | None = None) -> list[str]:
        return write_table_format(
            table,
            self.location,
            format="delta",
            mode=mode,
            partition_by=self.partition_by,
            merge_on=self.merge_on if mode == "merge" else None,
            schema_mode=self.schema_mode,
            transaction=transaction,
        )

    def for_stream(self) -> DeltaSink:
        """This sink for a stream's results, labelled ``<stream id>-<sequence>``: each result is
        committed with the application transaction (``sygnify-<stream id>``, sequence), so a
        result written again after a crash is skipped (exactly once, in any mode)."""
        self.stream_labels = True
        self.idempotent = True
        return self

    def write(self, table: pa.Table, label: str) -> list[str]:
        mode = self.mode
        if mode == "overwrite" and not self._first:
            mode = "append"
        self._first = False
        transaction = None
        if self.stream_labels:
            stream_id, _, sequence = label.rpartition("-")
            transaction = (f"sygnify-{stream_id}", int(sequence))
        return self._commit(table, mode, transaction)

    def replace(self, table: pa.Table) -> list[str]:
        return self._commit(table, "overwrite")


class DeltaSource(Source):
    """A Delta table (local path or cloud URL), at its latest version or ``version`` / ``as_of``."""

    def __init__(
        self,
        path: str | Path,
        *,
        version: int | None = None,
        as_of: AsOf | None = None,
        columns: Sequence[str] | None = None,
        storage_options: Mapping[str, str] | None = None,
    ) -> None:
        self.location = _location(path, storage_options)
        self.version = version
        self.as_of = as_of
        self.columns = list(columns) if columns else None
        self.origin = f"delta:{self.location.name}"
        self._dataset: ds.Dataset | None = None

    def _table(self) -> ds.Dataset:
        if self._dataset is None:
            self._dataset = table_dataset(self.location, "delta", version=self.version, as_of=self.as_of)
        return self._dataset

    def lazy(self) -> pl.LazyFrame:
        frame = table_scan(self.location, "delta", version=self.version, as_of=self.as_of)
        return frame.select(self.columns) if self.columns else frame

    def parts(self, rows: int) -> Iterator[Part]:
        batches = table_batches(
            self.location,
            "delta",
            columns=self.columns,
            batch_size=rows,
            version=self.version,
            as_of=self.as_of,
        )
        for index, batch in enumerate(batches):
            table = pa.Table.from_batches([batch])
            yield TablePart(index, f"{self.origin}#{index}", table, table.num_rows)

    def schema(self) -> pa.Schema:
        schema = self._table().schema
        return pa.schema([schema.field(name) for name in self.columns]) if self.columns else schema

    def total_rows(self) -> int:
        return int(self._table().count_rows())

    def files(self) -> list[str]:
        dataset = self._table()
        return list(dataset.files) if isinstance(dataset, ds.FileSystemDataset) else []


def table_sink(sink: object) -> DeltaSink | None:
    """The Delta sink a ``sink=`` names (``"delta:out/"`` or ``"delta:s3://b/t"``), else None.

    >>> table_sink("delta:/tmp/out").location.url, table_sink("out.parquet")
    ('/tmp/out', None)
    """
    if isinstance(sink, str | Path) and str(sink).startswith(DELTA_PREFIX):
        return DeltaSink(sink)
    return None


def table_source(source: object) -> DeltaSource | None:
    """The Delta source a ``source=`` names (``"delta:..."``, or a local directory holding a
    Delta table: its current version, not every version's files), else None.

    >>> table_source("/nonexistent/plain/dir") is None
    True
    """
    if isinstance(source, str | Path) and (str(source).startswith(DELTA_PREFIX) or is_delta_table(source)):
        return DeltaSource(source)
    return None
