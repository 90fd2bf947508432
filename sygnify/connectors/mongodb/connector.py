"""The ``mongodb`` connector: collections as Arrow batches, writes, upserts and change streams.

``find`` (filter, projection, sort, limit) and aggregation pipelines come back as Arrow with
a schema that is given or inferred from the first ``sample_size`` documents (mapping and the
inconsistency policy: :mod:`sygnify.connectors.mongodb.schema`). Needs ``pip install
sygnify[mongodb]``. A connection to a server (here with SCRAM credentials)::

    from sygnify import CloudDataConnector

    connector = CloudDataConnector()
    mongo = connector.connect(
        "mongodb", name="shop", uri="mongodb+srv://cluster0.example.mongodb.net/shop",
        username="reporter", password="...",
    )
    table = mongo.find("orders", {"status": "paid"}, sort=[("created", -1)], limit=100)
    mongo.write(table, "orders_copy", upsert_key=["_id"])

Without a server, the configuration and the driver options it turns into:

    >>> config = MongoDBConfig(uri="mongodb://db.example:27017/shop", auth_mechanism="SCRAM-SHA-256",
    ...                        username="app", password="hunter2")
    >>> config.database_name, "hunter2" in repr(config)
    ('shop', False)
"""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
import pymongo
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from pymongo.collection import Collection
from pymongo.database import Database

from sygnify.connectors.base import BaseConnector, Capability, QueryParams, WriteMode, WriteResult
from sygnify.connectors.mongodb.changes import (
    ChangeStream,
    FileResumeTokenStore,
    MemoryResumeTokenStore,
    ResumeTokenStore,
)
from sygnify.connectors.mongodb.config import MongoDBConfig, translate_mongo_error
from sygnify.connectors.mongodb.cursor import cursor_batches, empty_read_schema, open_cursor
from sygnify.connectors.mongodb.read import Sort, check_collection_name, filter_document, plan_read
from sygnify.connectors.mongodb.scan import scan_collection
from sygnify.connectors.mongodb.schema import InconsistentPolicy, infer_schema, with_rescue_column
from sygnify.connectors.mongodb.write import write_table
from sygnify.connectors.pool import ClientPool
from sygnify.errors import ConfigurationError, SygnifyError
from sygnify.io.arrow import DEFAULT_BATCH_SIZE

# The pieces live in private modules: reads are planned in _mongo_read and run in _mongo_cursor,
# scan() is _mongo_scan, writes are _mongo_write, change streams _mongo_changes; the public
# names users import from here are re-exported.
__all__ = [
    "ChangeStream",
    "FileResumeTokenStore",
    "MemoryResumeTokenStore",
    "MongoDBConfig",
    "MongoDBConnector",
    "ResumeTokenStore",
]

#: Datetimes in UTC; UUIDs (binary subtype 4) decoded as ``uuid.UUID``, read as canonical text.
#: These replace the client's codec options for the database, so both are set here too.
_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(
    tz_aware=True, uuid_representation=UuidRepresentation.STANDARD
)


