from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mongomock
import polars as pl
import pyarrow as pa
import pymongo.collection
import pymongo.errors
import pymongo.monitoring
import pytest
from bson import Decimal128, ObjectId
from bson.timestamp import Timestamp

from sygnify import CloudDataConnector, events
from sygnify.connectors.mongodb.connector import (
    FileResumeTokenStore,
    MemoryResumeTokenStore,
    MongoDBConfig,
    MongoDBConnector,
)
from sygnify.connectors.mongodb.schema import RESCUE_COLUMN, documents_to_batch, infer_schema
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    DataQualityError,
    NotFoundError,
    SchemaError,
)
from sygnify.plugins import PluginContext
from sygnify.testing.connectors import ConnectorConformance, sample_table
from tests.emulators import EmulatorUnavailable, free_port
from tests.services import require

USER, PASSWORD = "alice", "s3cret-pw"


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    from tests.emulators import mongoeco

    try:
        running = mongoeco.start({USER: PASSWORD})
    except EmulatorUnavailable as exc:
        require(False, f"mongoeco wire server unavailable: {exc}")
        return
    yield running
    running.stop()


def options(server: Any, **extra: Any) -> dict[str, Any]:
    return {
        "uri": server.uri,
        "database": f"db_{uuid.uuid4().hex[:8]}",
        "username": USER,
        "password": PASSWORD,
        "auth_mechanism": "SCRAM-SHA-256",
        "auth_source": "admin",
        "server_selection_timeout_ms": 5_000,
        "retry": {"max_attempts": 3, "initial_delay": 0.5, "jitter": 0},
        **extra,
    }


def no_sleep(connection: MongoDBConnector) -> list[float]:
    """Make the connection's retries record their delays instead of sleeping."""
    slept: list[float] = []
    retry = connection._resilience.retry
    connection._resilience.retry = dataclasses.replace(retry, sleep=slept.append)
    return slept


@pytest.fixture
def mongo(connector: CloudDataConnector, server: Any) -> MongoDBConnector:
    connection = connector.connect("mongodb", name="shop", **options(server))
    assert isinstance(connection, MongoDBConnector)
    return connection


class TestMongoDBConformance(ConnectorConformance):
    missing_source = "does_not_exist"

    @pytest.fixture
    def connection(self, mongo: MongoDBConnector) -> MongoDBConnector:
        return mongo

    @pytest.fixture
    def dataset_target(self) -> str:
        return "conformance"


ORDERS = [
    {
        "_id": ObjectId("65f000000000000000000001"),
        "customer": {"name": "Ada", "tier": 1},
        "items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}],
        "total": Decimal128("12.50"),
        "paid_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        "status": "paid",
    },
    {
        "_id": ObjectId("65f000000000000000000002"),
        "customer": {"name": "Bob", "tier": 2},
        "items": [],
        "total": Decimal128("7.125"),
        "paid_at": None,
        "status": "open",
    },
    {
        "_id": ObjectId("65f000000000000000000003"),
        "customer": {"name": "Cy", "tier": 1},
        "items": [{"sku": "c", "qty": 5}],
        "total": Decimal128("100"),
        "paid_at": dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc),
        "status": "paid",
    },
]


@pytest.fixture
def orders(mongo: MongoDBConnector) -> MongoDBConnector:
    mongo.collection("orders").insert_many([dict(order) for order in ORDERS])
    return mongo


# -- reading over the wire ---------------------------------------------------------------------


