"""Every old import path of docs/architecture.md ("Old import paths") still works, and warns once.

A shim may have been imported already (by another test, or by a parent package), so each
check drops the shim from ``sys.modules``, imports it afresh under ``catch_warnings`` and puts
the original module back afterwards.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import sygnify

STREAMS = ["base", "decoding", "kafka", "mqtt", "nats", "redis", "registry"]
MODES = ["chunked", "fused", "incremental", "parallel", "streaming"]

#: old path -> new path, as listed in docs/architecture.md
MOVED: dict[str, str] = {
    "sygnify.ml.sources": "sygnify.streams",
    **{f"sygnify.ml.sources.{name}": f"sygnify.streams.{name}" for name in STREAMS},
    "sygnify.ml.windows": "sygnify.streams.windows",
    "sygnify.monitoring.hooks": "sygnify.events",
    "sygnify.connectors.azure_data_factory": "sygnify.orchestrators.azure_data_factory",
    "sygnify.connectors.formats": "sygnify.io.formats",
    "sygnify._arrow": "sygnify.io.arrow",
    "sygnify.ml.registry": "sygnify.ml.routing",
    "sygnify.ml.streaming": "sygnify.ml.stream",
    **{f"sygnify.processing.{mode}": f"sygnify.processing.modes.{mode}" for mode in MODES},
}


def test_every_shim_in_the_tree_is_listed() -> None:
    root = Path(sygnify.__file__).parent
    shims = set()
    for path in root.rglob("*.py"):
        if "warn_moved(" in path.read_text(encoding="utf-8") and path.name != "_moved.py":
            parts = path.relative_to(root.parent).with_suffix("").parts
            shims.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert shims == set(MOVED)


def test_the_architecture_page_lists_every_move() -> None:
    page = (Path(sygnify.__file__).parent.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = " ".join(page.split("## Old import paths", 1)[1].split("\n## ", 1)[0].split())
    for old, new in MOVED.items():
        if old.startswith("sygnify.ml.sources"):
            old, new = "sygnify.ml.sources[.*]", "sygnify.streams[.*]"
        assert f"`{old}` → `{new}`" in section


@pytest.fixture
def fresh_import() -> Iterator[list[str]]:
    """Names whose sys.modules entries a test replaced; the originals are put back after it."""
    replaced: list[str] = []
    saved = dict(sys.modules)
    yield replaced
    for name in replaced:
        if name in saved:
            sys.modules[name] = saved[name]
            parent, _, child = name.rpartition(".")
            if parent in sys.modules:
                setattr(sys.modules[parent], child, saved[name])
        else:
            sys.modules.pop(name, None)


def _import_afresh(name: str, replaced: list[str]) -> tuple[ModuleType, list[warnings.WarningMessage]]:
    parent = name.rpartition(".")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        importlib.import_module(parent)  # a parent shim warns for its own move, not this one's
    sys.modules.pop(name, None)
    replaced.append(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        __import__(name)  # like an import statement: the warning points at this line
    return sys.modules[name], [w for w in caught if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_path_warns_once_and_re_exports_the_new_module(
    old: str, new: str, fresh_import: list[str]
) -> None:
    target = importlib.import_module(new)
    shim, caught = _import_afresh(old, fresh_import)
    assert [str(w.message) for w in caught] == [
        f"{old} moved to {new}; import from {new} (the old path goes in the next release)"
    ]
    assert caught[0].filename == __file__  # points at the importing line, not at the shim
    assert shim.__all__ == target.__all__
    assert target.__all__
    # the old hooks.emit took any event name: its shim keeps a wrapper that warns instead of raising
    wrapped = {"sygnify.monitoring.hooks": {"emit"}}.get(old, set())
    differing = [
        name
        for name in target.__all__
        if name not in wrapped and getattr(shim, name) is not getattr(target, name)
    ]
    assert not differing, f"{old} does not re-export these objects of {new}: {differing}"


def test_new_paths_import_without_deprecation_warnings() -> None:
    code = "; ".join(f"import {new}" for new in sorted(set(MOVED.values())))
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning:sygnify", "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_old_hooks_emit_warns_for_an_undeclared_event_instead_of_raising() -> None:
    with warnings.catch_warnings():  # the import's own warning is checked above, and only once
        warnings.simplefilter("ignore", DeprecationWarning)
        hooks = importlib.import_module("sygnify.monitoring.hooks")
    with pytest.warns(DeprecationWarning, match="'my.custom' is not declared"):
        hooks.emit("my.custom", value=1)


def test_the_old_iterator_source_name_warns() -> None:
    from sygnify.processing import sources

    with pytest.warns(DeprecationWarning, match="now IteratorSource"):
        assert sources.StreamSource is sources.IteratorSource  # type: ignore[attr-defined]
