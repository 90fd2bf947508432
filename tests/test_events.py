from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from sygnify import CloudDataConnector
from sygnify import events as sygnify_events
from sygnify.errors import ConfigurationError, ConnectionFailedError, QueryError


@pytest.fixture
def events() -> Iterator[list[tuple[str, Mapping[str, Any]]]]:
    seen: list[tuple[str, Mapping[str, Any]]] = []
    unsubscribe = sygnify_events.subscribe(lambda event, fields: seen.append((event, fields)))
    yield seen
    unsubscribe()


def test_connector_calls_are_reported_with_outcome(
    tmp_path: Path, events: list[tuple[str, Mapping[str, Any]]]
) -> None:
    with CloudDataConnector(environ={}) as connector:
        lake = connector.connect("local", name="lake", root=tmp_path)
        lake.query("SELECT 1 AS x")
        with pytest.raises(QueryError):
            lake.query("SELEC 1")
    calls = [fields for event, fields in events if event == "connector.call"]
    assert [(c["operation"], c["outcome"], c["error"]) for c in calls] == [
        ("query", "ok", None),
        ("query", "error", "QueryError"),
    ]
    assert all(c["connector"] == "local" and c["name"] == "lake" and c["duration_s"] >= 0 for c in calls)


def test_retries_and_breaker_changes_are_reported(
    tmp_path: Path, events: list[tuple[str, Mapping[str, Any]]]
) -> None:
    with CloudDataConnector(environ={}) as connector:
        lake = connector.connect(
            "local",
            name="flaky",
            root=tmp_path,
            retry={"max_attempts": 3, "initial_delay": 0, "jitter": 0},
            breaker={"failure_threshold": 2, "reset_timeout": 60},
        )

        def always_down() -> None:
            raise ConnectionFailedError("down")

        with pytest.raises(Exception, match="circuit breaker"):
            lake._call("probe", always_down)
    retries = [fields for event, fields in events if event == "connector.retry"]
    states = [(f["old"], f["new"]) for event, f in events if event == "breaker.state"]
    # The second failure opens the breaker (threshold 2, open for 60 s): Resilience.call then
    # refuses at once with CircuitOpenError instead of sleeping a backoff for a third attempt
    # the breaker would refuse, so only the one retry that really happened is reported
    # (docs/errors-and-resilience.md, "Circuit breaker"; before, attempt 2's retry was too).
    assert [r["attempt"] for r in retries] == [1]
    assert states == [("closed", "open")]


def test_a_failing_listener_never_breaks_the_pipeline(tmp_path: Path) -> None:
    def broken(event: str, fields: Mapping[str, Any]) -> None:
        raise RuntimeError("metrics bug")

    unsubscribe = sygnify_events.subscribe(broken)
    try:
        with CloudDataConnector(environ={}) as connector:
            assert connector.connect("local", root=tmp_path).query("SELECT 2 AS x").to_pylist() == [{"x": 2}]
    finally:
        unsubscribe()


# -- the declared events -------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sygnify"
EVENT_NAME = re.compile(r"^(connector|breaker|handler|model|source)\.[a-z_]+$")


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _emit_calls() -> list[tuple[str, ast.Call]]:
    """Every ``events.emit(...)`` (or ``emit(...)`` imported from sygnify.events) in sygnify/."""
    calls = []
    for path, tree in _modules():
        if path == PACKAGE / "events.py":
            continue
        bare = any(
            isinstance(node, ast.ImportFrom)
            and node.module == "sygnify.events"
            and any(alias.name == "emit" for alias in node.names)
            for node in ast.walk(tree)
        )
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "emit"
                and isinstance(func.value, ast.Name)
                and func.value.id in ("events", "hooks")
            ) or (bare and isinstance(func, ast.Name) and func.id == "emit"):
                calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return calls


def test_every_emit_in_sygnify_sends_a_declared_event_with_its_declared_fields() -> None:
    calls = _emit_calls()
    assert len(calls) >= 11
    problems = []
    emitted = set()
    for where, call in calls:
        first = call.args[0] if call.args else None
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            problems.append(f"{where}: the event name is not a string literal")
            continue
        name = first.value
        emitted.add(name)
        payload = sygnify_events.EVENTS.get(name)  # type: ignore[call-overload]
        if payload is None:
            problems.append(f"{where}: undeclared event {name!r}")
            continue
        if any(keyword.arg is None for keyword in call.keywords):
            problems.append(f"{where}: {name!r} passes **fields; emit declared fields by name")
            continue
        fields = {keyword.arg for keyword in call.keywords if keyword.arg is not None}
        required, allowed = payload.__required_keys__, payload.__required_keys__ | payload.__optional_keys__
        if not required <= fields <= allowed:
            problems.append(f"{where}: {name!r} emits {sorted(fields)}, declared {sorted(allowed)}")
    assert problems == []
    assert emitted == set(sygnify_events.EVENTS), "a declared event nobody emits should not be declared"


def _row(text: str, event: str) -> str:
    """The text of ``event``'s row in a table (its line and continuation lines)."""
    lines = text.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.lstrip("| ").startswith((f"``{event}``", f"`{event}`"))
    )
    row = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        row.append(line)
    return " ".join(row)


