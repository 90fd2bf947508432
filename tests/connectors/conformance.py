"""The conformance suite every connector passes.

A connector's test module subclasses :class:`ConnectorConformance` and provides two
fixtures: ``connection`` (an open connection) and ``dataset_target`` (a ``write()`` target
that ``stream()``/``scan()`` can read back, e.g. a directory or table name).
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from sygnify.connectors import Connector, HealthStatus
from sygnify.errors import ConfigurationError, NotFoundError, SygnifyError


def sample_table(rows: int = 1_000) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "account": pa.array([f"acct-{i % 17}" for i in range(rows)]),
            "amount": pa.array([round(i * 0.37, 2) for i in range(rows)], pa.float64()),
        }
    )


def sort_by_id(table: pa.Table) -> pa.Table:
    return table.sort_by("id")


class ConnectorConformance:
    """Behaviour every connector must show (see the module docstring)."""

    missing_source: str = "does-not-exist/"

    def test_implements_the_protocol(self, connection: Connector) -> None:
        assert isinstance(connection, Connector)

    def test_write_then_stream_round_trips_with_exact_batch_sizes(
        self, connection: Connector, dataset_target: str
    ) -> None:
        table = sample_table(1_000)
        result = connection.write(table, dataset_target, mode="overwrite")
        assert result.rows == 1_000
        batches = list(connection.stream(dataset_target, batch_size=300))
        assert [batch.num_rows for batch in batches] == [300, 300, 300, 100]
        assert sort_by_id(pa.Table.from_batches(batches).select(table.column_names)).equals(table)

    def test_stream_projects_columns(self, connection: Connector, dataset_target: str) -> None:
        connection.write(sample_table(10), dataset_target, mode="overwrite")
        batches = list(connection.stream(dataset_target, columns=["amount"]))
        assert batches[0].schema.names == ["amount"]

    def test_scan_is_lazy_and_filters(self, connection: Connector, dataset_target: str) -> None:
        connection.write(sample_table(100), dataset_target, mode="overwrite")
        frame = connection.scan(dataset_target)
        assert isinstance(frame, pl.LazyFrame)
        result = frame.filter(pl.col("id") >= 90).select("id", "amount").sort("id").collect()
        assert result["id"].to_list() == list(range(90, 100))

    def test_append_adds_and_overwrite_replaces(self, connection: Connector, dataset_target: str) -> None:
        connection.write(sample_table(10), dataset_target, mode="overwrite")
        connection.write(sample_table(5), dataset_target, mode="append")
        assert sum(b.num_rows for b in connection.stream(dataset_target)) == 15
        connection.write(sample_table(3), dataset_target, mode="overwrite")
        assert sum(b.num_rows for b in connection.stream(dataset_target)) == 3

    def test_list_shows_what_was_written(self, connection: Connector, dataset_target: str) -> None:
        result = connection.write(sample_table(10), dataset_target, mode="overwrite")
        listed = connection.list()
        assert result.paths
        assert all(path in listed for path in result.paths)

    def test_missing_source_is_not_found(self, connection: Connector) -> None:
        with pytest.raises(NotFoundError):
            list(connection.stream(self.missing_source))

    def test_health_is_ok(self, connection: Connector) -> None:
        status = connection.health()
        assert isinstance(status, HealthStatus)
        assert status.ok, status.detail
        assert status.breaker == "closed"

    def test_closed_connection_refuses_work(self, connection: Connector, dataset_target: str) -> None:
        connection.close()
        with pytest.raises(ConfigurationError, match="closed"):
            list(connection.stream(dataset_target))

    def test_bad_write_mode_is_a_typed_error(self, connection: Connector, dataset_target: str) -> None:
        with pytest.raises(SygnifyError):
            connection.write(sample_table(1), dataset_target, mode="upsert")  # type: ignore[arg-type]
