"""Alert rules evaluated on observations and declared events, sent to sinks with de-duplication.

An *observation* is a mapping of values (a sensor reading, an anomaly score, a drift report).
Each :class:`Rule` looks at it and may fire an :class:`Alert`; the :class:`AlertManager`
suppresses repeats of the same alert (rule + labels) within ``cooldown`` seconds of its clock,
and sends the rest to every sink::

    >>> now = [0.0]
    >>> fired: list[Alert] = []
    >>> manager = AlertManager(
    ...     [Threshold("overheat", field="temperature", above=80, labels=("sensor",))],
    ...     sinks=[CallbackAlertSink(fired.append)], cooldown=60, clock=lambda: now[0])
    >>> [len(manager.observe({"sensor": "t1", "temperature": t})) for t in (75, 85, 90)]
    [0, 1, 0]
    >>> now[0] = 61.0; len(manager.observe({"sensor": "t1", "temperature": 91}))
    1
    >>> fired[0].message
    'temperature=85 above 80 (sensor=t1)'

:meth:`AlertManager.observe_table` evaluates the rules on a whole table at once (a pyarrow
Table or RecordBatch, a Polars or pandas DataFrame, or a list of dicts), vectorised over its
columns, and sends exactly the alerts that feeding its rows one by one to
:meth:`~AlertManager.observe` would, in the same order, with the same cool-down; ``time=``
names the column holding each row's time (the clock of that row), else every row is
observed at one ``clock()`` reading::

    >>> import pyarrow as pa
    >>> readings = pa.table({"sensor": ["t1", "t1", "t2", "t1"], "temperature": [85, 90, 81, 95],
    ...                      "t": [125.0, 150.0, 160.0, 190.0]})
    >>> [(a.labels["sensor"], a.value, a.at) for a in manager.observe_table(readings, time="t")]
    [('t1', 85.0, 125.0), ('t2', 81.0, 160.0), ('t1', 95.0, 190.0)]
"""

from __future__ import annotations

import abc
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from sygnify import redaction
from sygnify.errors import ConfigurationError, SchemaError
from sygnify.events import EventName, subscribe

__all__ = [
    "Alert",
    "AlertManager",
    "AnomalyScore",
    "BreakerOpen",
    "CallbackAlertSink",
    "DriftDetected",
    "LogAlertSink",
    "RateOfChange",
    "Rule",
    "RuleHits",
    "AlertSink",
    "Threshold",
    "WebhookAlertSink",
]

_logger = logging.getLogger(__name__)
Severity = Literal["info", "warning", "critical"]
#: What de-duplication compares: the rule's name and its sorted labels.
AlertKey: TypeAlias = tuple[str, tuple[tuple[str, str], ...]]
_Floats: TypeAlias = "np.ndarray[Any, np.dtype[np.float64]]"
_Ints: TypeAlias = "np.ndarray[Any, np.dtype[np.int64]]"