def test_find_maps_bson_types_explicitly(orders: MongoDBConnector) -> None:
    table = orders.find("orders", {"status": "paid"}, sort=[("_id", 1)])
    assert table.schema.field("_id").type == pa.string()
    assert table.schema.field("customer").type == pa.struct([("name", pa.string()), ("tier", pa.int64())])
    assert table.schema.field("items").type == pa.list_(
        pa.field("item", pa.struct([("sku", pa.string()), ("qty", pa.int64())]))
    )
    assert table.schema.field("total").type == pa.decimal128(38, 2)
    assert table.schema.field("paid_at").type == pa.timestamp("ms", tz="UTC")
    rows = table.to_pylist()
    assert [row["_id"] for row in rows] == ["65f000000000000000000001", "65f000000000000000000003"]
    assert rows[0]["total"] == decimal.Decimal("12.50")
    assert rows[0]["items"][0] == {"sku": "a", "qty": 2}
    assert rows[0]["paid_at"] == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def test_find_projection_sort_limit(orders: MongoDBConnector) -> None:
    table = orders.find("orders", projection={"status": 1, "_id": 0}, sort={"_id": -1}, limit=2)
    assert table.to_pylist() == [{"status": "paid"}, {"status": "open"}]
    assert orders.find("orders", {"status": "none"}).num_rows == 0


def test_aggregation_pipeline(orders: MongoDBConnector) -> None:
    table = orders.aggregate(
        "orders",
        [{"$group": {"_id": "$status", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}],
    )
    assert table.to_pylist() == [{"_id": "open", "n": 1}, {"_id": "paid", "n": 2}]


def test_stream_with_pipeline_and_columns(orders: MongoDBConnector) -> None:
    batches = list(
        orders.stream("orders", pipeline=[{"$match": {"status": "paid"}}], columns=["status"], batch_size=1)
    )
    assert [b.num_rows for b in batches] == [1, 1]
    assert batches[0].schema.names == ["status"]


def test_given_schema_is_used_and_projects(orders: MongoDBConnector) -> None:
    schema = pa.schema([("status", pa.string()), ("total", pa.decimal128(20, 3))])
    table = orders.find("orders", {"status": "open"}, schema=schema)
    assert table.schema == schema
    assert table.to_pylist() == [{"status": "open", "total": decimal.Decimal("7.125")}]


def test_inconsistent_documents_raise_by_default(mongo: MongoDBConnector) -> None:
    mongo.collection("drift").insert_many([{"_id": i, "v": i} for i in range(5)] + [{"_id": 99, "v": "x"}])
    limited = mongo.config.model_copy(update={"sample_size": 2})
    mongo.config = limited
    with pytest.raises(SchemaError, match=r"_id=99.*'v' expected int64, found str"):
        mongo.find("drift")
    mongo.collection("extra").insert_many(
        [{"_id": 1, "a": 1}, {"_id": 2, "a": 2}, {"_id": 3, "a": 3, "b": 1}]
    )
    with pytest.raises(SchemaError, match=r"'b' expected no such field"):
        mongo.find("extra")


def test_inconsistent_documents_can_be_rescued(mongo: MongoDBConnector) -> None:
    mongo.collection("drift").insert_many(
        [{"_id": i, "v": i} for i in range(3)] + [{"_id": 9, "v": "x", "w": 1}]
    )
    mongo.config = mongo.config.model_copy(update={"sample_size": 3})
    table = mongo.find("drift", sort=[("_id", 1)], on_inconsistent="rescue")
    assert table.column("v").to_pylist() == [0, 1, 2, None]
    rescued = table.column(RESCUE_COLUMN).to_pylist()
    assert rescued[:3] == [None, None, None]
    assert json.loads(rescued[3]) == {"v": "x", "w": 1}


def test_conflicting_types_in_the_sample_become_extended_json(mongo: MongoDBConnector) -> None:
    mongo.collection("mixed").insert_many(
        [{"_id": 1, "v": "text"}, {"_id": 2, "v": {"a": 1}}, {"_id": 3, "v": 4}]
    )
    table = mongo.find("mixed", sort=[("_id", 1)])
    field = table.schema.field("v")
    assert field.type == pa.string()
    assert field.metadata == {b"mongo_type": b"mixed"}
    assert table.column("v").to_pylist() == ["text", '{"a": 1}', "4"]


def test_scan_pushes_projection_and_limit(orders: MongoDBConnector) -> None:
    frame = orders.scan("orders", filter={"status": "paid"})
    assert frame.select("status").head(1).collect().to_dicts() == [{"status": "paid"}]
    totals = frame.filter(pl.col("customer").struct.field("tier") == 1).select("total").collect()
    assert totals.height == 2


# -- writing -----------------------------------------------------------------------------


def test_write_polars_in_batches(mongo: MongoDBConnector) -> None:
    calls: list[str] = []
    unsubscribe = events.subscribe(
        lambda event, fields: calls.append(fields["operation"]) if event == "connector.call" else None
    )
    try:
        frame = pl.DataFrame(
            {
                "id": list(range(10)),
                "day": [dt.date(2026, 1, 1)] * 10,
                "price": [decimal.Decimal("1.10")] * 10,
            }
        )
        result = mongo.write(frame, "prices", batch_size=4)
    finally:
        unsubscribe()
    assert result.rows == 10
    assert calls.count("write") == 3
    stored = mongo.collection("prices").find_one({"id": 3})
    assert stored is not None
    assert stored["price"] == Decimal128("1.10")
    assert stored["day"] == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_upsert_by_key_replaces_instead_of_duplicating(mongo: MongoDBConnector) -> None:
    mongo.write(pa.table({"sku": ["a", "b"], "qty": [1, 2]}), "stock", upsert_key=["sku"])
    mongo.write(pa.table({"sku": ["b", "c"], "qty": [20, 3]}), "stock", upsert_key=["sku"])
    table = mongo.find("stock", projection={"_id": 0}, sort=[("sku", 1)])
    assert table.to_pylist() == [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 20}, {"sku": "c", "qty": 3}]
    with pytest.raises(SchemaError, match="nope"):
        mongo.write(pa.table({"sku": ["a"]}), "stock", upsert_key=["nope"])


