"""Google BigQuery: parameterized SQL, Arrow results over the Storage Read API, loads and inserts.

Results come back as Arrow end to end: through the BigQuery Storage Read API (gRPC) when
it is available, else through the REST result pages, batch by batch, so a large result
never has to fit in memory. Values always travel as query parameters (``@name`` or ``?``),
never formatted into the SQL. Example (needs a BigQuery project or emulator)::

    from sygnify import CloudDataConnector

    with CloudDataConnector() as connector:
        bq = connector.connect("bigquery", project="my-project", dataset="sales",
                               credentials_file="key.json", labels={"team": "risk"})
        print(bq.estimate("SELECT * FROM orders WHERE amount > @min", {"min": 10}))  # bytes
        for batch in bq.stream("SELECT * FROM orders WHERE region = @r", params={"r": "eu"}):
            ...
        big = bq.scan("orders").filter(pl.col("amount") > 100).select("id").collect()
        bq.write(frame, "sales.orders_copy", mode="overwrite")
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import decimal
import importlib
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import requests
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import bigquery
from pydantic import Field, SecretStr, model_validator

from sygnify._arrow import DEFAULT_BATCH_SIZE, rebatch, to_arrow_table
from sygnify.config import ConnectorConfig, config_fingerprint
from sygnify.connectors._sql_scan import Pushdown, SqlDialect, scan_sql_table, select_sql
from sygnify.connectors.base import BaseConnector, QueryParams, WriteMode, WriteResult
from sygnify.connectors.pool import ClientPool
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    DataQualityError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    QueryError,
    SchemaError,
    SygnifyError,
    ThrottledError,
)

__all__ = ["BigQueryConfig", "BigQueryConnector", "arrow_to_bigquery_schema", "query_parameter"]

_log = logging.getLogger(__name__)
_SQL_START = re.compile(r"^\s*(\(|select\b|with\b|from\b)", re.I)
_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-:.]*$")
_DATASET = re.compile(r"^[A-Za-z0-9_]+$")
_TABLE = re.compile(r"^[A-Za-z0-9_\-$]+$")
_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
#: Storage Read API failures after which reading falls back to REST pages.
_STORAGE_FALLBACK = (gexc.NotFound, gexc.PermissionDenied, gexc.MethodNotImplemented, gexc.Unauthenticated)

#: sygnify's RetryPolicy retries transient errors; the SDK's own retries would multiply them.
NO_RETRY = Retry(predicate=lambda _exc: False)

DIALECT = SqlDialect(
    quote=lambda name: "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`",
    placeholder=lambda name, _index: f"@{name}",
)


class BigQueryConfig(ConnectorConfig):
    """Options of the ``bigquery`` connector.

    Credentials, in order of precedence: ``credentials_file`` or ``credentials_json`` (a
    service-account key), ``oauth_token`` (a user access token), ``anonymous`` (emulators
    only), else application default credentials. ``impersonate_service_account`` wraps
    any of them to act as that service account.
    """

    project: str | None = Field(None, description="Project that runs jobs (default: from credentials).")
    location: str | None = Field(None, description="Job location, e.g. 'EU' or 'us-central1'.")
    dataset: str | None = Field(None, description="Dataset of table names given without one.")
    credentials_file: Path | None = Field(None, description="Service-account key file (JSON).")
    credentials_json: SecretStr | None = Field(None, description="Service-account key as JSON text.")
    oauth_token: SecretStr | None = Field(None, description="An OAuth 2 user access token.")
    anonymous: bool = Field(False, description="No credentials at all (for emulators).")
    impersonate_service_account: str | None = Field(None, description="Act as this service account.")
    impersonation_delegates: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=lambda: list(_SCOPES))
    endpoint: str | None = Field(
        None, description="REST endpoint, e.g. http://127.0.0.1:9050 for an emulator."
    )
    storage_endpoint: str | None = Field(
        None, description="Storage Read API gRPC host:port; http://host:port means plaintext (emulators)."
    )
    use_storage_api: bool = Field(True, description="Read results with the Storage Read API when possible.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels put on every job.")
    job_timeout: float | None = Field(None, gt=0, description="Seconds a query/load job may take.")
    maximum_bytes_billed: int | None = Field(None, ge=0)
    page_size: int = Field(50_000, ge=1, description="Rows per REST result page.")
    insert_chunk_rows: int = Field(500, ge=1, le=50_000, description="Rows per insertAll request.")

    @model_validator(mode="after")
    def _one_credential(self) -> BigQueryConfig:
        given = [
            name
            for name in ("credentials_file", "credentials_json", "oauth_token")
            if getattr(self, name) is not None
        ] + (["anonymous"] if self.anonymous else [])
        if len(given) > 1:
            raise ValueError(
                f"give at most one of credentials_file, credentials_json, oauth_token, "
                f"anonymous (got {', '.join(given)})"
            )
        return self


def _credentials(config: BigQueryConfig) -> tuple[Credentials, str | None]:
    """Build google-auth credentials and the project they imply."""
    # google-auth is untyped; go through Any rather than sprinkle ignores.
    service_account: Any = importlib.import_module("google.oauth2.service_account")
    user_credentials: Any = importlib.import_module("google.oauth2.credentials")

    project: str | None = None
    credentials: Credentials
    try:
        if config.credentials_file is not None:
            credentials = service_account.Credentials.from_service_account_file(
                str(config.credentials_file), scopes=config.scopes
            )
            project = getattr(credentials, "project_id", None)
        elif config.credentials_json is not None:
            info = json.loads(config.credentials_json.get_secret_value())
            credentials = service_account.Credentials.from_service_account_info(info, scopes=config.scopes)
            project = getattr(credentials, "project_id", None)
        elif config.oauth_token is not None:
            credentials = user_credentials.Credentials(token=config.oauth_token.get_secret_value())
        elif config.anonymous:
            credentials = cast(Any, AnonymousCredentials)()
        else:
            import google.auth

            credentials, project = google.auth.default(scopes=config.scopes)
    except FileNotFoundError:
        raise ConfigurationError(
            f"credentials_file {config.credentials_file} does not exist", resource="credentials_file"
        ) from None
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        # Never echo the key material: name the problem only.
        raise AuthenticationError(
            f"the service-account key is not valid ({type(exc).__name__}); check the JSON key file",
            resource="credentials",
        ) from None
    except auth_exc.DefaultCredentialsError:
        raise AuthenticationError(
            "no application default credentials found; run `gcloud auth application-default login`, "
            "set GOOGLE_APPLICATION_CREDENTIALS, or pass credentials_file/oauth_token",
            resource="credentials",
        ) from None
    if config.impersonate_service_account:
        impersonated_credentials: Any = importlib.import_module("google.auth.impersonated_credentials")
        credentials = impersonated_credentials.Credentials(
            source_credentials=credentials,
            target_principal=config.impersonate_service_account,
            target_scopes=config.scopes,
            delegates=config.impersonation_delegates or None,
        )
    return credentials, project


@dataclass
class _Clients:
    bigquery: bigquery.Client
    storage: Any | None

    def close(self) -> None:
        cast(Any, self.bigquery).close()
        transport = getattr(self.storage, "transport", None) if self.storage is not None else None
        if transport is not None:
            transport.close()


def _open_clients(config: BigQueryConfig) -> _Clients:
    credentials, implied_project = _credentials(config)
    project = config.project or implied_project
    if not project:
        raise ConfigurationError("no project: pass project=... (or use credentials that name one)")
    options = ClientOptions(api_endpoint=config.endpoint) if config.endpoint else None
    client = bigquery.Client(
        project=project, credentials=credentials, location=config.location, client_options=options
    )
    storage = None
    if config.use_storage_api:
        BigQueryReadClient: Any = importlib.import_module("google.cloud.bigquery_storage").BigQueryReadClient
        BigQueryReadGrpcTransport: Any = importlib.import_module(
            "google.cloud.bigquery_storage_v1.services.big_query_read.transports"
        ).BigQueryReadGrpcTransport

        endpoint = config.storage_endpoint
        if endpoint is not None and endpoint.startswith("http://"):
            grpc: Any = importlib.import_module("grpc")
            channel = grpc.insecure_channel(endpoint.removeprefix("http://"))
            storage = BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=channel))
        else:
            storage_options = (
                ClientOptions(api_endpoint=endpoint.removeprefix("https://")) if endpoint else None
            )
            storage = BigQueryReadClient(credentials=credentials, client_options=storage_options)
    return _Clients(client, storage)


# -- parameters and schemas -------------------------------------------------------------

_ParamType = bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter | bigquery.StructQueryParameter


def _scalar_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, decimal.Decimal):
        exponent = value.as_tuple().exponent
        digits = len(value.as_tuple().digits)
        scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        return "NUMERIC" if scale <= 9 and digits - scale <= 29 else "BIGNUMERIC"
    if isinstance(value, str) or value is None:
        return "STRING"
    if isinstance(value, bytes):
        return "BYTES"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP" if value.tzinfo is not None else "DATETIME"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, dt.time):
        return "TIME"
    raise ConfigurationError(
        f"cannot pass a {type(value).__name__} as a BigQuery query parameter; pass a "
        "google.cloud.bigquery.ScalarQueryParameter with an explicit type"
    )


def query_parameter(name: str | None, value: Any) -> _ParamType:
    """A typed BigQuery query parameter for a Python value (``None`` is a NULL STRING).

    >>> query_parameter("ids", [1, 2]).to_api_repr()["parameterType"]
    {'type': 'ARRAY', 'arrayType': {'type': 'INT64'}}
    """
    if isinstance(value, _ParamType):
        return value
    if isinstance(value, list | tuple):
        first = next((item for item in value if item is not None), None)
        if first is None:
            raise ConfigurationError(
                f"parameter {name or '?'} is an empty or all-NULL list, so its element type is unknown; "
                "pass a google.cloud.bigquery.ArrayQueryParameter"
            )
        return bigquery.ArrayQueryParameter(name, _scalar_type(first), list(value))
    if isinstance(value, Mapping):
        return bigquery.StructQueryParameter(name, *(query_parameter(str(k), v) for k, v in value.items()))
    return bigquery.ScalarQueryParameter(name, _scalar_type(value), value)


def _query_parameters(params: QueryParams) -> list[_ParamType]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        return [query_parameter(str(name), value) for name, value in params.items()]
    if isinstance(params, str | bytes):
        raise ConfigurationError("params must be a sequence (for ?) or a mapping (for @name), not a string")
    return [query_parameter(None, value) for value in params]


def _field(name: str, arrow_type: pa.DataType, mode: str = "NULLABLE") -> bigquery.SchemaField:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return _field(name, arrow_type.value_type, "REPEATED")
    if pa.types.is_struct(arrow_type):
        fields = [
            _field(arrow_type.field(i).name, arrow_type.field(i).type) for i in range(arrow_type.num_fields)
        ]
        return bigquery.SchemaField(name, "RECORD", mode=mode, fields=fields)
    if pa.types.is_decimal(arrow_type):
        small = arrow_type.scale <= 9 and arrow_type.precision - arrow_type.scale <= 29
        return bigquery.SchemaField(name, "NUMERIC" if small else "BIGNUMERIC", mode=mode)
    checks: list[tuple[Any, str]] = [
        (pa.types.is_boolean, "BOOL"),
        (pa.types.is_integer, "INT64"),
        (pa.types.is_floating, "FLOAT64"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t), "STRING"),
        (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "BYTES"),
        (pa.types.is_date, "DATE"),
        (pa.types.is_time, "TIME"),
    ]
    if pa.types.is_timestamp(arrow_type):
        return bigquery.SchemaField(name, "TIMESTAMP" if arrow_type.tz else "DATETIME", mode=mode)
    if getattr(arrow_type, "extension_name", None) == "arrow.json":
        return bigquery.SchemaField(name, "JSON", mode=mode)
    for check, bq_type in checks:
        if check(arrow_type):
            return bigquery.SchemaField(name, bq_type, mode=mode)
    raise SchemaError(
        f"column {name!r} has Arrow type {arrow_type}, which has no BigQuery type", resource=name
    )


def arrow_to_bigquery_schema(schema: pa.Schema) -> list[bigquery.SchemaField]:
    """The BigQuery table schema for an Arrow schema (used when ``write()`` creates a table).

    >>> fields = arrow_to_bigquery_schema(pa.schema({"x": pa.list_(pa.int32())}))
    >>> [(f.name, f.field_type, f.mode) for f in fields]
    [('x', 'INT64', 'REPEATED')]
    """
    return [_field(f.name, f.type) for f in schema]


def _looks_like_sql(source: str) -> bool:
    return bool(_SQL_START.match(source))


# -- the connector ------------------------------------------------------------------------


class BigQueryConnector(BaseConnector[BigQueryConfig]):
    """BigQuery tables and SQL as Arrow, with loads, streaming inserts and dry-run estimates."""

    type_name = "bigquery"
    config_model = BigQueryConfig

    def __init__(self, config: BigQueryConfig, *, name: str | None = None, pool: ClientPool | None = None):
        super().__init__(config, name=name, pool=pool)
        self._pool_key = config_fingerprint(config, exclude=frozenset({"retry", "breaker", "labels"}))
        self._clients: _Clients = self._call(
            "connect",
            lambda: self._pool.acquire(self._pool_key, lambda: _open_clients(config), _Clients.close),
        )

    @property
    def client(self) -> bigquery.Client:
        """The underlying ``google.cloud.bigquery.Client`` (shared by connections of equal config)."""
        return self._clients.bigquery

    @property
    def project(self) -> str:
        return str(self.client.project)

    # -- names --------------------------------------------------------------------------

    def table_id(self, name: str) -> str:
        """``project.dataset.table`` for ``table``, ``dataset.table`` or a full id (backticks allowed)."""
        parts = name.strip().strip("`").split(".")
        if len(parts) == 1 and self.config.dataset:
            parts = [self.config.dataset, *parts]
        if len(parts) == 2:
            parts = [self.project, *parts]
        if len(parts) != 3:
            raise ConfigurationError(
                f"table {name!r} needs a dataset: write 'dataset.table' or set dataset= on the connection",
                resource=name,
            )
        project, dataset, table = parts
        if not (_PROJECT.match(project) and _DATASET.match(dataset) and _TABLE.match(table)):
            raise ConfigurationError(
                f"{name!r} is not a valid BigQuery table id (project.dataset.table, letters, digits, _)",
                resource=name,
            )
        return f"{project}.{dataset}.{table}"

    # -- jobs ---------------------------------------------------------------------------

    def _job_config(
        self, params: QueryParams, labels: Mapping[str, str] | None, *, dry_run: bool = False
    ) -> bigquery.QueryJobConfig:
        job_config = bigquery.QueryJobConfig(
            query_parameters=_query_parameters(params),
            labels={**self.config.labels, **(labels or {})},
            dry_run=dry_run,
            use_query_cache=not dry_run,
        )
        if self.config.dataset:
            job_config.default_dataset = f"{self.project}.{self.config.dataset}"
        if self.config.job_timeout is not None:
            job_config.job_timeout_ms = int(self.config.job_timeout * 1000)
        if self.config.maximum_bytes_billed is not None:
            job_config.maximum_bytes_billed = self.config.maximum_bytes_billed
        return job_config

    def _start_query(
        self, sql: str, params: QueryParams, labels: Mapping[str, str] | None, timeout: float | None
    ) -> bigquery.table.RowIterator:
        """One attempt: run the job and wait for it; the rows are fetched by the caller."""
        job_config = self._job_config(params, labels)
        wait = timeout if timeout is not None else self.config.job_timeout
        try:
            job = self.client.query(sql, job_config=job_config, retry=NO_RETRY, job_retry=None, timeout=wait)
        except requests.Timeout:
            raise OperationTimeoutError(
                f"BigQuery query did not finish within {wait:g} s", resource=sql
            ) from None
        try:
            return job.result(timeout=wait, page_size=self.config.page_size, retry=NO_RETRY)
        except (concurrent.futures.TimeoutError, requests.Timeout):
            job.cancel(retry=NO_RETRY)
            raise OperationTimeoutError(
                f"BigQuery job {job.job_id} did not finish within {wait:g} s (cancelled)", resource=sql
            ) from None

    def _run_query(
        self, sql: str, params: QueryParams, labels: Mapping[str, str] | None, timeout: float | None
    ) -> bigquery.table.RowIterator:
        return self._call("query", self._start_query, sql, params, labels, timeout, resource=sql)

    def _arrow_batches(self, rows: bigquery.table.RowIterator) -> Iterator[pa.RecordBatch]:
        """Batches of a result: Storage Read API first, REST pages if it cannot read this table."""
        if self._clients.storage is not None:
            batches = rows.to_arrow_iterable(bqstorage_client=self._clients.storage, max_queue_size=2)
            try:
                first = next(batches)
            except StopIteration:
                return
            except _STORAGE_FALLBACK as exc:
                _log.debug("Storage Read API unavailable for this result (%s); using REST pages", exc)
            else:
                yield first
                yield from batches
                return
        yield from rows.to_arrow_iterable(bqstorage_client=None)

    # -- protocol -----------------------------------------------------------------------

    def query(
        self,
        sql: str,
        params: QueryParams = None,
        *,
        labels: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> pa.Table:
        """Run GoogleSQL with ``@name`` (mapping) or ``?`` (sequence) parameters; the whole result.

        ``timeout`` (seconds) bounds the wait for the job, which is cancelled on timeout.
        """

        def run_and_fetch() -> pa.Table:
            # One attempt covers the job and the download: a retry must not resume a half-read result.
            rows = self._start_query(sql, params, labels, timeout)
            batches = list(self._arrow_batches(rows))
            if not batches:
                return rows.to_arrow(create_bqstorage_client=False)
            return pa.Table.from_batches(batches)

        return self._call("query", run_and_fetch, resource=sql)

    def stream(
        self,
        source: str,
        *,
        params: QueryParams = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        columns: Sequence[str] | None = None,
        labels: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Yield a query's result (``source`` is SQL) or a table's rows in ``batch_size``-row batches.

        A table is read directly with the Storage Read API (no query cost), projected to
        ``columns``.
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        if _looks_like_sql(source):
            if columns:
                raise ConfigurationError("columns applies to table sources; select them in the SQL")
            rows = self._run_query(source, params, labels, timeout)
        else:
            if params:
                raise ConfigurationError("params apply to SQL sources only", resource=source)
            rows = self._table_rows(source, columns)
        yield from self._translated(rebatch(self._arrow_batches(rows), batch_size), source)

    def _table_rows(self, source: str, columns: Sequence[str] | None) -> bigquery.table.RowIterator:
        table_id = self.table_id(source)

        def open_rows() -> bigquery.table.RowIterator:
            table = self.client.get_table(table_id, retry=NO_RETRY)
            fields = None
            if columns:
                by_name = {field.name: field for field in table.schema}
                missing = [column for column in columns if column not in by_name]
                if missing:
                    raise SchemaError(
                        f"table {table_id} has no column(s) {', '.join(missing)}", resource=table_id
                    )
                fields = [by_name[column] for column in columns]
            return self.client.list_rows(
                table, selected_fields=fields, page_size=self.config.page_size, retry=NO_RETRY
            )

        return self._call("open table", open_rows, resource=table_id)

    def _translated(self, batches: Iterator[pa.RecordBatch], source: str) -> Iterator[pa.RecordBatch]:
        # Mid-stream errors are translated, not retried: a restart would repeat rows.
        try:
            yield from batches
        except SygnifyError:
            raise
        except Exception as exc:
            raise self._translate(exc, operation="stream", resource=source) from exc

    def scan(self, source: str, *, batch_size: int = DEFAULT_BATCH_SIZE, **options: Any) -> pl.LazyFrame:
        """A LazyFrame over a table; selected columns and simple filters run inside BigQuery.

        Without a filter the table is read with the Storage Read API; with one, a
        parameterized ``SELECT ... WHERE`` job runs. The filter is re-applied in Polars.
        """
        if options:
            raise ConfigurationError(f"unknown scan options: {', '.join(sorted(options))}", resource=source)
        table_id = self.table_id(source)
        empty = self._call(
            "scan",
            lambda: self.client.list_rows(table_id, max_results=0, retry=NO_RETRY).to_arrow(
                create_bqstorage_client=False
            ),
            resource=table_id,
        )
        frame = pl.from_arrow(empty)
        assert isinstance(frame, pl.DataFrame)

        def fetch(
            columns: list[str] | None, pushdown: Pushdown, limit: int | None, size: int
        ) -> Iterator[pa.RecordBatch]:
            if pushdown.sql is None and limit is None:
                return self.stream(table_id, columns=columns, batch_size=size)
            sql = select_sql(f"`{table_id}`", columns, pushdown, limit, DIALECT)
            params = {param.name: param.value for param in pushdown.params}
            return self.stream(sql, params=params, batch_size=size)

        return scan_sql_table(
            frame.schema, fetch, DIALECT, batch_size=batch_size, name=f"bigquery:{table_id}"
        )

    def estimate(self, sql: str, params: QueryParams = None) -> int:
        """Bytes the query would process (a dry run: free, and it validates the SQL)."""
        job_config = self._job_config(params, None, dry_run=True)

        def dry_run() -> int:
            job = self.client.query(sql, job_config=job_config, retry=NO_RETRY, job_retry=None)
            return int(job.total_bytes_processed or 0)

        return self._call("dry run", dry_run, resource=sql)

    def write(
        self,
        data: Any,
        target: str,
        *,
        mode: WriteMode = "append",
        method: Literal["load", "insert_all"] = "load",
        labels: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Write Arrow/Polars/pandas data to a table, creating it from the data's schema if absent.

        ``method="load"`` runs a Parquet load job (atomic, free); ``"insert_all"`` uses
        streaming inserts (``insertAll``, rows visible at once, billed). ``overwrite``
        replaces the table's rows.
        """
        if mode not in ("append", "overwrite"):
            raise ConfigurationError(f"mode must be 'append' or 'overwrite', got {mode!r}", resource=target)
        if method not in ("load", "insert_all"):
            raise ConfigurationError(
                f"method must be 'load' or 'insert_all', got {method!r}", resource=target
            )
        table = to_arrow_table(data)
        table_id = self.table_id(target)
        schema = arrow_to_bigquery_schema(table.schema)
        exists = self._call("get table", self._table_exists, table_id, resource=table_id)
        if not exists:
            self._call(
                "create table",
                self.client.create_table,
                bigquery.Table(table_id, schema=schema),
                retry=NO_RETRY,
                resource=table_id,
            )
        if method == "load":
            rows = self._call("load", self._load, table, table_id, mode, labels, resource=table_id)
        else:
            if mode == "overwrite" and exists:
                self._call("truncate", self._recreate, table_id, resource=table_id)
            rows = self._insert_all(table, table_id, schema)
        return WriteResult(target=target, rows=rows, paths=[table_id.split(".", 1)[1]])

    def _table_exists(self, table_id: str) -> bool:
        try:
            self.client.get_table(table_id, retry=NO_RETRY)
        except gexc.NotFound:
            return False
        return True

    def _recreate(self, table_id: str) -> None:
        # Streaming-buffer rows block DML, so overwrite-by-insert re-creates the table.
        existing = self.client.get_table(table_id, retry=NO_RETRY)
        self.client.delete_table(table_id, retry=NO_RETRY)
        self.client.create_table(bigquery.Table(table_id, schema=existing.schema), retry=NO_RETRY)

    def _load(self, table: pa.Table, table_id: str, mode: WriteMode, labels: Mapping[str, str] | None) -> int:
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        buffer.seek(0)
        job_config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition="WRITE_TRUNCATE" if mode == "overwrite" else "WRITE_APPEND",
            labels={**self.config.labels, **(labels or {})},
        )
        if self.config.job_timeout is not None:
            job_config.job_timeout_ms = int(self.config.job_timeout * 1000)
        job = self.client.load_table_from_file(buffer, table_id, job_config=job_config, rewind=True)
        try:
            job.result(timeout=self.config.job_timeout, retry=NO_RETRY)
        except concurrent.futures.TimeoutError:
            job.cancel(retry=NO_RETRY)
            raise OperationTimeoutError(
                f"load job {job.job_id} into {table_id} did not finish within {self.config.job_timeout:g} s",
                resource=table_id,
            ) from None
        return int(job.output_rows or table.num_rows)

    def _insert_all(self, table: pa.Table, table_id: str, schema: list[bigquery.SchemaField]) -> int:
        written = 0
        for batch in table.to_batches(max_chunksize=self.config.insert_chunk_rows):
            rows = batch.to_pylist()
            row_ids = [uuid.uuid4().hex for _ in rows]  # insertId: best-effort de-duplication on retry
            errors = self._call(
                "insert",
                self.client.insert_rows,
                table_id,
                rows,
                selected_fields=schema,
                row_ids=row_ids,
                retry=NO_RETRY,
                resource=table_id,
            )
            if errors:
                described = "; ".join(
                    f"row {written + int(error.get('index', -1))}: "
                    + ", ".join(str(e.get("message", e.get("reason"))) for e in error.get("errors", []))
                    for error in errors[:3]
                )
                raise DataQualityError(
                    f"{len(errors)} row(s) rejected by insertAll into {table_id} "
                    f"({written} rows before this request were written): {described}",
                    resource=table_id,
                )
            written += len(rows)
        return written

    def datasets(self) -> list[str]:
        """Dataset ids of the project, sorted."""
        return self._call(
            "list datasets", lambda: sorted(d.dataset_id for d in self.client.list_datasets(retry=NO_RETRY))
        )

    def list(self, prefix: str = "") -> list[str]:
        """Tables as ``dataset.table`` whose name starts with ``prefix`` (e.g. ``"sales."``)."""

        def list_tables() -> list[str]:
            names: list[str] = []
            for dataset in self.client.list_datasets(retry=NO_RETRY):
                dataset_id = dataset.dataset_id
                if not (dataset_id.startswith(prefix) or prefix.startswith(f"{dataset_id}.")):
                    continue
                for table in self.client.list_tables(dataset_id, retry=NO_RETRY):
                    full = f"{dataset_id}.{table.table_id}"
                    if full.startswith(prefix):
                        names.append(full)
            return sorted(names)

        return self._call("list", list_tables, resource=prefix or None)

    def close(self) -> None:
        if not self._closed:
            self._pool.release(self._pool_key)
        super().close()

    def _check_health(self) -> str:
        list(self.client.list_datasets(max_results=1, retry=NO_RETRY))
        return f"project {self.project}"

    # -- errors ---------------------------------------------------------------------------

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        return translate_bigquery_error(exc, f"bigquery {operation} failed", resource)


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    return str(first.get("reason", ""))