@dataclass(frozen=True)
class Alert:
    """One fired alert: which rule, what, how bad, about what (``labels``), when (clock time)."""

    rule: str
    message: str
    severity: Severity
    value: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    at: float = 0.0

    @property
    def key(self) -> AlertKey:
        """What de-duplication compares: the rule and the labels."""
        return self.rule, tuple(sorted(self.labels.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "message": self.message,
            "severity": self.severity,
            "value": self.value,
            "labels": self.labels,
            "at": self.at,
        }


@dataclass(frozen=True)
class RuleHits:
    """Where one rule fires in a table: what :meth:`Rule.check_table` returns.

    ``rows`` are the positions of the rows it fires on (ascending); ``groups[i]`` indexes
    ``keys``, the de-duplication key (:attr:`Alert.key`) of hit ``i``; ``alert(i)`` builds the
    alert of hit ``i``, called only for the hits the cool-down lets through, so a rule firing
    on most rows of a big table builds few Python objects.
    """

    rows: _Ints
    groups: _Ints
    keys: Sequence[AlertKey]
    alert: Callable[[int], Alert]

    @classmethod
    def none(cls) -> RuleHits:
        """No hits."""
        empty = np.zeros(0, dtype=np.int64)
        return cls(empty, empty, (), _no_alert)

    @classmethod
    def of(cls, rows: Sequence[int], alerts: Sequence[Alert]) -> RuleHits:
        """Hits from alerts already built, one per row in ``rows``."""
        keys: dict[AlertKey, int] = {}
        groups = [keys.setdefault(alert.key, len(keys)) for alert in alerts]
        return cls(
            np.asarray(rows, dtype=np.int64),
            np.asarray(groups, dtype=np.int64),
            list(keys),
            alerts.__getitem__,
        )


def _no_alert(index: int) -> Alert:
    raise IndexError(index)


class Rule(abc.ABC):
    """Looks at an observation and returns an alert, or None.

    A rule implements :meth:`check` (one observation); :meth:`check_table` evaluates it on
    every row of a table, by default with :meth:`check` row by row; the built-in rules on
    measured fields override it with column arithmetic, firing identically.
    """

    def __init__(self, name: str, *, severity: Severity = "warning", labels: Sequence[str] = ()) -> None:
        self.name, self.severity, self.label_fields = name, severity, tuple(labels)

    @abc.abstractmethod
    def check(self, observation: Mapping[str, Any], now: float) -> Alert | None: ...

    def check_schema(self, schema: pa.Schema) -> None:
        """Raise :class:`~sygnify.errors.SchemaError` if a table of ``schema`` lacks what the rule reads.

        The default accepts every table (:meth:`check` sees each row as a dict).
        """
        return None

    def check_table(self, table: pa.Table, times: _Floats) -> RuleHits:
        """Where the rule fires in ``table``, row ``i`` observed at ``times[i]``.

        Row ``i`` fires exactly when ``check(row_i, times[i])`` would, rows taken in order
        (a stateful rule's state moves as it would). The default calls :meth:`check` per row.

        >>> import numpy as np, pyarrow as pa
        >>> rule = Threshold("hot", field="t", above=50.0)
        >>> hits = rule.check_table(pa.table({"t": [40.0, 60.0, 70.0]}), np.zeros(3))
        >>> hits.rows.tolist(), hits.alert(1).message
        ([1, 2], 't=70 above 50')
        """
        self.check_schema(table.schema)
        rows, alerts = [], []
        for index, row in enumerate(table.to_pylist()):
            alert = self.check(row, float(times[index]))
            if alert is not None:
                rows.append(index)
                alerts.append(alert)
        return RuleHits.of(rows, alerts)

    def _labels(self, observation: Mapping[str, Any]) -> dict[str, str]:
        return {key: str(observation[key]) for key in self.label_fields if key in observation}

    def _alert(self, observation: Mapping[str, Any], message: str, value: float | None, now: float) -> Alert:
        labels = self._labels(observation)
        if labels:
            message += " (" + ", ".join(f"{k}={v}" for k, v in labels.items()) + ")"
        return Alert(self.name, message, self.severity, value, labels, now)

    def _table_labels(self, table: pa.Table, rows: _Ints) -> tuple[_Ints, list[dict[str, str]]]:
        """Label groups of ``rows``: a group index per row, and each group's labels.

        Labels are ``str()`` of the row's values, as :meth:`_labels` makes them from a dict
        (``None`` for a null); a label column the table lacks is left out, as a missing key is.
        """
        present = [name for name in self.label_fields if name in table.column_names]
        codes = np.zeros(len(rows), dtype=np.int64)
        columns: list[tuple[str, _Ints, list[str]]] = []
        for name in present:
            encoded = pc.dictionary_encode(
                table.column(name).take(rows).combine_chunks(), null_encoding="encode"
            )
            texts = [str(value) for value in encoded.dictionary.to_pylist()]
            # distinct values may print alike (NaNs): the printed label is what tells alerts apart
            first: dict[str, int] = {}
            dense = np.asarray([first.setdefault(text, len(first)) for text in texts], dtype=np.int64)
            index = dense[encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
            columns.append((name, index, list(first)))
            codes = codes * len(first) + index
            _, codes = np.unique(codes, return_inverse=True)
            codes = codes.astype(np.int64).reshape(-1)
        if not len(rows):
            return codes, []
        _, firsts = np.unique(codes, return_index=True)
        labels = [{name: texts[int(index[pos])] for name, index, texts in columns} for pos in firsts]
        return codes, labels

    def _table_hits(
        self,
        table: pa.Table,
        rows: _Ints,
        times: _Floats,
        describe: Callable[[int], tuple[str, float | None]],
        groups: tuple[_Ints, list[dict[str, str]]] | None = None,
    ) -> RuleHits:
        """Hits on ``rows``; ``describe(row)`` gives the message and value of one (built lazily)."""
        codes, labels = groups if groups is not None else self._table_labels(table, rows)
        keys = [(self.name, tuple(sorted(group.items()))) for group in labels]

        def alert(index: int) -> Alert:
            row = int(rows[index])
            message, value = describe(row)
            return self._alert(labels[int(codes[index])], message, value, float(times[row]))

        return RuleHits(rows, codes, keys, alert)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _number(observation: Mapping[str, Any], key: str) -> float | None:
    value = observation.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _require_number(schema: pa.Schema, rule: Rule, name: str) -> None:
    """A table a rule on ``name`` reads must hold it as integers or floats."""
    if name not in schema.names:
        raise SchemaError(
            f"alert rule {rule.name!r} reads column {name!r}, which the table lacks "
            f"(columns: {', '.join(schema.names) or 'none'}); add it or observe other rules on this table"
        )
    kind = schema.field(name).type
    if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_null(kind)):
        raise SchemaError(
            f"alert rule {rule.name!r} compares column {name!r} with numbers, but it holds {kind}; "
            "cast it to a numeric type first"
        )


def _values(table: pa.Table, name: str) -> tuple[_Floats, np.ndarray[Any, np.dtype[np.bool_]]]:
    """The column as float64 (NaN where null) and where it is not null (a NaN is a value)."""
    column = table.column(name)
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    values = pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64), np.asarray(valid, dtype=np.bool_)