def test_object_ids_round_trip(orders: MongoDBConnector) -> None:
    table = orders.find("orders", projection=["_id", "status"])
    orders.write(table, "orders", upsert_key=["_id"], object_id_fields=["_id"])
    assert orders.collection("orders").count_documents({}) == 3
    with pytest.raises(SchemaError, match="not a 24-digit"):
        orders.write(pa.table({"_id": ["zz"]}), "orders", object_id_fields=["_id"])


def test_duplicate_keys_are_a_data_quality_error(mongo: MongoDBConnector) -> None:
    with pytest.raises(DataQualityError, match="duplicate"):
        mongo.write(pa.table({"_id": [1, 1]}), "dupes")


# -- auth, errors, retries -----------------------------------------------------------------


def test_credentials_in_the_uri(connector: CloudDataConnector, server: Any) -> None:
    uri = server.uri.replace("mongodb://", f"mongodb://{USER}:{PASSWORD}@").replace(
        "?", "?authMechanism=SCRAM-SHA-256&"
    )
    connection = connector.connect("mongodb", uri=uri, database="auth_db")
    assert connection.health().ok
    assert PASSWORD not in repr(connection)


def test_wrong_password_is_an_authentication_error_without_the_secret(
    connector: CloudDataConnector, server: Any
) -> None:
    connection = connector.connect("mongodb", **options(server, password="wrong-secret-123"))
    with pytest.raises(AuthenticationError) as caught:
        connection.list()
    assert "wrong-secret-123" not in str(caught.value)
    status = connection.health()
    assert not status.ok
    assert "wrong-secret-123" not in status.detail


def test_unreachable_server_is_retried_then_connection_failed(connector: CloudDataConnector) -> None:
    connection = connector.connect(
        "mongodb",
        uri=f"mongodb://127.0.0.1:{free_port()}/shop?directConnection=true",
        server_selection_timeout_ms=100,
        connect_timeout_ms=100,
        retry={"max_attempts": 3, "initial_delay": 1.0, "jitter": 0},
    )
    assert isinstance(connection, MongoDBConnector)
    slept = no_sleep(connection)
    with pytest.raises(ConnectionFailedError):
        connection.list()
    assert slept == [1.0, 2.0]


