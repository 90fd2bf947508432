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
from typing import Any, Literal

from sygnify.errors import ConfigurationError
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
    "AlertSink",
    "Threshold",
    "WebhookAlertSink",
]

_logger = logging.getLogger(__name__)
Severity = Literal["info", "warning", "critical"]


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
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
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


class Rule(abc.ABC):
    """Looks at an observation and returns an alert, or None."""

    def __init__(self, name: str, *, severity: Severity = "warning", labels: Sequence[str] = ()) -> None:
        self.name, self.severity, self.label_fields = name, severity, tuple(labels)

    @abc.abstractmethod
    def check(self, observation: Mapping[str, Any], now: float) -> Alert | None: ...

    def _labels(self, observation: Mapping[str, Any]) -> dict[str, str]:
        return {key: str(observation[key]) for key in self.label_fields if key in observation}

    def _alert(self, observation: Mapping[str, Any], message: str, value: float | None, now: float) -> Alert:
        labels = self._labels(observation)
        if labels:
            message += " (" + ", ".join(f"{k}={v}" for k, v in labels.items()) + ")"
        return Alert(self.name, message, self.severity, value, labels, now)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _number(observation: Mapping[str, Any], key: str) -> float | None:
    value = observation.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


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


class BreakerOpen(Rule):
    """Fires on a ``breaker.state`` event (:mod:`sygnify.events`) whose new state is ``open``."""

    def __init__(self, name: str = "breaker-open", *, severity: Severity = "critical", **kw: Any) -> None:
        super().__init__(name, severity=severity, labels=("breaker",), **kw)

    def check(self, observation: Mapping[str, Any], now: float) -> Alert | None:
        if observation.get("event") != "breaker.state" or observation.get("new") != "open":
            return None
        return self._alert(observation, "circuit breaker opened", None, now)


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

    ``client`` may be an ``httpx.Client`` (e.g. with a ``MockTransport`` in tests).
    """

    def __init__(
        self, url: str, *, timeout: float = 5.0, headers: Mapping[str, str] | None = None, client: Any = None
    ) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise ConfigurationError("WebhookAlertSink needs httpx: pip install httpx") from exc
        self.url = url
        self._client = client or httpx.Client(timeout=timeout, headers=dict(headers or {}))

    def __repr__(self) -> str:
        return f"WebhookAlertSink({self.url.split('?', 1)[0].rsplit('/', 1)[0]}/...)"

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
        for alert in sent:
            for sink in self.sinks:
                try:
                    sink.send(alert)
                except Exception:  # one broken sink must not silence the others
                    self.sink_errors += 1
                    _logger.exception("alert sink %r failed for %s", sink, alert.rule)
        return sent

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
