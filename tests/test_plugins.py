from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors import CONNECTORS
from sygnify.connectors.local.connector import LocalConnector
from sygnify.errors import ConfigurationError, PluginNotFoundError
from sygnify.plugins import GROUPS, Registry, discover

PLUGIN_SOURCE = Path(__file__).parent / "fixtures" / "example_plugin"


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Install the example third-party plugin package for real, into a fresh target dir."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(PLUGIN_SOURCE),
        ],
        check=True,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    CONNECTORS.refresh()
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("sygnify_example_plugin", None)
    CONNECTORS.refresh()


def test_groups_are_the_four_documented_ones() -> None:
    assert dict(GROUPS) == {
        "connector": "sygnify.connectors",
        "executor": "sygnify.executors",
        "model": "sygnify.models",
        "source": "sygnify.sources",
    }


def test_sygnify_registers_its_own_connectors_by_entry_point() -> None:
    assert discover("sygnify.connectors")["local"].target == "sygnify.connectors.local:LocalConnector"
    assert CONNECTORS.load("local") is LocalConnector


def test_a_third_party_plugin_is_found_through_its_entry_point(installed_plugin: Path) -> None:
    info = discover("sygnify.connectors")["memory"]
    assert info.distribution == "sygnify-example-plugin"
    assert "memory" in CONNECTORS.names()
    with CloudDataConnector() as connector:
        memory = connector.connect("memory", name="mem")
        memory.write(pa.table({"x": [1, 2, 3]}), "numbers")
        assert [batch.num_rows for batch in memory.stream("numbers", batch_size=2)] == [2, 1]
        assert memory.health().ok


def test_a_plugin_whose_module_is_missing_names_what_to_install(installed_plugin: Path) -> None:
    sources: Registry[object] = Registry("sygnify.sources", kind="stream source")
    with pytest.raises(PluginNotFoundError, match="needs a package that is not installed") as info:
        sources.load("broken")
    assert info.value.name == "broken"


def test_unknown_plugin_lists_the_available_ones() -> None:
    with pytest.raises(PluginNotFoundError) as info:
        CONNECTORS.load("nosuch")
    assert "local" in info.value.available
    assert "available: " in str(info.value)
    assert "local" in str(info.value)
    assert info.value.group == "sygnify.connectors"


def test_a_typo_gets_a_suggestion() -> None:
    with pytest.raises(PluginNotFoundError, match=r"unknown connector 'locl' \(did you mean 'local'\?\)"):
        CONNECTORS.load("locl")


def test_missing_dependency_names_the_pip_extra() -> None:
    registry: Registry[object] = Registry("sygnify.test", kind="connector", extras={"cloud": "cloudy"})
    registry.register("cloud", "sygnify_no_such_sdk.module:Client")
    with pytest.raises(PluginNotFoundError, match=r"pip install 'sygnify\[cloudy\]'") as info:
        registry.load("cloud")
    assert info.value.extra == "cloudy"


def test_unknown_name_with_a_known_extra_says_what_to_install() -> None:
    registry: Registry[object] = Registry("sygnify.test", kind="connector", extras={"warehouse": "bigwh"})
    with pytest.raises(PluginNotFoundError, match=r"pip install 'sygnify\[bigwh\]'"):
        registry.load("warehouse")


def test_register_in_code_is_lazy_and_cached() -> None:
    registry: Registry[object] = Registry("sygnify.test", kind="thing")
    registry.register("ordered", "collections:OrderedDict")
    first = registry.load("ordered")
    assert registry.load("ordered") is first
    assert registry.describe()[0].target == "collections:OrderedDict"
    registry.unregister("ordered")
    assert "ordered" not in registry


def test_entry_point_to_a_missing_attribute_is_a_configuration_error() -> None:
    registry: Registry[object] = Registry("sygnify.test", kind="thing")
    registry.register("bad", "collections:NoSuchThing")
    with pytest.raises(ConfigurationError, match="does not exist"):
        registry.load("bad")


def test_validation_rejects_a_plugin_of_the_wrong_kind() -> None:
    CONNECTORS.register("not-a-connector", "collections:OrderedDict")
    try:
        with pytest.raises(ConfigurationError, match="has no from_options"):
            CONNECTORS.load("not-a-connector")
    finally:
        CONNECTORS.unregister("not-a-connector")