def test_not_primary_on_read_is_retried(orders: MongoDBConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    slept = no_sleep(orders)
    original = pymongo.collection.Collection.find
    failures = [pymongo.errors.NotPrimaryError("not primary", {"code": 10107})]

    def flaky_find(self: Any, *args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pymongo.collection.Collection, "find", flaky_find)
    assert orders.find("orders").num_rows == 3
    assert slept == [0.5]


def test_insert_retry_after_dropped_connection_writes_each_row_once(
    mongo: MongoDBConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept = no_sleep(mongo)
    original = pymongo.collection.Collection.insert_many
    calls = []

    def insert_then_drop(self: Any, documents: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(documents))
        result = original(self, documents, *args, **kwargs)
        if len(calls) == 1:
            raise pymongo.errors.AutoReconnect("connection reset after the write")
        return result

    monkeypatch.setattr(pymongo.collection.Collection, "insert_many", insert_then_drop)
    mongo.write(sample_table(20), "once")
    assert calls == [20, 20]
    assert slept == [0.5]
    assert mongo.collection("once").count_documents({}) == 20


def test_change_streams_unsupported_by_the_server_are_a_configuration_error(
    orders: MongoDBConnector,
) -> None:
    with pytest.raises(ConfigurationError, match="replica set"):
        orders.watch("orders")


def test_list_filters_by_prefix(orders: MongoDBConnector) -> None:
    orders.write(sample_table(1), "orders_archive")
    assert orders.list("orders") == ["orders", "orders_archive"]
    assert orders.list("zzz") == []


def test_connections_with_the_same_config_share_a_client(connector: CloudDataConnector, server: Any) -> None:
    settings = options(server)
    first = connector.connect("mongodb", **settings)
    second = connector.connect("mongodb", **settings)
    assert isinstance(first, MongoDBConnector)
    assert isinstance(second, MongoDBConnector)
    assert first.client is second.client


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "a$b", "system.users"])
def test_bad_collection_names(mongo: MongoDBConnector, name: str) -> None:
    with pytest.raises(ConfigurationError, match="collection name"):
        mongo.find(name)


def test_bad_query_arguments(orders: MongoDBConnector) -> None:
    with pytest.raises(ConfigurationError, match="filter document"):
        orders.stream("orders", params=[1, 2])
    with pytest.raises(ConfigurationError, match="sort direction"):
        orders.find("orders", sort=[("a", 2)])
    with pytest.raises(ConfigurationError, match=r"\$match"):
        orders.stream("orders", filter={"a": 1}, pipeline=[])
    with pytest.raises(ConfigurationError, match="on_inconsistent"):
        orders.find("orders", on_inconsistent="drop")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown scan options"):
        orders.scan("orders", colour="red")
    with pytest.raises(NotFoundError, match="ghost"):
        orders.aggregate("ghost", [])


# -- configuration (no server) ---------------------------------------------------------------


