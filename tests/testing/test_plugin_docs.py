"""The connector in docs/plugins.md is a working plugin: it passes the shipped conformance kit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sygnify.errors import UnsupportedOperationError
from sygnify.plugins import PluginContext
from sygnify.testing.connectors import check_connector, declared_capabilities

DOC = Path(__file__).parents[2] / "docs" / "plugins.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def documented() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "plugins_md"}
    exec(compile(python_blocks(DOC.read_text(encoding="utf-8"))[0], str(DOC), "exec"), namespace)
    return namespace


def test_the_documented_memory_connector_passes_check_connector(documented: dict[str, Any]) -> None:
    memory_connector = documented["MemoryConnector"]
    opened = iter(range(100))
    ran = check_connector(
        lambda: memory_connector.from_config({}, context=PluginContext(f"memory{next(opened)}")),
        "numbers",
        missing_source="no-such-table",
    )
    assert "implements_the_protocol" in ran
    assert len(ran) == 10


def test_the_documented_memory_connector_is_not_queryable(documented: dict[str, Any]) -> None:
    memory = documented["memory"]
    assert sorted(c.value for c in declared_capabilities(memory)) == ["catalog", "readable", "writable"]
    with pytest.raises(UnsupportedOperationError, match="queryable"):
        memory.query("SELECT 1")