@pytest.mark.parametrize(
    "document",
    [ROOT / "docs" / "monitoring.md", PACKAGE / "events.py"],
    ids=["docs/monitoring.md", "events.py docstring"],
)
def test_every_declared_event_is_documented_with_its_fields(document: Path) -> None:
    text = document.read_text() if document.suffix == ".md" else sygnify_events.__doc__ or ""
    for event, payload in sygnify_events.EVENTS.items():
        assert f"`{event}`" in text, f"{event} is not documented in {document.name}"
        row = _row(text, event)
        missing = [field for field in payload.__annotations__ if not re.search(rf"\b{field}\b", row)]
        assert missing == [], f"{event}'s row in {document.name} does not name {missing}"


def test_monitoring_listens_only_to_declared_events() -> None:
    from prometheus_client import CollectorRegistry

    from sygnify.monitoring.metrics import PrometheusMetrics

    assert set(PrometheusMetrics(registry=CollectorRegistry())._handlers) <= set(sygnify_events.EVENTS)
    for module in ("metrics", "alerts"):
        path = PACKAGE / "monitoring" / f"{module}.py"
        names = {
            node.value
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and EVENT_NAME.match(node.value)
        }
        assert names, f"monitoring.{module} names no event"
        assert names <= set(sygnify_events.EVENTS), (
            f"monitoring.{module}: {names - set(sygnify_events.EVENTS)}"
        )


def test_only_monitoring_and_the_surface_import_monitoring() -> None:
    # the import graph of tests/test_layers.py: function-level and TYPE_CHECKING imports count
    from tests.test_layers import LAYERS, MODULES, _top

    offenders = [
        f"{edge.where}: {edge.importer} imports {edge.target}"
        for module in MODULES.values()
        if _top(module.name) != "monitoring" and LAYERS.get(_top(module.name)) != max(LAYERS.values())
        for edge in module.edges
        if _top(edge.target) == "monitoring"
    ]
    assert offenders == []
    assert {edge.target for edge in MODULES["sygnify.events"].edges} == {"sygnify.errors"}  # layer 0


def test_an_undeclared_event_is_refused_even_without_listeners() -> None:
    with pytest.raises(ConfigurationError, match=r"undeclared event.*'handler\.chunks'"):
        sygnify_events.emit("handler.chunks", rows=1)  # type: ignore[call-overload]


def test_payload_fields_are_checked_when_someone_listens(events: list[tuple[str, Mapping[str, Any]]]) -> None:
    with pytest.raises(ConfigurationError, match=r"missing field.*messages.*undeclared field.*msgs"):
        sygnify_events.emit("source.ack", source="s", msgs=1)  # type: ignore[call-overload]
    assert events == []


def test_outside_strict_mode_a_mismatched_payload_is_logged_and_dropped(
    events: list[tuple[str, Mapping[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert sygnify_events.STRICT  # tests/conftest.py sets SYGNIFY_STRICT_EVENTS=1
    monkeypatch.setattr(sygnify_events, "STRICT", False)
    with caplog.at_level("WARNING", logger="sygnify.events"):
        sygnify_events.emit("source.ack", source="s", msgs=1)  # type: ignore[call-overload]
    assert events == []
    assert "event dropped" in caplog.text
    sygnify_events.emit("source.ack", source="s", messages=1)
    assert events == [("source.ack", {"source": "s", "messages": 1})]


def test_a_listener_filtering_the_event_out_costs_no_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(event: str, fields: Mapping[str, Any]) -> bool:
        raise AssertionError("payload checked although no listener wants the event")

    monkeypatch.setattr(sygnify_events, "_listeners", ())
    unsubscribe = sygnify_events.subscribe(lambda event, fields: None, events=["handler.finish"])
    try:
        monkeypatch.setattr(sygnify_events, "_check", never)
        sygnify_events.emit("source.ack", source="s", messages=1)
    finally:
        unsubscribe()


def test_without_listeners_payloads_are_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    # the fast path the one-record predictions rely on: a set lookup, then return
    def never(event: str, fields: Mapping[str, Any]) -> None:
        raise AssertionError("payload checked with nobody listening")

    monkeypatch.setattr(sygnify_events, "_check", never)
    monkeypatch.setattr(sygnify_events, "_listeners", ())
    assert not sygnify_events.listening()
    sygnify_events.emit("source.ack", source="s", messages=1)


def test_subscribe_filters_by_event_and_refuses_unknown_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sygnify_events, "_listeners", ())  # only this test's listener
    seen: list[str] = []
    unsubscribe = sygnify_events.subscribe(lambda event, fields: seen.append(event), events=["source.ack"])
    try:
        assert sygnify_events.listening("source.ack")
        assert not sygnify_events.listening("source.read")
        sygnify_events.emit("source.read", source="s", rows=1, dead_letters=0, duration_s=0.0)
        sygnify_events.emit("source.ack", source="s", messages=1)
    finally:
        unsubscribe()
    assert seen == ["source.ack"]
    assert not sygnify_events.listening()
    with pytest.raises(ConfigurationError, match=r"undeclared event.*'source\.acks'"):
        sygnify_events.subscribe(print, events=["source.acks"])  # type: ignore[list-item]


def test_the_old_hooks_path_still_works_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="sygnify.events"):
        hooks = importlib.reload(importlib.import_module("sygnify.monitoring.hooks"))
    assert hooks.subscribe is sygnify_events.subscribe
    seen: list[str] = []
    unsubscribe = hooks.subscribe(lambda event, fields: seen.append(event), events=["source.ack"])
    try:
        hooks.emit("source.ack", source="s", messages=1)  # a declared event is delivered as before
    finally:
        unsubscribe()
    assert seen == ["source.ack"]