def translate_bigquery_error(exc: Exception, context: str, resource: str | None) -> SygnifyError:
    """Map a google-cloud / google-auth exception onto the sygnify error tree."""
    message = f"{context}: {getattr(exc, 'message', None) or exc}"
    reason = _reason(exc)
    if isinstance(exc, concurrent.futures.TimeoutError | gexc.DeadlineExceeded | requests.Timeout) or (
        reason in ("timeout", "jobInternalError") and "timed out" in str(exc).lower()
    ):
        return OperationTimeoutError(message, resource=resource)
    if isinstance(
        exc,
        auth_exc.RefreshError | auth_exc.DefaultCredentialsError | gexc.Unauthorized | gexc.Unauthenticated,
    ):
        return AuthenticationError(
            f"{context}: credentials were rejected or could not be refreshed ({type(exc).__name__})",
            resource=resource,
        )
    if isinstance(exc, gexc.TooManyRequests | gexc.ResourceExhausted) or reason in (
        "rateLimitExceeded",
        "quotaExceeded",
        "backendError",
    ):
        return ThrottledError(message, resource=resource)
    if isinstance(exc, gexc.Forbidden | gexc.PermissionDenied):
        return PermissionDeniedError(message, resource=resource)
    if isinstance(exc, gexc.NotFound):
        return NotFoundError(message, resource=resource)
    if isinstance(exc, gexc.BadRequest | gexc.InvalidArgument):
        return QueryError(message, resource=resource)
    if isinstance(
        exc,
        gexc.ServerError
        | gexc.ServiceUnavailable
        | gexc.RetryError
        | auth_exc.TransportError
        | requests.ConnectionError
        | ConnectionError,
    ):
        return ConnectionFailedError(message, resource=resource)
    if isinstance(exc, pa.ArrowInvalid | pa.ArrowTypeError):
        return SchemaError(message, resource=resource)
    return SygnifyError(f"{message} ({type(exc).__name__})", resource=resource)
