"""The contract between stream sources and their consumers (RealTimeML, LargeDataHandler).

A source hands out micro-batches of decoded records as Arrow, each with an ``ack`` to call
once the batch has been fully processed (predictions written, callbacks done). Nothing is
acknowledged before that, so a consumer that dies mid-batch gets the batch again after a
restart: delivery is at-least-once.

:class:`BaseSource` implements the parts every source shares (decoding, schema-driven
Arrow building, dead-letter routing, backpressure, reconnect with backoff, shutdown); a
concrete source only fetches raw messages and acknowledges them::

    >>> class ListSource(BaseSource):
    ...     name = "list"
    ...     def __init__(self, payloads: list[bytes], **options: Any) -> None:
    ...         super().__init__(**options)
    ...         self.payloads, self.acked = list(payloads), []
    ...     def _fetch(self, max_records: int, timeout: float) -> list[RawMessage]:
    ...         taken, self.payloads = self.payloads[:max_records], self.payloads[max_records:]
    ...         return [RawMessage(p, {"index": i}) for i, p in enumerate(taken)]
    ...     def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
    ...         self.acked += [m.position["index"] for m in messages]
    >>> source = ListSource([b'{"t": 20.5}', b"not json", b'{"t": 21.0}'])
    >>> batch = source.read(max_records=10)
    >>> batch.batch.to_pydict(), [d["reason"][:15] for d in batch.dead_letters]
    ({'t': [20.5, 21.0]}, ['JSONDecodeError'])
    >>> batch.ack(); source.acked
    [0, 1, 2]
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Protocol, runtime_checkable

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import Self

from sygnify import events
from sygnify.config import RetrySettings, config_kwargs
from sygnify.errors import (
    ConfigurationError,
    DataQualityError,
    SchemaError,
    SourceClosedError,
    SygnifyError,
    TransientError,
)
from sygnify.plugins import PluginContext, build_from_kwargs, warn_legacy_factory
from sygnify.resilience import RetryPolicy
from sygnify.streams.decoding import Decoder, decode_json_batch, json_decoder

__all__ = [
    "BaseSource",
    "DeadLetterTarget",
    "RawMessage",
    "SourceBatch",
    "SourceConfig",
    "StreamSource",
    "build_batch",
    "infer_schema",
]

_logger = logging.getLogger(__name__)


@dataclass
class SourceBatch:
    """A micro-batch from a stream source.

    ``batch`` holds the decoded records; ``ack()`` acknowledges every message in it
    (including poison messages already sent to the dead-letter target, listed in
    ``dead_letters`` with their reasons); ``metadata`` has source-specific positions
    (offsets, stream ids, sequence numbers).

    ``reject(rows, reasons)`` sends rows of ``batch`` (by index) that a consumer could not
    process (a null feature, a record the model refuses) to the same dead-letter target, with
    their reasons; they are acknowledged with the batch, so a restart does not read them again.

    ``retain()`` says the consumer keeps the batch unacknowledged for long (its rows wait in
    an open window): it stops counting toward the source's ``max_unacked_batches``, so the
    source lends further batches instead of waiting for an ack that only a later batch can
    bring. It is still acknowledged (or redelivered) as usual.
    """

    batch: pa.RecordBatch
    ack: Callable[[], None]
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    reject: Callable[[Sequence[int], Sequence[str]], None] | None = None
    retain: Callable[[], None] | None = None
    #: Where each row of ``batch`` came from, computed when called (a durable stream asks; a
    #: plain one never pays for it): (partition, position) by :meth:`BaseSource.order_key`, or
    #: None for a source without ordered positions (MQTT). Durable window state uses it to skip
    #: records it already holds when they are delivered again after a crash.
    row_positions: Callable[[], list[tuple[str, Any]] | None] | None = None
    #: Whether each partition's positions arrive in increasing order (False: redeliveries come late).
    in_order: bool = True
    #: Whether positions are session tokens ``(token, redelivered)`` valid until acknowledged
    #: (MQTT; see :class:`~sygnify.processing.stream_state.Progress`).
    session_tokens: bool = False


@runtime_checkable
class StreamSource(Protocol):
    """What every plugin in the ``sygnify.sources`` entry-point group provides."""

    def read(self, *, max_records: int = 1000, timeout: float = 1.0) -> SourceBatch | None:
        """Up to ``max_records`` records, waiting at most ``timeout`` s; None if none came."""
        ...

    def close(self) -> None:
        """Stop consuming and release connections (unacknowledged messages are redelivered)."""
        ...

    def __iter__(self) -> Iterator[SourceBatch]:
        """Batches until ``close()`` is called."""
        ...


@dataclass
class RawMessage:
    """One undecoded message as fetched: its bytes, where it came from, and an SDK handle to ack.

    ``error`` marks a message the source already knows is poison (e.g. a stream entry without
    the payload field); it goes to the dead-letter target with that reason.
    """

    payload: bytes
    position: dict[str, Any] = field(default_factory=dict)
    handle: Any = field(default=None, repr=False)
    error: str | None = None


#: Receives the poison messages of a batch (``payload``, ``reason`` and position fields) before
#: the batch is returned; a raise keeps the batch unacknowledged.
DeadLetterTarget = Callable[[list[dict[str, Any]]], None]


def build_batch(
    rows: Sequence[Mapping[str, Any]], schema: pa.Schema | None
) -> tuple[pa.RecordBatch, list[tuple[int, str]]]:
    """Rows as one Arrow batch, plus ``(row index, reason)`` for rows that do not fit ``schema``.

    With a schema the whole batch is converted at once; only when that fails is each row
    tried alone to find the offending ones (the slow path costs only for bad batches).
    Without one, the columns are every field of any row, in the order they first appear
    (a field the first row lacks is kept, null where absent).

    >>> schema = pa.schema([("t", pa.float64())])
    >>> batch, bad = build_batch([{"t": 1.5}, {"t": "hot"}, {"t": 2}], schema)
    >>> batch.to_pydict(), bad[0][0]
    ({'t': [1.5, 2.0]}, 1)
    """
    if schema is None:
        if not rows:
            return pa.RecordBatch.from_pylist([]), []
        try:
            records = pa.array([row if isinstance(row, dict) else dict(row) for row in rows])
            return pa.RecordBatch.from_struct_array(records), []
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(
                f"records have inconsistent types and no schema was given ({exc}); pass schema=",
            ) from exc
    required = [f.name for f in schema if not f.nullable]
    if not required:
        try:
            return pa.RecordBatch.from_pylist(list(rows), schema=schema), []
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            pass
    good: list[Mapping[str, Any]] = []
    bad: list[tuple[int, str]] = []
    for index, row in enumerate(rows):
        reason = _missing_reason(row, required)
        if reason is None:
            try:
                pa.RecordBatch.from_pylist([row], schema=schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
                reason = _mismatch_reason(row, schema, exc)
        if reason is None:
            good.append(row)
        else:
            bad.append((index, reason))
    return pa.RecordBatch.from_pylist(good, schema=schema), bad


def _missing_reason(row: Mapping[str, Any], required: Sequence[str]) -> str | None:
    for name in required:
        if name not in row:
            return f"field {name!r} is missing (the schema does not allow nulls)"
        if row[name] is None:
            return f"field {name!r} is null (the schema does not allow nulls)"
    return None


def _mismatch_reason(row: Mapping[str, Any], schema: pa.Schema, exc: Exception) -> str:
    """Why ``row`` does not fit ``schema``, naming the first field that does not convert."""
    for schema_field in schema:
        value = row.get(schema_field.name)
        try:
            pa.array([value], type=schema_field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as field_exc:
            return (
                f"field {schema_field.name!r} does not match schema ({schema_field.type}): "
                f"{type(field_exc).__name__}: {field_exc}; got {value!r}"
            )
    return f"does not match schema: {type(exc).__name__}: {exc}"


def infer_schema(rows: Sequence[Mapping[str, Any]]) -> pa.Schema:
    """The schema most rows agree on: per field, the type of most of its non-null values.

    Integers and floats together make a float field. :meth:`BaseSource.read` uses it when a
    batch without ``schema=`` mixes types, so only the rows that disagree are dead letters.

    >>> infer_schema([{"t": 1.5}, {"t": 2}, {"t": "hot"}, {"t": 3.0}])
    t: double
    """
    votes: dict[str, Counter[str]] = {}
    samples: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        for name, value in row.items():
            counts = votes.setdefault(name, Counter())
            if value is None:
                continue
            kind = _kind(value)
            counts[kind] += 1
            sample = samples.setdefault((name, kind), [])
            if len(sample) < 16:
                sample.append(value)
    fields = []
    for name, counts in votes.items():
        if not counts:
            fields.append(pa.field(name, pa.null()))
            continue
        if counts["int"] and counts["float"]:
            counts["float"] += counts.pop("int")
        kind = counts.most_common(1)[0][0]
        try:
            arrow_type = pa.float64() if kind == "float" else pa.array(samples[(name, kind)]).type
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrow_type = pa.string()
        fields.append(pa.field(name, arrow_type))
    return pa.schema(fields)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return type(value).__name__


class SourceConfig(BaseModel):
    """Options every stream source takes (see :class:`BaseSource`); each source's config adds its own.

    In a TOML section ``retry`` is a table of :class:`~sygnify.config.RetrySettings` fields.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, populate_by_name=True
    )

    decoder: Decoder = json_decoder
    schema_: pa.Schema | None = Field(None, alias="schema")
    dead_letter: DeadLetterTarget | None = None
    max_unacked_batches: int = Field(4, ge=1)
    retry: RetryPolicy | None = None
    batch_size: int = Field(1000, ge=1)
    poll_timeout: float = Field(1.0, gt=0)

    @field_validator("retry", mode="before")
    @classmethod
    def _retry_from_settings(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return RetryPolicy(**RetrySettings.model_validate(dict(value)).model_dump())
        return value


class BaseSource(abc.ABC):
    """Shared machinery of sygnify's stream sources; subclasses implement ``_fetch``/``_acknowledge``.

    Options every source accepts:

    - ``decoder``: bytes → record mapping (default JSON; see :mod:`sygnify.streams.decoding`
      for Avro and Protobuf hooks). A message the decoder rejects is a poison message.
    - ``schema``: the Arrow schema of the batches; rows that do not fit it are poison messages.
      Without it the schema is inferred per batch.
    - ``dead_letter``: a callable that receives poison messages (each with ``reason``); sources
      also offer a native target (a topic, stream or subject). Without either, poison messages
      are logged and acknowledged with their batch.
    - ``max_unacked_batches``: backpressure; ``read()`` waits (up to its timeout) while this many
      batches are out and not yet acknowledged.
    - ``retry``: backoff between reconnect attempts after a transient failure.
    - ``batch_size`` / ``poll_timeout``: what ``__iter__`` passes to ``read()``.
    """

    #: The name the source is registered under (used in events, metrics and errors).
    name: ClassVar[str] = "source"
    #: The pydantic model of the source's options (its ``__init__`` keyword arguments).
    config_model: ClassVar[type[SourceConfig]] = SourceConfig

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any], *, context: PluginContext) -> Self:
        """Open the source from its config (a ``config_model`` instance, or a mapping of options).

        A subclass that declares no ``config_model`` of its own is built from the options as
        they are (the legacy way, with a ``DeprecationWarning``).
        """
        if cls.config_model is SourceConfig:
            warn_legacy_factory("stream source", cls.name, cls, "constructor called with keyword options")
            options = config_kwargs(config) if isinstance(config, BaseModel) else dict(config)
            return cls(**options)
        return build_from_kwargs(cls, cls.config_model, config, what=f"{cls.name} source {context.name!r}")

    def __init__(
        self,
        *,
        decoder: Decoder = json_decoder,
        schema: pa.Schema | None = None,
        dead_letter: DeadLetterTarget | None = None,
        max_unacked_batches: int = 4,
        retry: RetryPolicy | None = None,
        batch_size: int = 1000,
        poll_timeout: float = 1.0,
    ) -> None:
        if max_unacked_batches < 1 or batch_size < 1:
            raise ConfigurationError("max_unacked_batches and batch_size must be >= 1")
        self.decoder = decoder
        self.schema = schema
        self.dead_letter = dead_letter
        self.max_unacked_batches = max_unacked_batches
        self.retry = retry or RetryPolicy(max_attempts=8, initial_delay=0.2, max_delay=5.0)
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self._closed = threading.Event()
        # close() from another thread or a signal handler while read() waits on the network must
        # not pull the connection from under it: the read finishes, then the connection closes.
        self._io_lock = threading.Lock()
        self._close_pending = False
        # ack() and close() never interleave: an acknowledgement either reaches the connection
        # before it closes (a PUBACK queued before the DISCONNECT) or raises SourceClosedError,
        # never "returns but is lost".
        self._ack_lock = threading.Lock()
        self._unacked = 0
        self._unacked_changed = threading.Condition()

    # -- what a concrete source implements -------------------------------------------------
    @abc.abstractmethod
    def _fetch(self, max_records: int, timeout: float) -> list[RawMessage]:
        """Up to ``max_records`` raw messages, waiting at most ``timeout`` s (may return [])."""

    @abc.abstractmethod
    def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
        """Acknowledge (commit, XACK, ack, PUBACK) every message of a processed batch."""

    def _send_dead_letters(self, letters: list[dict[str, Any]]) -> None:
        """The source's native dead-letter target; the default logs."""
        for letter in letters:
            _logger.warning("%s: poison message dropped: %s", self.name, letter["reason"])

    #: Whether each partition's messages are delivered in :meth:`order_key` order, redeliveries too.
    in_order: ClassVar[bool] = True
    #: Whether :meth:`order_key` gives session tokens ``(key, (token, redelivered))`` instead of
    #: lasting positions: identities a message keeps only until it is acknowledged (MQTT).
    session_tokens: ClassVar[bool] = False

    def order_key(self, position: Mapping[str, Any]) -> tuple[str, Any] | None:
        """A message's (partition, comparable position); None: this source has no such positions."""
        return None

    def lagging_partitions(self) -> list[str] | None:
        """The partitions (named as :meth:`order_key` names them) that still hold messages this
        consumer has not read; None: the source does not know (one partition, or no such notion).

        Event-time windows let the watermark follow the slowest of these only: a partition
        read later than another does not make its events late, and one that is caught up does
        not hold the others back.
        """
        return None

    def _reconnect(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Re-establish the connection after a transient failure (default: nothing)."""

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @property
    def resource(self) -> str:
        """What errors and events name this source by (no credentials)."""
        return self.name

    # -- the public contract --------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def read(self, *, max_records: int = 1000, timeout: float = 1.0) -> SourceBatch | None:
        """Up to ``max_records`` records, waiting at most ``timeout`` s; None if none came."""
        if max_records < 1:
            raise ConfigurationError(f"max_records must be >= 1, got {max_records}")
        if self.closed or not self._wait_for_capacity(timeout):
            return None
        started = time.perf_counter()
        with self._io_lock:
            try:
                messages = self._fetch_with_reconnect(max_records, timeout)
            except SygnifyError:
                if self.closed:
                    messages = []
                else:
                    raise
            finally:
                if self._close_pending:
                    self._close_pending = False
                    self._close()
        if not messages or self.closed:
            return None  # messages fetched while closing are redelivered: none was acknowledged
        batch, dead, row_messages = self._decode(messages)
        if dead:
            self._route_dead_letters(dead)
        acked = threading.Event()
        counted = [True]  # whether this batch counts toward max_unacked_batches

        def uncount() -> None:
            with self._unacked_changed:
                if counted[0]:
                    counted[0] = False
                    self._unacked -= 1
                    self._unacked_changed.notify_all()

        def ack() -> None:
            with self._ack_lock:
                if acked.is_set():
                    return
                if self.closed:
                    raise SourceClosedError(
                        f"{self.resource}: closed before this batch was acknowledged; "
                        "it is delivered again to the next run",
                        resource=self.resource,
                    )
                self._acknowledge(messages)
                acked.set()
            uncount()
            events.emit("source.ack", source=self.name, messages=len(messages))

        with self._unacked_changed:
            self._unacked += 1
        events.emit(
            "source.read",
            source=self.name,
            rows=batch.num_rows,
            dead_letters=len(dead),
            duration_s=time.perf_counter() - started,
        )
        metadata = {"source": self.name, "messages": len(messages), **self._batch_metadata(messages)}

        def reject(rows: Sequence[int], reasons: Sequence[str]) -> None:
            if acked.is_set():
                raise ConfigurationError("reject() after ack(): the rows are already acknowledged")
            letters = [
                self._letter(row_messages[row], reason) for row, reason in zip(rows, reasons, strict=True)
            ]
            if letters:
                self._route_dead_letters(letters)
                dead.extend(letters)

        def row_positions() -> list[tuple[str, Any]] | None:
            keys = [self.order_key(m.position) for m in row_messages]
            return None if None in keys else keys  # type: ignore[return-value]

        return SourceBatch(
            batch=batch,
            ack=ack,
            dead_letters=dead,
            metadata=metadata,
            reject=reject,
            retain=uncount,
            row_positions=row_positions,
            in_order=self.in_order,
            session_tokens=self.session_tokens,
        )

    def __iter__(self) -> Iterator[SourceBatch]:
        """Batches of ``batch_size`` records until :meth:`close` is called."""
        while not self.closed:
            batch = self.read(max_records=self.batch_size, timeout=self.poll_timeout)
            if batch is not None:
                yield batch

    def close(self) -> None:
        """Stop consuming and release connections (unacknowledged messages are redelivered)."""
        with self._ack_lock:  # waits for an acknowledgement in flight, then refuses the next
            if self._closed.is_set():
                return
            self._closed.set()
        with self._unacked_changed:
            self._unacked_changed.notify_all()
        if self._io_lock.acquire(blocking=False):
            try:
                self._close()
            finally:
                self._io_lock.release()
        else:
            self._close_pending = True

    def __enter__(self) -> BaseSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.resource!r})"

    # -- shared machinery -----------------------------------------------------------------
    def _wait_for_capacity(self, timeout: float) -> bool:
        with self._unacked_changed:
            return (
                self._unacked_changed.wait_for(
                    lambda: self._unacked < self.max_unacked_batches or self.closed, timeout=timeout
                )
                and not self.closed
            )

    def _fetch_with_reconnect(self, max_records: int, timeout: float) -> list[RawMessage]:
        attempt = 0
        while True:
            try:
                return self._fetch(max_records, timeout)
            except TransientError as exc:
                attempt += 1
                if self.closed:
                    return []
                if attempt >= self.retry.max_attempts:
                    raise
                delay = self.retry.delay_for(attempt, exc)
                events.emit(
                    "source.reconnect",
                    source=self.name,
                    attempt=attempt,
                    error=type(exc).__name__,
                    delay_s=delay,
                )
                _logger.warning("%s: %s; reconnecting in %.2f s", self.resource, exc, delay)
                self.retry.sleep(delay)
                try:
                    self._reconnect()
                except TransientError:
                    continue

    def _decode(
        self, messages: Sequence[RawMessage]
    ) -> tuple[pa.RecordBatch, list[dict[str, Any]], list[RawMessage]]:
        """The batch, its dead letters, and the message behind each row of the batch."""
        if self.decoder is json_decoder:
            decoded = self._decode_json_in_bulk(messages)
            if decoded is not None:
                return decoded
        rows: list[Mapping[str, Any]] = []
        row_messages: list[RawMessage] = []
        dead: list[dict[str, Any]] = []
        for message in messages:
            if message.error is not None:
                dead.append(self._letter(message, message.error))
                continue
            try:
                record = self.decoder(message.payload)
                if not isinstance(record, Mapping):
                    raise DataQualityError(f"decoded to {type(record).__name__}, not a record (mapping)")
            except Exception as exc:  # any decoder failure makes a poison message, never a crash
                dead.append(self._letter(message, f"{type(exc).__name__}: {exc}"))
                continue
            rows.append(record)
            row_messages.append(message)
        try:
            batch, bad = build_batch(rows, self.schema)
        except SchemaError:
            # mixed types and no schema=: keep the rows most agree with, dead-letter the others
            # (failing the whole batch would re-read and fail it again after every restart)
            batch, bad = build_batch(rows, infer_schema(rows))
        dead.extend(self._letter(row_messages[index], reason) for index, reason in bad)
        rejected = {index for index, _ in bad}
        kept = [m for index, m in enumerate(row_messages) if index not in rejected]
        return batch, dead, kept

    def _decode_json_in_bulk(
        self, messages: Sequence[RawMessage]
    ) -> tuple[pa.RecordBatch, list[dict[str, Any]], list[RawMessage]] | None:
        """The default decoder's batch by one Arrow JSON read; None when it must go record by record.

        Only a batch whose every record decodes and fits is read in bulk; a batch holding a
        malformed or mistyped record goes the per-message way, which finds it and its reason.
        """
        dead = [self._letter(m, m.error) for m in messages if m.error is not None]
        kept = [m for m in messages if m.error is None] if dead else list(messages)
        if not kept:
            return pa.RecordBatch.from_pylist([], schema=self.schema), dead, kept
        batch = decode_json_batch([m.payload for m in kept], self.schema)
        return None if batch is None else (batch, dead, kept)

    @staticmethod
    def _letter(message: RawMessage, reason: str) -> dict[str, Any]:
        return {"payload": message.payload, "reason": reason, **message.position}

    def _route_dead_letters(self, dead: list[dict[str, Any]]) -> None:
        try:
            if self.dead_letter is not None:
                self.dead_letter(dead)
            else:
                self._send_dead_letters(dead)
        except SygnifyError:
            raise
        except Exception as exc:
            raise DataQualityError(
                f"{self.resource}: could not send {len(dead)} poison message(s) to the dead-letter "
                f"target ({type(exc).__name__}: {exc}); the batch stays unacknowledged",
                resource=self.resource,
            ) from exc
        events.emit("source.dead_letter", source=self.name, messages=len(dead))

    def _batch_metadata(self, messages: Sequence[RawMessage]) -> dict[str, Any]:
        """Source-specific positions of a batch (first/last offsets...)."""
        return {"positions": [m.position for m in messages]}