class Threshold(Rule):
    """Fires when ``field`` is above ``above`` or below ``below``."""

    def __init__(
        self, name: str, *, field: str, above: float | None = None, below: float | None = None, **kw: Any
    ) -> None:
        super().__init__(name, **kw)
        if above is None and below is None:
            raise ConfigurationError(f"Threshold rule {name!r} needs above= or below=")
        self.field, self.above, self.below = field, above, below

    def check(self, observation: Mapping[str, Any], now: float) -> Alert | None:
        value = _number(observation, self.field)
        if value is None:
            return None
        if self.above is not None and value > self.above:
            return self._alert(observation, f"{self.field}={value:g} above {self.above:g}", value, now)
        if self.below is not None and value < self.below:
            return self._alert(observation, f"{self.field}={value:g} below {self.below:g}", value, now)
        return None

    def check_schema(self, schema: pa.Schema) -> None:
        _require_number(schema, self, self.field)

    def check_table(self, table: pa.Table, times: _Floats) -> RuleHits:
        self.check_schema(table.schema)
        values, _ = _values(table, self.field)
        above = values > self.above if self.above is not None else np.zeros(len(values), dtype=np.bool_)
        below = (
            ~above & (values < self.below)
            if self.below is not None
            else np.zeros(len(values), dtype=np.bool_)
        )

        def describe(row: int) -> tuple[str, float | None]:
            value = float(values[row])
            word, limit = ("above", self.above) if above[row] else ("below", self.below)
            return f"{self.field}={value:g} {word} {limit:g}", value

        return self._table_hits(table, np.flatnonzero(above | below), times, describe)