def test_x509_and_tls_options(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    config = MongoDBConfig(
        uri="mongodb+srv://cluster0.example.mongodb.net/shop",
        auth_mechanism="MONGODB-X509",
        tls_certificate_key_file=cert,
        tls_ca_file=tmp_path / "ca.pem",
        tls_certificate_key_file_password="key-pass",
        max_pool_size=20,
        min_pool_size=2,
        max_idle_time_ms=60_000,
    )
    client_options = config.client_options()
    assert client_options["tls"] is True
    assert client_options["authMechanism"] == "MONGODB-X509"
    assert client_options["authSource"] == "$external"
    assert client_options["tlsCertificateKeyFile"] == str(cert)
    assert client_options["maxPoolSize"] == 20
    assert client_options["minPoolSize"] == 2
    assert "tlsAllowInvalidCertificates" not in client_options
    assert config.database_name == "shop"
    assert "key-pass" not in repr(config)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"uri": "http://db"}, "mongodb://"),
        ({"auth_mechanism": "MONGODB-X509"}, "tls_certificate_key_file"),
        ({"min_pool_size": 5, "max_pool_size": 2}, "min_pool_size"),
        ({"on_inconsistent": "drop"}, "on_inconsistent"),
    ],
)
def test_invalid_configuration(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MongoDBConnector.from_config(settings, context=PluginContext("mongodb"))


def test_database_is_required(connector: CloudDataConnector) -> None:
    with pytest.raises(ConfigurationError, match="no database"):
        connector.connect("mongodb", uri="mongodb://127.0.0.1:1/")


def test_secret_uri_never_shows(connector: CloudDataConnector) -> None:
    connection = connector.connect("mongodb", uri="mongodb://u:topsecret@127.0.0.1:1/db")
    assert "topsecret" not in repr(connection)
    assert isinstance(connection, MongoDBConnector)
    error = connection._translate(
        pymongo.errors.OperationFailure("bad auth mongodb://u:topsecret@127.0.0.1:1/db", 18),
        operation="find",
        resource="x",
    )
    assert isinstance(error, AuthenticationError)
    assert "topsecret" not in str(error)


# -- schema conversion units -----------------------------------------------------------------


def test_schema_inference_unifies_numbers_and_structs() -> None:
    schema = infer_schema([{"a": 1, "s": {"x": 1}}, {"a": 2.5, "s": {"y": "z"}, "n": None}])
    assert schema.field("a").type == pa.float64()
    assert schema.field("s").type == pa.struct([("x", pa.int64()), ("y", pa.string())])
    assert schema.field("n").type == pa.null()


def test_nested_unknown_field_names_its_path() -> None:
    schema = pa.schema([("s", pa.struct([("x", pa.int64())]))])
    with pytest.raises(SchemaError, match=r"'s\.y'"):
        documents_to_batch([{"_id": 1, "s": {"x": 1, "y": 2}}], schema, "raise")
    with pytest.raises(SchemaError, match=r"'s\.x' expected int64"):
        documents_to_batch([{"_id": 1, "s": {"x": 2**70}}], schema, "raise")


# -- change streams (mongomock + a fault-injecting fake driver stream) -------------------------


def change(index: int) -> dict[str, Any]:
    return {
        "_id": {"_data": f"{index:08d}"},
        "operationType": "insert",
        "ns": {"db": "shop", "coll": "orders"},
        "documentKey": {"_id": ObjectId(f"65f0000000000000000000{index:02x}")},
        "fullDocument": {"n": index},
        "clusterTime": Timestamp(1_767_225_600 + index, 1),
    }


class FakeOplog:
    """The server side: events in order, and failures injected at given positions."""

    def __init__(self, count: int, fail_at: Mapping[int, Exception] | None = None) -> None:
        self.events = [change(i) for i in range(count)]
        self.fail_at = dict(fail_at or {})
        self.opened_after: list[Mapping[str, Any] | None] = []

    def watch(self, pipeline: Any = None, **kwargs: Any) -> FakeChangeStream:
        token = kwargs.get("resume_after")
        self.opened_after.append(token)
        start = 0 if token is None else int(token["_data"]) + 1
        return FakeChangeStream(self, start)


class FakeChangeStream:
    def __init__(self, oplog: FakeOplog, position: int) -> None:
        self.oplog, self.position, self.closed = oplog, position, False

    def try_next(self) -> dict[str, Any] | None:
        if self.position in self.oplog.fail_at:
            raise self.oplog.fail_at.pop(self.position)
        if self.position >= len(self.oplog.events):
            return None
        event = self.oplog.events[self.position]
        self.position += 1
        return event

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def mock_mongo(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MongoDBConnector, list[FakeOplog]]]:
    oplogs: list[FakeOplog] = []

    def watch(self: Any, pipeline: Any = None, **kwargs: Any) -> FakeChangeStream:
        return oplogs[0].watch(pipeline, **kwargs)

    monkeypatch.setattr(mongomock.collection.Collection, "watch", watch, raising=False)
    connection = MongoDBConnector(
        MongoDBConfig(database="shop", retry={"initial_delay": 0, "jitter": 0}),
        client=mongomock.MongoClient(),
    )
    yield connection, oplogs
    connection.close()


