"""MongoDB change streams as a resumable stream of Arrow batches, with a resume-token checkpoint.

Delivery is at-least-once: the resume token of a batch is saved when the consumer asks for
the next batch (or calls :meth:`ChangeStream.commit`), so after a crash the stream resumes
after the last batch that was fully handled and may repeat the one in flight::

    >>> store = MemoryResumeTokenStore()
    >>> store.save({"_data": "8263"})
    >>> store.load()
    {'_data': '8263'}
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa
from bson import json_util
from typing_extensions import Self

from sygnify.connectors.mongodb.schema import to_json
from sygnify.errors import ConfigurationError, SygnifyError, TransientError
from sygnify.io.files import atomic_write

__all__ = [
    "CHANGE_SCHEMA",
    "ChangeStream",
    "FileResumeTokenStore",
    "MemoryResumeTokenStore",
    "ResumeTokenStore",
    "events_to_batch",
]

#: The columns of every change batch; documents are relaxed Extended JSON text. The server's
#: ``clusterTime`` is a BSON Timestamp, (seconds, increment): ``cluster_time`` holds the
#: seconds and ``cluster_time_increment`` the operation's ordinal within that second, so
#: sorting by both orders events as the server applied them.
CHANGE_SCHEMA = pa.schema(
    [
        pa.field("operation_type", pa.string()),
        pa.field("database", pa.string()),
        pa.field("collection", pa.string()),
        pa.field("document_key", pa.string()),
        pa.field("cluster_time", pa.timestamp("s", tz="UTC")),
        pa.field("cluster_time_increment", pa.int64()),
        pa.field("full_document", pa.string()),
        pa.field("update_description", pa.string()),
        pa.field("resume_token", pa.string()),
    ]
)


@runtime_checkable
class ResumeTokenStore(Protocol):
    """Where a change stream keeps its resume token between runs."""

    def load(self) -> Mapping[str, Any] | None:
        """The saved token, or None to start from now."""
        ...

    def save(self, token: Mapping[str, Any]) -> None:
        """Durably replace the saved token."""
        ...


class MemoryResumeTokenStore:
    """A resume token kept in memory (one process; for tests and short jobs)."""

    def __init__(self, token: Mapping[str, Any] | None = None) -> None:
        self.token = dict(token) if token is not None else None

    def load(self) -> Mapping[str, Any] | None:
        return self.token

    def save(self, token: Mapping[str, Any]) -> None:
        self.token = dict(token)


class FileResumeTokenStore:
    """A resume token in a JSON file, replaced atomically (:func:`sygnify.io.files.atomic_write`).

    The file is readable by its owner only (0600): a token can reveal what the stream saw.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> Mapping[str, Any] | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            token = json_util.loads(text)
        except ValueError as exc:
            raise ConfigurationError(
                f"change-stream checkpoint {self.path} is not valid JSON; delete it to start from now",
                resource=str(self.path),
            ) from exc
        if not isinstance(token, Mapping):
            raise ConfigurationError(f"checkpoint {self.path} holds no resume token", resource=str(self.path))
        return token

    def save(self, token: Mapping[str, Any]) -> None:
        payload = json_util.dumps(token, json_options=json_util.CANONICAL_JSON_OPTIONS).encode()
        atomic_write(self.path, lambda out: out.write(payload), mode=0o600)


def _text(value: Any) -> str | None:
    return None if value is None else to_json(value)


def events_to_batch(events: list[Mapping[str, Any]]) -> pa.RecordBatch:
    """Change events as one batch of :data:`CHANGE_SCHEMA`.

    >>> from bson import Timestamp
    >>> batch = events_to_batch([{"operationType": "insert", "clusterTime": Timestamp(1767225600, 7)}])
    >>> row = batch.to_pylist()[0]
    >>> str(row["cluster_time"]), row["cluster_time_increment"]
    ('2026-01-01 00:00:00+00:00', 7)
    """
    columns: dict[str, list[Any]] = {name: [] for name in CHANGE_SCHEMA.names}
    for event in events:
        namespace = event.get("ns") or {}
        key = event.get("documentKey") or {}
        cluster_time = event.get("clusterTime")
        token = event.get("_id") or {}
        columns["operation_type"].append(event.get("operationType"))
        columns["database"].append(namespace.get("db"))
        columns["collection"].append(namespace.get("coll"))
        columns["document_key"].append(_text(key.get("_id", key or None)))
        columns["cluster_time"].append(cluster_time.as_datetime() if cluster_time is not None else None)
        columns["cluster_time_increment"].append(cluster_time.inc if cluster_time is not None else None)
        columns["full_document"].append(_text(event.get("fullDocument")))
        columns["update_description"].append(_text(event.get("updateDescription")))
        columns["resume_token"].append(_text(token.get("_data", token)))
    return pa.RecordBatch.from_pydict(columns, schema=CHANGE_SCHEMA)


class ChangeStream:
    """An iterator of change batches that resumes after transient failures and saves its token.

    Made by :meth:`sygnify.connectors.mongodb.connector.MongoDBConnector.watch`; ``open_cursor(token)``
    opens a driver change stream resuming after ``token`` (through the connection's retry
    policy), ``translate`` maps driver errors to sygnify errors.
    """

    def __init__(
        self,
        open_cursor: Callable[[Mapping[str, Any] | None], Any],
        translate: Callable[[Exception], SygnifyError],
        *,
        checkpoint: ResumeTokenStore | None,
        batch_size: int,
        stop_when_idle: bool,
        max_resumes: int,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        self._open_cursor = open_cursor
        self._translate = translate
        self.checkpoint = checkpoint
        self.batch_size = batch_size
        self.stop_when_idle = stop_when_idle
        self.max_resumes = max_resumes
        self.resumes = 0
        self._token: Mapping[str, Any] | None = checkpoint.load() if checkpoint is not None else None
        self._pending: Mapping[str, Any] | None = None
        self._cursor: Any = self._open_cursor(self._token)
        self._closed = False

    @property
    def resume_token(self) -> Mapping[str, Any] | None:
        """The token after the last delivered batch (committed or not)."""
        return self._pending if self._pending is not None else self._token

    def commit(self) -> None:
        """Save the token of the last delivered batch now (it is also saved on the next batch)."""
        if self._pending is None:
            return
        self._token, self._pending = self._pending, None
        if self.checkpoint is not None:
            self.checkpoint.save(self._token)

    def _next_event(self, read_so_far: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
        while True:
            try:
                event: Mapping[str, Any] | None = self._cursor.try_next()
                return event
            except Exception as exc:
                error = exc if isinstance(exc, SygnifyError) else self._translate(exc)
                if not isinstance(error, TransientError) or self.resumes >= self.max_resumes:
                    raise error from exc
                self.resumes += 1
                # Resume after the last event read, whether or not it was delivered yet.
                after = read_so_far[-1]["_id"] if read_so_far else self.resume_token
                self._close_cursor()
                self._cursor = self._open_cursor(after)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while not self._closed:
            events: list[Mapping[str, Any]] = []
            while len(events) < self.batch_size:
                event = self._next_event(events)
                if event is None:
                    break
                events.append(event)
            if not events:
                if self.stop_when_idle:
                    return
                continue
            self._pending = events[-1]["_id"]
            yield events_to_batch(events)
            self.commit()

    def _close_cursor(self) -> None:
        # Closing a broken cursor must not hide the real error.
        with contextlib.suppress(Exception):
            self._cursor.close()

    def close(self) -> None:
        """Stop watching (the token of an uncommitted batch is not saved)."""
        if not self._closed:
            self._closed = True
            self._close_cursor()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
