"""Capability protocols: what each built-in connector declares, and what asking for more does."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from sygnify.config import ConnectorConfig
from sygnify.connectors import (
    CONNECTORS,
    BaseConnector,
    Capability,
    Catalog,
    Connector,
    Healthy,
    Queryable,
    Readable,
    Writable,
)
from sygnify.connectors.base import Connector as ConnectorFromBase
from sygnify.connectors.local import LocalConnector
from sygnify.connectors.mongodb import MongoDBConnector
from sygnify.connectors.protocols import CAPABILITY_METHODS
from sygnify.errors import ConfigurationError, UnsupportedOperationError
from sygnify.orchestrators.azure_data_factory import AzureDataFactoryConnector
from sygnify.plugins import BUILTINS, PluginContext
from tests.connectors.mongodb.test_mongodb import options, server  # noqa: F401 - server: the emulator fixture

ALL = frozenset(Capability)
EXPECTED = {
    "local": ALL,
    "s3": ALL,
    "azure_blob": ALL,
    "bigquery": ALL,
    "snowflake": ALL,
    "mongodb": frozenset({Capability.READABLE, Capability.WRITABLE, Capability.CATALOG}),
    "azure_data_factory": frozenset({Capability.CATALOG}),
}
PROTOCOLS = {
    Capability.READABLE: Readable,
    Capability.QUERYABLE: Queryable,
    Capability.WRITABLE: Writable,
    Capability.CATALOG: Catalog,
}


def _builtin_connectors() -> list[str]:
    names = sorted(BUILTINS["connector"])
    # postgres is built alongside; it is checked once its package exists
    return [n for n in names if n != "postgres" or importlib.util.find_spec("sygnify.connectors.postgres")]


@pytest.fixture
def adf() -> Iterator[AzureDataFactoryConnector]:
    settings = {"subscription_id": "00000000-0000-0000-0000-000000000001", "resource_group": "rg"}
    connection = AzureDataFactoryConnector.from_config(
        {**settings, "factory_name": "etl"}, context=PluginContext("pipelines")
    )
    yield connection
    connection.close()


def test_connector_is_the_union_of_the_capability_protocols_and_keeps_its_old_paths() -> None:
    assert ConnectorFromBase is Connector
    for protocol in (Healthy, *PROTOCOLS.values()):
        assert protocol in Connector.__mro__


def test_every_builtin_connector_declares_its_capabilities() -> None:
    assert set(EXPECTED) <= set(BUILTINS["connector"])
    for name in _builtin_connectors():
        cls = CONNECTORS.load(name)
        assert isinstance(cls, type)
        assert issubclass(cls, BaseConnector)
        assert "capabilities" in {k for klass in cls.__mro__[:-3] for k in vars(klass)}, name
        if name in EXPECTED:
            assert cls.capabilities == EXPECTED[name], name
        for capability in cls.capabilities:  # what is declared is there
            for method in CAPABILITY_METHODS[capability]:
                assert callable(getattr(cls, method, None)), f"{name} declares {capability} without {method}"


def test_a_connection_answers_isinstance_and_supports_by_its_capabilities(tmp_path: Path) -> None:
    lake = LocalConnector.from_config({"root": str(tmp_path)}, context=PluginContext("lake"))
    assert isinstance(lake, Connector)
    for capability, protocol in PROTOCOLS.items():
        assert isinstance(lake, protocol)
        assert lake.supports(capability)
        assert lake.supports(capability.value)
    with pytest.raises(ConfigurationError, match="unknown capability 'flying'; capabilities are readable"):
        lake.supports("flying")


def test_azure_data_factory_is_an_orchestrator_with_a_catalog_only(adf: AzureDataFactoryConnector) -> None:
    for method in ("query", "stream", "scan", "write"):
        assert method not in dir(AzureDataFactoryConnector)
        assert not hasattr(adf, method)
    assert isinstance(adf, Healthy)
    assert isinstance(adf, Catalog)
    for protocol in (Readable, Queryable, Writable, Connector):
        assert not isinstance(adf, protocol)
    assert adf.supports(Capability.CATALOG)
    assert not adf.supports("readable")
    for name in ("run_pipeline", "wait", "outputs", "activity_runs"):  # its own API stays
        assert callable(getattr(adf, name))


@pytest.mark.parametrize(
    ("operation", "capability"),
    [("query", "queryable"), ("stream", "readable"), ("scan", "readable"), ("write", "writable")],
)
def test_unsupported_operations_name_the_capability_the_connector_and_what_to_do(
    adf: AzureDataFactoryConnector, operation: str, capability: str
) -> None:
    with pytest.raises(UnsupportedOperationError) as info:
        getattr(adf, operation)("x")
    error = info.value
    assert isinstance(error, ConfigurationError)
    assert isinstance(error, AttributeError)
    assert (error.capability, error.operation, error.connector) == (
        capability,
        operation,
        "azure_data_factory",
    )
    assert error.resource == "pipelines"
    assert str(error).startswith(
        f"azure_data_factory connection 'pipelines' does not support {operation}(): it is not {capability} "
        "(its capabilities: catalog); Data Factory orchestrates pipelines and holds no data"
    )
    assert "use run_pipeline()" in str(error)


class _Listing(BaseConnector[ConnectorConfig]):
    """A connector that declares nothing: its capabilities are those whose methods it has."""

    type_name = "listing"

    def list(self, prefix: str = "") -> list[str]:
        return [name for name in ("a", "b") if name.startswith(prefix)]

    def _check_health(self) -> str:
        return "ok"


def test_a_connector_that_declares_nothing_gets_what_its_methods_implement() -> None:
    assert _Listing.capabilities == frozenset({Capability.CATALOG})
    listing = _Listing(ConnectorConfig(), name="names")
    assert listing.list() == ["a", "b"]
    with pytest.raises(
        UnsupportedOperationError, match=r"listing connection 'names' does not support write\(\)"
    ):
        listing.write(pa.table({"x": [1]}), "t")
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        listing.nothing  # noqa: B018 - other missing attributes stay plain AttributeErrors


def test_declaring_a_capability_without_its_methods_is_refused() -> None:
    with pytest.raises(
        ConfigurationError, match=r"declares capabilities it does not implement: queryable needs query\(\)"
    ):

        class _Liar(BaseConnector[ConnectorConfig]):
            type_name = "liar"
            capabilities = frozenset({Capability.QUERYABLE})

            def _check_health(self) -> str:
                return "ok"


# -- MongoDB: find() is the real method, query() a deprecated alias ------------------------------


@pytest.fixture
def mongo(request: pytest.FixtureRequest) -> Iterator[MongoDBConnector]:
    settings = options(request.getfixturevalue("server"))  # the mongoeco server of test_mongodb
    connection = MongoDBConnector.from_config(settings, context=PluginContext("shop"))
    connection.write(pa.table({"sku": ["a", "b", "c"], "qty": [3, 1, 2]}), "stock")
    yield connection
    connection.close()


@pytest.mark.emulator
def test_mongodb_find_and_the_deprecated_query(mongo: MongoDBConnector) -> None:
    assert isinstance(mongo, Readable)
    assert isinstance(mongo, Writable)
    assert isinstance(mongo, Catalog)
    assert not mongo.supports("queryable")
    found = mongo.find("stock", {"qty": {"$gte": 2}}, projection=["sku", "qty"], sort=[("qty", -1)], limit=5)
    assert found.select(["sku", "qty"]).to_pylist() == [{"sku": "a", "qty": 3}, {"sku": "c", "qty": 2}]
    with pytest.warns(DeprecationWarning, match=r"MongoDB is not SQL; use find\(collection, filter"):
        old = mongo.query("stock", {"qty": {"$gte": 2}})
    assert sorted(old.column("sku").to_pylist()) == ["a", "c"]