def test_watch_yields_batches_and_saves_the_token(
    mock_mongo: tuple[MongoDBConnector, list[FakeOplog]], tmp_path: Path
) -> None:
    connection, oplogs = mock_mongo
    oplogs.append(FakeOplog(5))
    checkpoint = tmp_path / "orders.token"
    with connection.watch("orders", checkpoint=checkpoint, batch_size=2, stop_when_idle=True) as changes:
        batches = list(changes)
    assert [b.num_rows for b in batches] == [2, 2, 1]
    first = batches[0].to_pylist()[0]
    assert first["operation_type"] == "insert"
    assert first["collection"] == "orders"
    assert first["document_key"] == "65f000000000000000000000"
    assert json.loads(first["full_document"]) == {"n": 0}
    assert first["cluster_time"] == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert FileResumeTokenStore(checkpoint).load() == {"_data": "00000004"}

    oplogs[0].events += [change(5), change(6)]
    with connection.watch("orders", checkpoint=checkpoint, stop_when_idle=True) as resumed:
        rows = [row["resume_token"] for batch in resumed for row in batch.to_pylist()]
    assert rows == ["00000005", "00000006"]
    assert oplogs[0].opened_after[-1] == {"_data": "00000004"}


def test_watch_resumes_after_transient_errors_without_duplicates(
    mock_mongo: tuple[MongoDBConnector, list[FakeOplog]],
) -> None:
    connection, oplogs = mock_mongo
    oplogs.append(FakeOplog(6, fail_at={3: pymongo.errors.AutoReconnect("primary stepped down")}))
    store = MemoryResumeTokenStore()
    with connection.watch("orders", checkpoint=store, batch_size=4, stop_when_idle=True) as changes:
        tokens = [row["resume_token"] for batch in changes for row in batch.to_pylist()]
        assert changes.resumes == 1
    assert tokens == [f"{i:08d}" for i in range(6)]
    assert oplogs[0].opened_after == [None, {"_data": "00000002"}]
    assert store.load() == {"_data": "00000005"}


def test_uncommitted_batch_is_replayed_after_a_crash(
    mock_mongo: tuple[MongoDBConnector, list[FakeOplog]],
) -> None:
    connection, oplogs = mock_mongo
    oplogs.append(FakeOplog(4))
    store = MemoryResumeTokenStore()
    changes = connection.watch("orders", checkpoint=store, batch_size=2, stop_when_idle=True)
    iterator = iter(changes)
    next(iterator)
    next(iterator)  # the first batch is committed when the second is asked for
    changes.close()  # "crash" while the second batch is in flight
    assert store.load() == {"_data": "00000001"}
    replay = connection.watch("orders", checkpoint=store, stop_when_idle=True)
    assert [row["resume_token"] for batch in replay for row in batch.to_pylist()] == ["00000002", "00000003"]


def test_non_transient_watch_errors_are_raised_typed(
    mock_mongo: tuple[MongoDBConnector, list[FakeOplog]],
) -> None:
    connection, oplogs = mock_mongo
    oplogs.append(FakeOplog(3, fail_at={1: pymongo.errors.OperationFailure("unauthorized", 13)}))
    from sygnify.errors import PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        list(connection.watch("orders", stop_when_idle=True))


