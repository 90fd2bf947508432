from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from sygnify import CloudDataConnector
from sygnify import events as sygnify_events
from sygnify.errors import ConnectionFailedError, QueryError


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
    assert [r["attempt"] for r in retries] == [1, 2]
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
