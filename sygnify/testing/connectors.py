"""The conformance suite every connector passes: sygnify's own, and a third party's.

Subclass :class:`ConnectorConformance` in a pytest module and provide two fixtures:
``connection`` (an open connection) and ``dataset_target`` (a ``write()`` target that
``stream()``/``scan()`` read back: a directory, a table name)::

    import pytest
    from sygnify.testing.connectors import ConnectorConformance

    class TestMemoryConformance(ConnectorConformance):
        @pytest.fixture
        def connection(self):
            with MemoryConnector(MemoryConfig()) as connection:
                yield connection

        @pytest.fixture
        def dataset_target(self):
            return "numbers"

Each check exercises only what the connection declares in its ``capabilities`` (see
:mod:`sygnify.connectors.protocols`): a check that needs a capability the connection lacks
passes without doing anything, so a read-only or write-only connector passes the kit too.
A connection without a ``capabilities`` attribute declares the protocols it implements.

Without pytest, :func:`check_connector` runs the same checks, each on a fresh connection:

    >>> import tempfile
    >>> from sygnify import CloudDataConnector
    >>> with tempfile.TemporaryDirectory() as root, CloudDataConnector() as connector:
    ...     opened = iter(range(100))
    ...     check_connector(
    ...         lambda: connector.connect("local", name=f"lake{next(opened)}", root=root), "data/"
    ...     )
    ['implements_the_protocol', 'write_then_stream_round_trips_with_exact_batch_sizes', ...]

The kit needs nothing beyond sygnify (not even pytest: pytest only collects the class).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import cast

import polars as pl
import pyarrow as pa

from sygnify.connectors import Capability, Connector, HealthStatus
from sygnify.connectors.protocols import CAPABILITY_METHODS, Catalog, Healthy, Queryable, Readable, Writable
from sygnify.errors import ConfigurationError, NotFoundError, SygnifyError
from sygnify.testing._checks import checks_of, expect, raises

__all__ = ["ConnectorConformance", "check_connector", "declared_capabilities", "sample_table"]

_PROTOCOLS: dict[Capability, type] = {
    Capability.READABLE: Readable,
    Capability.QUERYABLE: Queryable,
    Capability.WRITABLE: Writable,
    Capability.CATALOG: Catalog,
}


def sample_table(rows: int = 1_000) -> pa.Table:
    """The table the suite writes: ``id`` (int64, 0..rows-1), ``account`` (17 values), ``amount``.

    >>> sample_table(3).to_pydict()
    {'id': [0, 1, 2], 'account': ['acct-0', 'acct-1', 'acct-2'], 'amount': [0.0, 0.37, 0.74]}
    """
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "account": pa.array([f"acct-{i % 17}" for i in range(rows)]),
            "amount": pa.array([round(i * 0.37, 2) for i in range(rows)], pa.float64()),
        }
    )


def declared_capabilities(connection: object) -> frozenset[Capability]:
    """What ``connection`` says it can do: its ``capabilities``, or, without that attribute,
    the capabilities whose protocol it implements.

    >>> class ListsOnly:
    ...     def list(self, prefix: str = "") -> list[str]:
    ...         return []
    >>> sorted(c.value for c in declared_capabilities(ListsOnly()))
    ['catalog']
    """
    declared = getattr(connection, "capabilities", None)
    if declared is None:
        return frozenset(c for c, protocol in _PROTOCOLS.items() if isinstance(connection, protocol))
    values = [str(capability) for capability in declared]
    unknown = sorted(set(values) - {c.value for c in Capability})
    expect(
        not unknown,
        f"{connection!r} declares unknown capabilities {unknown}; "
        f"capabilities are {', '.join(c.value for c in Capability)}",
    )
    return frozenset(Capability(value) for value in values)


def _lacks(connection: object, *needed: Capability) -> bool:
    """Whether a check that needs ``needed`` does not apply to ``connection``."""
    return not set(needed) <= declared_capabilities(connection)


def _sort_by_id(table: pa.Table) -> pa.Table:
    return table.sort_by("id")


def _rows(connection: Connector, source: str) -> int:
    return sum(batch.num_rows for batch in connection.stream(source))


class ConnectorConformance:
    """Behaviour every connector must show (see the module docstring for the two fixtures).

    ``missing_source`` names a source that does not exist on the connection.
    """

    missing_source: str = "does-not-exist/"

    def test_implements_the_protocol(self, connection: Connector) -> None:
        expect(isinstance(connection, Healthy), f"{connection!r} lacks name, health() or close()")
        declared = declared_capabilities(connection)
        for capability in sorted(declared):
            methods = ", ".join(f"{method}()" for method in CAPABILITY_METHODS[capability])
            expect(
                isinstance(connection, _PROTOCOLS[capability]),
                f"{connection!r} declares {capability.value} but lacks {methods}",
            )
        supports = getattr(connection, "supports", None)
        if callable(supports):
            for capability in Capability:
                answer = supports(capability)
                expect(
                    answer == (capability in declared),
                    f"supports({capability.value!r}) is {answer}, but capabilities are "
                    f"{sorted(c.value for c in declared)}",
                )

    def test_write_then_stream_round_trips_with_exact_batch_sizes(
        self, connection: Connector, dataset_target: str
    ) -> None:
        if _lacks(connection, Capability.READABLE, Capability.WRITABLE):
            return
        table = sample_table(1_000)
        result = connection.write(table, dataset_target, mode="overwrite")
        expect(result.rows == 1_000, f"write() reported {result.rows} rows, wrote 1000")
        batches = list(connection.stream(dataset_target, batch_size=300))
        sizes = [batch.num_rows for batch in batches]
        expect(sizes == [300, 300, 300, 100], f"stream(batch_size=300) of 1000 rows gave batches {sizes}")
        read = _sort_by_id(pa.Table.from_batches(batches).select(table.column_names))
        expect(read.equals(table), f"what stream() read back differs from what was written: {read}")

    def test_stream_projects_columns(self, connection: Connector, dataset_target: str) -> None:
        if _lacks(connection, Capability.READABLE, Capability.WRITABLE):
            return
        connection.write(sample_table(10), dataset_target, mode="overwrite")
        batches = list(connection.stream(dataset_target, columns=["amount"]))
        names = batches[0].schema.names
        expect(names == ["amount"], f"stream(columns=['amount']) gave columns {names}")

    def test_scan_is_lazy_and_filters(self, connection: Connector, dataset_target: str) -> None:
        if _lacks(connection, Capability.READABLE, Capability.WRITABLE):
            return
        connection.write(sample_table(100), dataset_target, mode="overwrite")
        frame = connection.scan(dataset_target)
        expect(isinstance(frame, pl.LazyFrame), f"scan() returned {type(frame).__name__}, not a LazyFrame")
        result = frame.filter(pl.col("id") >= 90).select("id", "amount").sort("id").collect()
        expect(result["id"].to_list() == list(range(90, 100)), f"scan().filter(id >= 90) gave {result}")

    def test_append_adds_and_overwrite_replaces(self, connection: Connector, dataset_target: str) -> None:
        if _lacks(connection, Capability.READABLE, Capability.WRITABLE):
            return
        connection.write(sample_table(10), dataset_target, mode="overwrite")
        connection.write(sample_table(5), dataset_target, mode="append")
        rows = _rows(connection, dataset_target)
        expect(rows == 15, f"10 rows overwritten then 5 appended read back as {rows} rows")
        connection.write(sample_table(3), dataset_target, mode="overwrite")
        rows = _rows(connection, dataset_target)
        expect(rows == 3, f"an overwrite with 3 rows read back as {rows} rows")

    def test_list_shows_what_was_written(self, connection: Connector, dataset_target: str) -> None:
        if _lacks(connection, Capability.WRITABLE, Capability.CATALOG):
            return
        result = connection.write(sample_table(10), dataset_target, mode="overwrite")
        listed = connection.list()
        expect(result.paths, "write() returned no paths")
        missing = [path for path in result.paths if path not in listed]
        expect(not missing, f"list() does not show written paths {missing}; it shows {listed}")

    def test_missing_source_is_not_found(self, connection: Connector) -> None:
        if _lacks(connection, Capability.READABLE):
            return
        with raises(NotFoundError, f"stream({self.missing_source!r})"):
            list(connection.stream(self.missing_source))

    def test_health_is_ok(self, connection: Connector) -> None:
        status = connection.health()
        expect(isinstance(status, HealthStatus), f"health() returned {type(status).__name__}")
        expect(status.ok, f"health() is not ok: {status.detail}")
        expect(status.breaker == "closed", f"a fresh connection's breaker is {status.breaker!r}")

    def test_closed_connection_refuses_work(self, connection: Connector, dataset_target: str) -> None:
        declared = declared_capabilities(connection)
        work: dict[Capability, tuple[str, Callable[[], object]]] = {
            Capability.READABLE: ("stream()", lambda: list(connection.stream(dataset_target))),
            Capability.QUERYABLE: ("query()", lambda: connection.query("SELECT 1")),
            Capability.CATALOG: ("list()", lambda: connection.list()),
            Capability.WRITABLE: ("write()", lambda: connection.write(sample_table(1), dataset_target)),
        }
        connection.close()
        for capability, (what, attempt) in work.items():
            if capability in declared:  # the first thing it can do, refused
                with raises(ConfigurationError, f"{what} after close()", match="closed"):
                    attempt()
                return

    def test_bad_write_mode_is_a_typed_error(self, connection: Connector, dataset_target: str) -> None:
        if _lacks(connection, Capability.WRITABLE):
            return
        with raises(SygnifyError, "write(mode='upsert')"):
            connection.write(sample_table(1), dataset_target, mode="upsert")  # type: ignore[arg-type]


def check_connector(
    open_connection: Callable[[], Healthy],
    dataset_target: str,
    *,
    missing_source: str = ConnectorConformance.missing_source,
) -> list[str]:
    """Run every check of :class:`ConnectorConformance`, each on a fresh ``open_connection()``.

    Returns the names of the checks that ran (a check needing a capability the connection
    does not declare runs and passes at once); the first failing check raises AssertionError.
    """
    suite = ConnectorConformance()
    suite.missing_source = missing_source
    ran = []
    for name in checks_of(ConnectorConformance):
        connection = cast(Connector, open_connection())  # the checks use what it declares only
        try:
            check = getattr(suite, name)
            wants_target = "dataset_target" in inspect.signature(check).parameters
            check(connection, dataset_target) if wants_target else check(connection)
        finally:
            connection.close()
        ran.append(name.removeprefix("test_"))
    return ran