def test_corrupt_checkpoint_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match="delete it"):
        FileResumeTokenStore(path).load()


def test_mongomock_client_can_be_injected_for_unit_tests() -> None:
    connection = MongoDBConnector(MongoDBConfig(database="unit"), client=mongomock.MongoClient())
    connection.write(sample_table(7), "t")
    assert sum(batch.num_rows for batch in connection.stream("t", batch_size=3)) == 7
    assert connection.health().ok


# -- predicate pushdown over the wire ------------------------------------------------------------


class FindRecorder(pymongo.monitoring.CommandListener):
    """Records the filters of find/aggregate commands and how many documents their replies held."""

    def __init__(self) -> None:
        self.filters: list[Any] = []
        self.documents = 0

    def started(self, event: pymongo.monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.filters.append(event.command.get("filter"))
        elif event.command_name == "aggregate":
            self.filters.append(event.command.get("pipeline"))

    def succeeded(self, event: pymongo.monitoring.CommandSucceededEvent) -> None:
        cursor = event.reply.get("cursor") if event.command_name in ("find", "getMore", "aggregate") else None
        if cursor:
            self.documents += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))

    def failed(self, event: pymongo.monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def recorded(server: Any) -> Iterator[tuple[MongoDBConnector, FindRecorder]]:
    recorder = FindRecorder()
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        server.uri,
        username=USER,
        password=PASSWORD,
        authSource="admin",
        authMechanism="SCRAM-SHA-256",
        tz_aware=True,
        event_listeners=[recorder],
    )
    connection = MongoDBConnector(MongoDBConfig(database=f"db_{uuid.uuid4().hex[:8]}"), client=client)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    connection.collection("events").insert_many(
        [
            {
                "_id": ObjectId(f"65f0000000000000000{i:05d}"),
                "n": i,
                "f": math.nan if i == 7 else i / 4,
                "kind": ["click", "view", "buy"][i % 3],
                "at": start + dt.timedelta(hours=i),
                "user": {"tier": i % 4},
                "note": None if i % 5 == 0 else f"note {i}",
            }
            for i in range(200)
        ]
    )
    yield connection, recorder
    client.close()


@pytest.mark.parametrize(
    "predicate",
    [
        (pl.col("n") >= 150) & (pl.col("kind") == "buy"),
        pl.col("kind").is_in(["buy", "view"]) & (pl.col("n") < 20),
        pl.col("f") > 48.0,  # NaN rows are kept by Polars: the server must send them too
        pl.col("_id") == "65f000000000000000000042",
        (pl.col("at") < dt.datetime(2026, 1, 1, 5, tzinfo=dt.timezone.utc)) | (pl.col("n") == 199),
        (pl.col("user").struct.field("tier") == 3) & (pl.col("n") > 180),
        pl.col("note").is_null() & (pl.col("n").is_between(20, 60)),
        (pl.col("n") > 190) & pl.col("kind").str.starts_with("c"),  # half pushed, half local
    ],
)
def test_scan_pushes_polars_filters_to_the_server(
    recorded: tuple[MongoDBConnector, FindRecorder], predicate: pl.Expr
) -> None:
    connection, recorder = recorded
    frame = connection.scan("events", filter={"n": {"$gte": 0}})
    before = recorder.documents
    pushed = frame.filter(predicate).sort("n").collect()
    fetched = recorder.documents - before
    local = pl.DataFrame(connection.find("events", {"n": {"$gte": 0}})).filter(predicate).sort("n")
    assert pushed.equals(local)
    assert pushed.height > 0
    assert fetched < 200 // 2, "the server should have filtered most documents out"
    assert recorder.filters[-2]["$and"][0] == {"n": {"$gte": 0}}