class MongoDBConnector(BaseConnector[MongoDBConfig]):
    """Collections of one MongoDB database as Arrow data (see the module docstring).

    ``client`` lets tests pass a ready client (e.g. ``mongomock.MongoClient()``); it is then
    not pooled and not closed by the connector.
    """

    type_name = "mongodb"
    config_model = MongoDBConfig
    # Not queryable: MongoDB speaks filters and pipelines (find, aggregate), not SQL.
    capabilities = frozenset({Capability.READABLE, Capability.WRITABLE, Capability.CATALOG})

    def __init__(
        self,
        config: MongoDBConfig,
        *,
        name: str | None = None,
        pool: ClientPool | None = None,
        client: Any = None,
    ) -> None:
        super().__init__(config, name=name, pool=pool)
        database = config.database_name
        if database is None:
            raise ConfigurationError(
                "no database: pass database=, or name it in the URI (mongodb://host/DATABASE)",
                resource=self.name,
            )
        if client is None:
            client = self._shared(
                self._open_client,
                lambda c: c.close(),
                exclude={"sample_size", "on_inconsistent", "write_batch_size"},
            )
        self.client: Any = client
        try:
            self.database: Database[Any] = client.get_database(database, codec_options=_CODEC)
        except NotImplementedError:  # mongomock has no uuid_representation: tz-aware only
            self.database = client.get_database(database, codec_options=CodecOptions(tz_aware=True))

    def _open_client(self) -> pymongo.MongoClient[Any]:
        try:
            return pymongo.MongoClient(self.config.uri.get_secret_value(), **self.config.client_options())
        except Exception as exc:
            raise self._translate(exc, operation="connect", resource=self.name) from exc

    def collection(self, name: str) -> Collection[Any]:
        """The driver's collection object (for what this connector does not wrap)."""
        return self.database[check_collection_name(name)]

    # -- reading -------------------------------------------------------------------------

    def _open(
        self, source: str, *, on_inconsistent: InconsistentPolicy | None = None, **read: Any
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Run a find or aggregation; return the output schema and the batch iterator.

        ``read`` are :func:`~sygnify.connectors.mongodb.read.plan_read`'s options (``filter``,
        ``projection``, ``sort``, ``limit``, ``skip``, ``pipeline``, ``columns``, ``schema``,
        ``batch_size``); it checks them.
        """
        plan = plan_read(source, policy=on_inconsistent or self.config.on_inconsistent, **read)
        cursor, head = self._call(
            "find" if plan.stages is None else "aggregate",
            open_cursor,
            self.database,
            plan,
            self.config.sample_size,
            resource=source,
        )
        if plan.schema is not None:
            final_schema = plan.schema
        elif head:
            final_schema = infer_schema(head)
        else:  # nothing matched: an empty result still has the collection's columns
            try:
                final_schema = self._call(
                    "find", empty_read_schema, self.database, plan, self.config.sample_size, resource=source
                )
            except BaseException:
                cursor.close()
                raise
        output = with_rescue_column(final_schema) if plan.policy == "rescue" else final_schema

        def batches() -> Iterator[pa.RecordBatch]:
            documents = itertools.chain(head, cursor)
            try:
                yield from self._translate_stream(
                    cursor_batches(documents, final_schema, plan.policy, plan.batch_size), source
                )
            finally:
                cursor.close()

        return output, batches()

    def stream(
        self,
        source: str,
        *,
        params: QueryParams = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        columns: Sequence[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        sort: Sort | None = None,
        limit: int = 0,
        skip: int = 0,
        pipeline: Sequence[Mapping[str, Any]] | None = None,
        schema: pa.Schema | None = None,
        on_inconsistent: InconsistentPolicy | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Yield a collection's documents (``find``) or a ``pipeline``'s output in batches.

        ``source`` is the collection; ``params`` is the filter document (same as ``filter=``);
        ``columns`` projects server-side. Every batch has exactly ``batch_size`` rows (the
        last may be shorter) and the same schema.
        """
        _, batches = self._open(
            source,
            filter=filter_document(params, filter, source),
            sort=sort,
            limit=limit,
            skip=skip,
            pipeline=pipeline,
            columns=columns,
            schema=schema,
            batch_size=batch_size,
            on_inconsistent=on_inconsistent,
        )
        return batches

    def query(self, sql: str, params: QueryParams = None, **options: Any) -> pa.Table:
        """Deprecated: MongoDB is not SQL; use :meth:`find` (or :meth:`aggregate`).

        ``sql`` is the collection, ``params`` the filter; ``options`` are those of
        :meth:`stream`. Kept for one release.
        """
        warnings.warn(
            "MongoDBConnector.query(collection, filter) is deprecated: MongoDB is not SQL; "
            "use find(collection, filter, projection=, sort=, limit=) or aggregate(collection, pipeline)",
            DeprecationWarning,
            stacklevel=2,
        )
        output, batches = self._open(
            sql, filter=filter_document(params, options.pop("filter", None), sql), **options
        )
        return pa.Table.from_batches(list(batches), schema=output)

    def find(
        self,
        collection: str,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: Mapping[str, Any] | Sequence[str] | None = None,
        sort: Sort | None = None,
        limit: int = 0,
        skip: int = 0,
        schema: pa.Schema | None = None,
        on_inconsistent: InconsistentPolicy | None = None,
    ) -> pa.Table:
        """``collection.find(filter, projection).sort(sort).skip(skip).limit(limit)`` as a Table.

        ``projection`` is a MongoDB projection document or a list of fields; ``sort`` a list
        of ``(field, 1 | -1)``; ``limit=0`` means no limit. The schema is ``schema``, or
        inferred from the first ``sample_size`` documents.
        """
        output, batches = self._open(
            collection,
            filter=filter,
            projection=projection,
            sort=sort,
            limit=limit,
            skip=skip,
            schema=schema,
            on_inconsistent=on_inconsistent,
        )
        return pa.Table.from_batches(list(batches), schema=output)

    def aggregate(
        self,
        collection: str,
        pipeline: Sequence[Mapping[str, Any]],
        *,
        schema: pa.Schema | None = None,
        on_inconsistent: InconsistentPolicy | None = None,
    ) -> pa.Table:
        """An aggregation pipeline's output as a Table."""
        output, batches = self._open(
            collection, pipeline=pipeline, schema=schema, on_inconsistent=on_inconsistent
        )
        return pa.Table.from_batches(list(batches), schema=output)

    def scan(self, source: str, **options: Any) -> pl.LazyFrame:
        """A Polars LazyFrame over a collection (``filter``, ``sort``, ``pipeline``, ``schema``...).

        The schema is fixed when ``scan`` is called (given, or inferred from a sample).
        Selected columns and ``head()`` are pushed to the server, and so are Polars filters
        that have a MongoDB equivalent (comparisons with literals, ``is_in``, ``is_null``,
        ``&``, ``|``: see :mod:`sygnify.connectors.mongodb.pushdown`), ANDed with ``filter=``
        or appended to ``pipeline=`` as a ``$match``. The whole Polars filter is still applied
        to the batches, so results are the same as filtering locally. With ``limit=`` or
        ``skip=`` filters run locally only (they apply to the documents those select).
        """
        return scan_collection(
            self._open,
            source,
            options,
            sample_size=self.config.sample_size,
            default_policy=self.config.on_inconsistent,
        )

    # -- writing -------------------------------------------------------------------------

    def write(
        self,
        data: Any,
        target: str,
        *,
        mode: WriteMode = "append",
        upsert_key: Sequence[str] | None = None,
        object_id_fields: Sequence[str] = (),
        batch_size: int | None = None,
    ) -> WriteResult:
        """Write Arrow/Polars/pandas data to collection ``target``.

        ``append`` inserts with ``insert_many`` in batches of ``batch_size`` (default
        ``write_batch_size``); ``overwrite`` first deletes every document. With
        ``upsert_key`` each row replaces the document with the same key values, or is
        inserted (idempotent, so safe to retry). ``object_id_fields`` turns hex strings
        back into ObjectIds (e.g. an ``_id`` read by this connector).
        """
        return write_table(
            functools.partial(self._call, "write", resource=target),
            self.collection,
            data,
            target,
            mode=mode,
            upsert_key=upsert_key,
            object_id_fields=object_id_fields,
            batch_size=batch_size or self.config.write_batch_size,
        )

    # -- change streams --------------------------------------------------------------------

    def watch(
        self,
        source: str | None = None,
        *,
        pipeline: Sequence[Mapping[str, Any]] | None = None,
        checkpoint: str | Path | ResumeTokenStore | None = None,
        full_document: Literal["default", "updateLookup", "whenAvailable", "required"] = "updateLookup",
        batch_size: int = 1_000,
        max_await_ms: int = 1_000,
        stop_when_idle: bool = False,
        max_resumes: int = 10,
    ) -> ChangeStream:
        """Watch a collection (or the whole database) as a resumable stream of change batches.

        Batches have :data:`~sygnify.connectors.mongodb.changes.CHANGE_SCHEMA`. With a
        ``checkpoint`` (a file path or a :class:`ResumeTokenStore`) the stream resumes after
        the last batch handled in a previous run; transient failures resume from the last
        event read, up to ``max_resumes`` times. Needs a replica set or sharded cluster.
        """
        store: ResumeTokenStore | None
        store = FileResumeTokenStore(checkpoint) if isinstance(checkpoint, str | Path) else checkpoint
        target: Any = self.database if source is None else self.collection(source)
        resource = source or self.database.name
        stages = [dict(stage) for stage in pipeline or []]

        def open_cursor(token: Mapping[str, Any] | None) -> Any:
            return self._call(
                "watch",
                target.watch,
                stages,
                full_document=None if full_document == "default" else full_document,
                resume_after=token,
                batch_size=batch_size,
                max_await_time_ms=max_await_ms,
                resource=resource,
            )

        def translate(exc: Exception) -> SygnifyError:
            return self._translate(exc, operation="watch", resource=resource)

        return ChangeStream(
            open_cursor,
            translate,
            checkpoint=store,
            batch_size=batch_size,
            stop_when_idle=stop_when_idle,
            max_resumes=max_resumes,
        )

    # -- the rest of the protocol ------------------------------------------------------------

    def list(self, prefix: str = "") -> list[str]:
        """Collection names in the database that start with ``prefix``, sorted."""
        names: list[str] = self._call("list", self.database.list_collection_names, resource=prefix)
        return sorted(name for name in names if name.startswith(prefix) and not name.startswith("system."))

    def _check_health(self) -> str:
        self.database.command("ping")
        return f"database {self.database.name!r} answers ping"

    # -- errors --------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self.config.secrets():
            text = text.replace(secret, "***")
        return text

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        message = self._scrub(f"mongodb {operation} failed for {resource!r}: {type(exc).__name__}: {exc}")
        return translate_mongo_error(exc, message, resource)