class RateOfChange(Rule):
    """Fires when ``field`` changes faster than ``max_per_second`` (per label set; O(1) state each).

    >>> rule = RateOfChange("pressure-jump", field="pressure", max_per_second=5.0)
    >>> rule.check({"pressure": 100.0}, now=0.0), rule.check({"pressure": 101.0}, now=1.0)
    (None, None)
    >>> rule.check({"pressure": 120.0}, now=2.0).value
    19.0
    """

    def __init__(self, name: str, *, field: str, max_per_second: float, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.field, self.max_per_second = field, max_per_second
        self._last: dict[tuple[tuple[str, str], ...], tuple[float, float]] = {}

    def check(self, observation: Mapping[str, Any], now: float) -> Alert | None:
        value = _number(observation, self.field)
        if value is None:
            return None
        key = tuple(sorted(self._labels(observation).items()))
        previous = self._last.get(key)
        self._last[key] = (now, value)
        if previous is None or now <= previous[0]:
            return None
        rate = (value - previous[1]) / (now - previous[0])
        if abs(rate) > self.max_per_second:
            return self._alert(
                observation,
                f"{self.field} changes at {rate:g}/s (limit {self.max_per_second:g}/s)",
                rate,
                now,
            )
        return None

    def check_schema(self, schema: pa.Schema) -> None:
        _require_number(schema, self, self.field)

    def check_table(self, table: pa.Table, times: _Floats) -> RuleHits:
        self.check_schema(table.schema)
        values, valid = _values(table, self.field)
        rows = np.flatnonzero(valid)  # a null is skipped and not remembered, as a missing value is
        codes, labels = self._table_labels(table, rows)
        keys = [tuple(sorted(group.items())) for group in labels]
        # each label set's readings in row order; the first one's predecessor is the remembered one
        order = np.argsort(codes, kind="stable")
        group, now, value = codes[order], times[rows][order], values[rows][order]
        first = np.ones(len(order), dtype=np.bool_)
        first[1:] = group[1:] != group[:-1]
        last = np.ones(len(order), dtype=np.bool_)
        last[:-1] = first[1:]
        before_t, before_v = np.roll(now, 1), np.roll(value, 1)
        known = ~first
        for pos in np.flatnonzero(first):
            previous = self._last.get(keys[group[pos]])
            if previous is not None:
                before_t[pos], before_v[pos], known[pos] = previous[0], previous[1], True
        for pos in np.flatnonzero(last):
            self._last[keys[group[pos]]] = (float(now[pos]), float(value[pos]))
        later = known & (now > before_t)
        with np.errstate(invalid="ignore"):
            rate = np.where(later, (value - before_v) / np.where(later, now - before_t, 1.0), 0.0)
            fires = later & (np.abs(rate) > self.max_per_second)
        hits = np.flatnonzero(fires)
        hits = hits[np.argsort(order[hits], kind="stable")]  # back to row order
        rate_of = dict(zip(rows[order[hits]].tolist(), rate[hits].tolist(), strict=True))

        def describe(row: int) -> tuple[str, float | None]:
            r = rate_of[row]
            return f"{self.field} changes at {r:g}/s (limit {self.max_per_second:g}/s)", r

        return self._table_hits(table, rows[order[hits]], times, describe, (group[hits], labels))


class DriftDetected(Rule):
    """Fires when the :class:`~sygnify.monitoring.drift.DriftReport` under ``field`` shows drift."""

    def __init__(self, name: str = "drift", *, field: str = "drift", **kw: Any) -> None:
        super().__init__(name, **kw)
        self.field = field

    def check(self, observation: Mapping[str, Any], now: float) -> Alert | None:
        report = observation.get(self.field)
        drifted = getattr(report, "drifted", None)
        if not drifted:
            return None
        return self._alert(observation, f"drift in {', '.join(drifted)}", float(len(drifted)), now)

    def check_table(self, table: pa.Table, times: _Floats) -> RuleHits:
        # drift reports come one at a time (observe); a table without them holds no drift
        return super().check_table(table, times) if self.field in table.column_names else RuleHits.none()


class AnomalyScore(Rule):
    """Fires when an anomaly score under ``field`` reaches ``threshold``."""

    def __init__(self, name: str, *, field: str = "anomaly_score", threshold: float, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.field, self.threshold = field, threshold

    def check(self, observation: Mapping[str, Any], now: float) -> Alert | None:
        score = _number(observation, self.field)
        if score is None or score < self.threshold:
            return None
        return self._alert(observation, f"anomaly score {score:.3g} >= {self.threshold:g}", score, now)

    def check_schema(self, schema: pa.Schema) -> None:
        _require_number(schema, self, self.field)

    def check_table(self, table: pa.Table, times: _Floats) -> RuleHits:
        self.check_schema(table.schema)
        scores, _ = _values(table, self.field)
        fires = scores >= self.threshold

        def describe(row: int) -> tuple[str, float | None]:
            score = float(scores[row])
            return f"anomaly score {score:.3g} >= {self.threshold:g}", score

        return self._table_hits(table, np.flatnonzero(fires), times, describe)


class BreakerOpen(Rule):
    """Fires on a ``breaker.state`` event (:mod:`sygnify.events`) whose new state is ``open``."""

    def __init__(self, name: str = "breaker-open", *, severity: Severity = "critical", **kw: Any) -> None:
        super().__init__(name, severity=severity, labels=("breaker",), **kw)

    def check(self, observation: Mapping[str, Any], now: float) -> Alert | None:
        if observation.get("event") != "breaker.state" or observation.get("new") != "open":
            return None
        return self._alert(observation, "circuit breaker opened", None, now)

    def check_table(self, table: pa.Table, times: _Floats) -> RuleHits:
        # events come one at a time (attach_hooks); a table without an event column holds none
        return super().check_table(table, times) if "event" in table.column_names else RuleHits.none()


# -- sinks ------------------------------------------------------------------------------------
class AlertSink(abc.ABC):
    """Where alerts go."""

    @abc.abstractmethod
    def send(self, alert: Alert) -> None: ...


class LogAlertSink(AlertSink):
    """Log each alert (warning for info/warning, error for critical)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or _logger

    def send(self, alert: Alert) -> None:
        level = logging.ERROR if alert.severity == "critical" else logging.WARNING
        self.logger.log(level, "alert %s [%s]: %s", alert.rule, alert.severity, alert.message)


class CallbackAlertSink(AlertSink):
    """Call a function with each alert."""

    def __init__(self, callback: Callable[[Alert], None]) -> None:
        self.callback = callback

    def send(self, alert: Alert) -> None:
        self.callback(alert)


class WebhookAlertSink(AlertSink):
    """POST each alert as JSON to ``url`` (httpx; TLS verified; the URL is never logged in full).

    A webhook URL is a credential (its path, user info or query holds the token), so the
    repr shows only its origin, and the URL is held by :mod:`sygnify.redaction`: logs
    (httpx's request lines, a failed send's traceback) show it as that origin too.
    ``client`` may be an ``httpx.Client`` (e.g. with a ``MockTransport`` in tests).

    >>> WebhookAlertSink("https://bot:pw@alerts.example/hooks/T9/B9/AlertSinkDoc?token=abc")
    WebhookAlertSink(https://alerts.example/...)
    """

    def __init__(
        self, url: str, *, timeout: float = 5.0, headers: Mapping[str, str] | None = None, client: Any = None
    ) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise ConfigurationError("WebhookAlertSink needs httpx: pip install httpx") from exc
        redaction.hold_url_secrets(url, whole=True)
        self.url = url
        self._client = client or httpx.Client(timeout=timeout, headers=dict(headers or {}))

    def __repr__(self) -> str:
        return f"WebhookAlertSink({redaction.redact_url(self.url, path=False)})"

    def send(self, alert: Alert) -> None:
        response = self._client.post(
            self.url, content=json.dumps(alert.to_dict()), headers={"content-type": "application/json"}
        )
        response.raise_for_status()


class AlertManager:
    """Evaluates rules, de-duplicates within ``cooldown`` seconds and fans out to sinks.

    A failing sink is logged and does not stop the others. :meth:`attach_hooks` evaluates the
    rules on sygnify's declared events too (``event`` is added to the observation), which is
    how :class:`BreakerOpen` sees breakers open.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        sinks: Sequence[AlertSink] = (),
        cooldown: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cooldown < 0:
            raise ConfigurationError(f"cooldown must be >= 0, got {cooldown}")
        self.rules, self.sinks = list(rules), list(sinks) or [LogAlertSink()]
        self.cooldown, self._clock = cooldown, clock
        self._last_sent: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.suppressed = 0
        self.sink_errors = 0
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None

    def observe(self, observation: Mapping[str, Any]) -> list[Alert]:
        """Evaluate every rule; returns the alerts sent (those not suppressed by the cool-down)."""
        now = self._clock()
        sent = []
        with self._lock:
            for rule in self.rules:
                alert = rule.check(observation, now)
                if alert is None:
                    continue
                last = self._last_sent.get(alert.key)
                if last is not None and now - last < self.cooldown:
                    self.suppressed += 1
                    continue
                self._last_sent[alert.key] = now
                sent.append(alert)
        self._send(sent)
        return sent

    def observe_table(self, data: Any, *, time: str | None = None) -> list[Alert]:
        """Evaluate every rule on every row of a table; returns the alerts sent, in order.

        ``data`` is a pyarrow Table or RecordBatch, a Polars or pandas DataFrame, or a list of
        dicts. The rules are evaluated on whole columns, and the alerts sent are exactly those
        that :meth:`observe` on each row in turn would send (row by row, rule by rule, the same
        cool-down and the same :attr:`suppressed` count), with the clock reading, for row
        ``i``, the value of column ``time`` in row ``i`` (seconds, or a timestamp as seconds
        since the epoch); without ``time`` every row is observed at one ``clock()`` reading.

        A rule on a measured field (:class:`Threshold`, :class:`RateOfChange`,
        :class:`AnomalyScore`) needs its column, holding numbers: a table without it, or
        with text there, raises :class:`~sygnify.errors.SchemaError` before any rule runs
        (:meth:`observe` skips such an observation instead; a table has one schema for all its
        rows, so a missing column is a mistake). Rules on events and drift reports fire on
        tables holding such columns only.

        >>> import pyarrow as pa
        >>> fired: list[Alert] = []
        >>> manager = AlertManager([Threshold("hot", field="t", above=50, labels=("sensor",))],
        ...                        sinks=[CallbackAlertSink(fired.append)], cooldown=10)
        >>> table = pa.table({"sensor": ["a", "a", "b", "a"], "t": [60, 70, 55, 80], "at": [0, 5, 6, 12]})
        >>> [(a.labels["sensor"], a.value, a.at) for a in manager.observe_table(table, time="at")]
        [('a', 60.0, 0.0), ('b', 55.0, 6.0), ('a', 80.0, 12.0)]
        >>> manager.suppressed
        1
        >>> manager.observe_table(table.drop_columns(["t"]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        sygnify.errors.SchemaError: alert rule 'hot' reads column 't', which the table lacks (columns: ...
        """
        table = _as_table(data)
        if table is None:
            return []
        for rule in self.rules:
            rule.check_schema(table.schema)
        times = (
            _event_times(table, time)
            if time is not None
            else np.full(table.num_rows, float(self._clock()), dtype=np.float64)
        )
        with self._lock:
            sent = self._deduplicate(table, times)
        self._send(sent)
        return sent

    def _deduplicate(self, table: pa.Table, times: _Floats) -> list[Alert]:
        """The alerts :meth:`observe` row by row would send: the cool-down per key, in hit order."""
        hits = [rule.check_table(table, times) for rule in self.rules]
        keys: dict[AlertKey, int] = {}
        rows, rules, indices, groups = [], [], [], []
        for number, hit in enumerate(hits):
            global_ids = np.asarray([keys.setdefault(key, len(keys)) for key in hit.keys], dtype=np.int64)
            rows.append(hit.rows)
            rules.append(np.full(len(hit.rows), number, dtype=np.int64))
            indices.append(np.arange(len(hit.rows), dtype=np.int64))
            groups.append(global_ids[hit.groups] if len(hit.rows) else hit.groups)
        row, rule, index, group = (np.concatenate(parts) for parts in (rows, rules, indices, groups))
        if not len(row):
            return []
        order = np.lexsort((rule, row))  # the order observe() meets them: row by row, rule by rule
        order = order[np.argsort(group[order], kind="stable")]  # then per key, keeping that order
        bounds = np.flatnonzero(np.diff(group[order])) + 1
        picked: list[_Ints] = []
        key_list = list(keys)
        for members in np.split(order, bounds):
            key = key_list[int(group[members[0]])]
            chosen, last = _cooldown(times[row[members]], self._last_sent.get(key), self.cooldown)
            if len(chosen):
                self._last_sent[key] = last
                picked.append(members[chosen])
        sent = np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
        # sort by (row, rule): positions in the concatenation are rule-major, so re-sort explicitly
        sent = sent[np.lexsort((rule[sent], row[sent]))]
        self.suppressed += len(row) - len(sent)
        return [hits[int(rule[i])].alert(int(index[i])) for i in sent]

    def _send(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            for sink in self.sinks:
                try:
                    sink.send(alert)
                except Exception as exc:  # one broken sink must not silence the others
                    self.sink_errors += 1
                    # an SDK's message may name the sink's URL with its token: masked here too,
                    # whether or not the redacting record factory is installed
                    _logger.error(
                        "alert sink %r failed for %s: %s",
                        sink,
                        alert.rule,
                        redaction.redact(f"{type(exc).__name__}: {exc}"),
                        exc_info=exc,
                    )

    def attach_hooks(self, events: Iterable[EventName] | None = None) -> AlertManager:
        """Also evaluate the rules on declared events (all, or those in ``events``); returns self.

        An undeclared name in ``events`` raises :class:`~sygnify.errors.ConfigurationError`.
        """
        if self._unsubscribe is None:

            def listener(event: str, fields: Mapping[str, Any]) -> None:
                self.observe({"event": event, **fields})

            self._unsubscribe = subscribe(listener, events=events)
        return self

    def detach_hooks(self) -> None:
        """Stop evaluating the rules on events."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


def _cooldown(times: _Floats, last: float | None, cooldown: float) -> tuple[_Ints, float]:
    """Which of one key's hits (times in observation order) the cool-down lets through.

    A hit is sent when nothing was sent yet or ``now - last >= cooldown``, exactly as
    :meth:`AlertManager.observe` decides; returns their positions and the last one's time.
    With times in order each sent hit is found by a binary search, so the cost follows the
    alerts sent, not the rows that fire.
    """
    chosen: list[int] = []
    count = len(times)
    if count > 1 and not bool(np.all(times[1:] >= times[:-1])):
        for position in range(count):  # time going back: the plain rule, hit by hit
            now = float(times[position])
            if last is None or now - last >= cooldown:
                chosen.append(position)
                last = now
        return np.asarray(chosen, dtype=np.int64), last if last is not None else 0.0
    start = 0
    while start < count:
        position = start
        if last is not None:
            # the first hit with now - last >= cooldown; the search on last + cooldown may be off
            # by a rounding, so step to where the exact test (monotonic in now) turns true
            position += int(np.searchsorted(times[start:], last + cooldown, side="left"))
            while position > start and float(times[position - 1]) - last >= cooldown:
                position -= 1
            while position < count and not float(times[position]) - last >= cooldown:
                position += 1
            if position >= count:
                break
        chosen.append(position)
        last = float(times[position])
        start = position + 1
    return np.asarray(chosen, dtype=np.int64), last if last is not None else 0.0


def _as_table(data: Any) -> pa.Table | None:
    """``data`` as one Arrow table; None for an empty list."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pl.DataFrame):
        return data.to_arrow(compat_level=pl.CompatLevel.oldest())
    if type(data).__module__.partition(".")[0] == "pandas" and type(data).__name__ == "DataFrame":
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(f"this pandas DataFrame has no Arrow equivalent: {exc}") from exc
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        if not data:
            return None
        if not all(isinstance(row, Mapping) for row in data):
            raise ConfigurationError("observe_table takes a list of dicts (a row each); observe() takes one")
        names = dict.fromkeys(name for row in data for name in row)  # every row's keys, in order
        try:
            return pa.table({name: pa.array([row.get(name) for row in data]) for name in names})
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(
                f"these dicts do not make a table (each key must hold one type in every row): {exc}; "
                "observe them one at a time with observe()"
            ) from exc
    raise ConfigurationError(
        "observe_table takes a pyarrow Table or RecordBatch, a Polars or pandas DataFrame or a list of "
        f"dicts, not {type(data).__name__}; observe() takes one dict"
    )


def _event_times(table: pa.Table, name: str) -> _Floats:
    """The ``time`` column in seconds: numbers as they are, timestamps since the epoch."""
    if name not in table.column_names:
        names = ", ".join(table.column_names)
        raise SchemaError(f"time column {name!r} is not in the table (columns: {names})")
    column = table.column(name)
    kind = column.type
    if pat.is_timestamp(kind):
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[kind.unit]
        seconds = pc.divide(pc.cast(column, pa.int64()).cast(pa.float64()), float(per_second))
    elif pat.is_integer(kind) or pat.is_floating(kind):
        seconds = pc.cast(column, pa.float64())
    else:
        raise SchemaError(f"time column {name!r} holds {kind}: give seconds (numbers) or timestamps")
    values = np.asarray(seconds.to_numpy(zero_copy_only=False), dtype=np.float64)
    if column.null_count or bool(np.isnan(values).any()):
        raise SchemaError(f"time column {name!r} has nulls or NaNs: every row needs a time")
    return values


#: Names of the alert sinks before they were told apart from processing's sinks (kept one release).
_RENAMED = {
    "Sink": "AlertSink",
    "LogSink": "LogAlertSink",
    "CallbackSink": "CallbackAlertSink",
    "WebhookSink": "WebhookAlertSink",
}


def __getattr__(name: str) -> Any:
    new = _RENAMED.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"sygnify.monitoring.{name} is now {new} (the old name goes in the next release)",
        DeprecationWarning,
        stacklevel=2,
    )
    return globals()[new]