def test_scan_pushes_filters_after_a_pipeline_but_not_past_limit(
    recorded: tuple[MongoDBConnector, FindRecorder],
) -> None:
    connection, recorder = recorded
    frame = connection.scan("events", pipeline=[{"$project": {"n": 1, "kind": 1}}])
    assert frame.filter(pl.col("n") > 195).collect()["n"].to_list() == [196, 197, 198, 199]
    assert {"$match": {"n": {"$gt": 195}}} in recorder.filters[-1][1:]
    limited = connection.scan("events", sort=[("n", 1)], limit=10).filter(pl.col("n") > 5).collect()
    assert limited["n"].to_list() == [6, 7, 8, 9]  # the filter applies to the first 10 documents
    assert recorder.filters[-1] == {}


# -- UUIDs, empty results and change-event ordering (issue 16) -------------------------------


def test_standard_uuids_read_as_canonical_text_and_write_back(mongo: MongoDBConnector) -> None:
    from bson.binary import Binary, UuidRepresentation

    key = uuid.UUID("12345678-1234-5678-1234-567812345678")
    # Written by another client as BSON binary subtype 4, the standard UUID encoding.
    mongo.collection("devices").insert_one(
        {"_id": 1, "device": Binary.from_uuid(key, UuidRepresentation.STANDARD)}
    )
    table = mongo.find("devices")
    assert table.schema.field("device").type == pa.string()
    assert table.column("device").to_pylist() == ["12345678-1234-5678-1234-567812345678"]
    assert [b.column("device").to_pylist() for b in mongo.stream("devices")] == [[str(key)]]
    # uuid.UUID values go in as subtype 4 through the connector's client too.
    mongo.collection("devices").insert_one({"_id": 2, "device": uuid.UUID(int=7)})
    raw = mongo.collection("devices").find_one({"_id": 2})
    assert raw is not None
    assert raw["device"] == uuid.UUID(int=7)
    assert mongo.find("devices", {"_id": 2}).column("device").to_pylist() == [str(uuid.UUID(int=7))]


def test_an_empty_result_still_yields_one_batch_with_the_schema(orders: MongoDBConnector) -> None:
    nothing = {"status": "refunded"}
    table = orders.find("orders", nothing)
    assert table.num_rows == 0
    assert table.schema.names == ["_id", "customer", "items", "total", "paid_at", "status"]
    assert table.schema.field("total").type == pa.decimal128(38, 3)
    batches = list(orders.stream("orders", params=nothing, columns=["status", "total"]))
    assert [b.num_rows for b in batches] == [0]
    # The schema a matching read would have had (fields in the documents' order).
    assert batches[0].schema == next(orders.stream("orders", columns=["status", "total"])).schema
    assert batches[0].schema.field("status").type == pa.string()
    # An empty collection: the projection's fields, typed null.
    orders.collection("empty").insert_one({"_id": 0})
    orders.collection("empty").delete_many({})
    assert [b.schema.names for b in orders.stream("empty", columns=["a"])] == [["a"]]
    # An aggregation's empty output has no shape to sample, but still yields a batch.
    assert [b.num_rows for b in orders.stream("orders", pipeline=[{"$match": nothing}])] == [0]


def test_change_events_keep_the_cluster_time_increment(
    mock_mongo: tuple[MongoDBConnector, list[FakeOplog]],
) -> None:
    connection, oplogs = mock_mongo
    oplog = FakeOplog(3)
    for index, event in enumerate(oplog.events):  # three operations within one second
        event["clusterTime"] = Timestamp(1_767_225_600, 5 - index)
    oplogs.append(oplog)
    with connection.watch("orders", stop_when_idle=True) as changes:
        rows = [row for batch in changes for row in batch.to_pylist()]
    assert {row["cluster_time"] for row in rows} == {dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)}
    assert [row["cluster_time_increment"] for row in rows] == [5, 4, 3]
    ordered = sorted(rows, key=lambda row: (row["cluster_time"], row["cluster_time_increment"]))
    assert [row["resume_token"] for row in ordered] == ["00000002", "00000001", "00000000"]
