from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import redis
from pydantic import BaseModel

from sygnify import CloudDataConnector
from sygnify.config import load_config_file
from sygnify.connectors import CONNECTORS
from sygnify.connectors.local.connector import LocalConnector
from sygnify.errors import ConfigurationError, PluginNotFoundError
from sygnify.ml.backends import MODEL_BACKENDS, BackendContext, ModelBackend
from sygnify.ml.backends.callable import CallableBackend, CallableConfig
from sygnify.plugins import BUILTINS, GROUPS, PluginContext, PluginInfo, Registry, discover
from sygnify.processing.executors import EXECUTORS, make_executor
from sygnify.processing.executors.config import ExecutorConfig
from sygnify.processing.executors.local import ThreadExecutor
from sygnify.streams import SOURCES, StreamSource, open_source
from sygnify.streams.redis import RedisConfig, RedisSource

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


def test_sygnify_finds_its_own_connectors_in_the_builtin_table() -> None:
    registry: Registry[object] = Registry(GROUPS["connector"], kind="connector", entry_points=False)
    assert {info.name: info.target for info in registry.describe()}["local"] == (
        "sygnify.connectors.local:LocalConnector"
    )
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
    registry: Registry[object] = Registry(
        "sygnify.test", kind="connector", builtins={"cloud": ("sygnify_no_such_sdk.module:Client", "cloudy")}
    )
    assert "cloud" in registry.names()
    with pytest.raises(PluginNotFoundError, match=r"pip install 'sygnify\[cloudy\]'") as info:
        registry.load("cloud")
    assert info.value.extra == "cloudy"


def test_unknown_name_says_where_a_third_party_plugin_registers() -> None:
    registry: Registry[object] = Registry("sygnify.test", kind="connector", builtins={})
    with pytest.raises(PluginNotFoundError, match=r"entry-point group 'sygnify\.test'"):
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
        with pytest.raises(ConfigurationError, match="has no from_config"):
            CONNECTORS.load("not-a-connector")
    finally:
        CONNECTORS.unregister("not-a-connector")


# -- one table of built-ins ------------------------------------------------------------------

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


def test_builtins_are_the_one_list_and_name_real_extras() -> None:
    """Adding a built-in is one line in BUILTINS: pyproject declares no entry point beside it."""
    assert set(BUILTINS) == set(GROUPS)
    project = load_config_file(PYPROJECT)["project"]
    assert not set(project.get("entry-points", {})) & set(GROUPS.values()), (
        "built-in plugins belong in sygnify.plugins.BUILTINS, not in pyproject entry points"
    )
    extras = set(project["optional-dependencies"])
    for kind, table in BUILTINS.items():
        for name, (target, extra) in table.items():
            assert ":" in target, f"{kind} {name!r}: target {target!r} is not 'module:attribute'"
            assert extra is None or extra in extras, f"{kind} {name!r}: no extra {extra!r} in pyproject"


@pytest.mark.parametrize("kind", sorted(GROUPS))
def test_a_registry_without_entry_points_still_finds_every_builtin(kind: str) -> None:
    registry: Registry[object] = Registry(GROUPS[kind], kind=kind, entry_points=False)
    assert registry.names() == sorted(BUILTINS[kind])
    assert {info.name: info.distribution for info in registry.describe()} == dict.fromkeys(
        BUILTINS[kind], "sygnify"
    )


@pytest.mark.parametrize(
    ("registry", "kind"),
    [(CONNECTORS, "connector"), (EXECUTORS, "executor"), (MODEL_BACKENDS, "model"), (SOURCES, "source")],
)
def test_every_builtin_loads_and_has_from_config_and_a_config_model(
    registry: Registry[Any], kind: str
) -> None:
    for name, (_target, extra) in BUILTINS[kind].items():
        plugin = registry.load(name)
        assert callable(plugin.from_config), name
        assert issubclass(plugin.config_model, BaseModel), name
        assert registry.extra(name) == extra


def test_an_entry_point_cannot_silently_replace_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = {
        "local": PluginInfo("local", "evil_package:Local", "evil-package"),
        "memory": PluginInfo("memory", "sygnify_example_plugin:MemoryConnector", "example"),
    }
    monkeypatch.setattr("sygnify.plugins.discover", lambda group: dict(foreign))
    registry: Registry[object] = Registry(GROUPS["connector"], kind="connector")
    with pytest.warns(UserWarning, match=r"entry point 'local' = 'evil_package:Local' of evil-package"):
        assert "memory" in registry.names()
    assert registry.load("local") is LocalConnector
    registry.register("local", "collections:OrderedDict")  # on purpose, in code: that wins
    assert registry.load("local") is OrderedDict


# -- one factory shape -------------------------------------------------------------------------


def test_from_config_for_each_kind(tmp_path: Path) -> None:
    connection = CONNECTORS.load("local").from_config({"root": str(tmp_path)}, context=PluginContext("lake"))
    assert connection.name == "lake"
    assert connection.health().ok
    executor = EXECUTORS.load("threads").from_config({"max_workers": 1}, context=PluginContext("t"))
    try:
        assert executor.submit(sum, [1, 2]).result() == 3
    finally:
        executor.close()
    backend = MODEL_BACKENDS.load("callable").from_config(
        CallableConfig(fn=lambda X: X[:, 0], features=["x"]), context=PluginContext("m")
    )
    assert backend.model_name == "m"
    assert backend.signature is not None
    stream = f"sygnify-test-plugins-{tmp_path.name}"
    source = SOURCES.load("redis").from_config(
        RedisConfig(stream=stream, group="g", url="redis://127.0.0.1:6379/0", retry={"max_attempts": 1}),
        context=PluginContext("r"),
    )
    try:
        assert isinstance(source, StreamSource)
        assert isinstance(source, RedisSource)
        assert source.retry.max_attempts == 1  # a TOML-style table becomes a RetryPolicy
        assert source.read(timeout=0.01) is None
    finally:
        source.close()
        redis.Redis.from_url("redis://127.0.0.1:6379/0").delete(stream)


def test_a_config_of_another_plugin_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="expected LocalConfig"):
        LocalConnector.from_config(ExecutorConfig(), context=PluginContext("lake"))


@pytest.mark.parametrize(
    ("build", "typo", "suggestion"),
    [
        (lambda: LocalConnector.from_config({"rooot": "."}, context=PluginContext("lake")), "rooot", "root"),
        (
            lambda: make_executor("processes", max_workers=1, options={"start_methd": "spawn"}),
            "start_methd",
            "start_method",
        ),
        (
            lambda: MODEL_BACKENDS.load("sklearn").from_config({"modle": None}, context=PluginContext("m")),
            "modle",
            "model",
        ),
        (lambda: open_source("redis", stream="s", group="g", batchsize=3), "batchsize", "batch_size"),
        (
            lambda: LocalConnector.from_config({"retry": {"max_attempt": 2}}, context=PluginContext("x")),
            "retry.max_attempt",
            "retry.max_attempts",
        ),
    ],
)
def test_a_typo_in_a_config_names_the_closest_field_and_every_valid_one(
    build: Callable[[], object], typo: str, suggestion: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        build()
    message = str(info.value)
    assert f"does not take option {typo!r} (did you mean {suggestion!r}?)" in message
    valid = message.split("it takes: ")[1]
    assert suggestion.rsplit(".", 1)[-1] in valid


# -- legacy factories: one more release ---------------------------------------------------------


def test_legacy_factories_warn_but_work(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match="from_config"):
        connection = LocalConnector.from_options({"root": str(tmp_path)}, name="lake")
    assert connection.name == "lake"
    with pytest.warns(DeprecationWarning, match="from_config"):
        backend = CallableBackend.from_options({"fn": len}, name="m", context=BackendContext())
    assert backend.model_name == "m"


def test_legacy_plugins_in_a_registry_warn_but_work(tmp_path: Path) -> None:
    class OldConnector:
        @classmethod
        def from_options(cls, options: dict[str, Any], *, name: str | None = None, pool: Any = None) -> Any:
            return LocalConnector.from_config(options, context=PluginContext(name or "old", pool=pool))

    class OldExecutor(ThreadExecutor):
        from_config = None  # type: ignore[assignment]  # a class only called with max_workers=

    class OldSource:
        def __init__(self, **options: Any) -> None:
            self.options = options

        def read(self, **_: Any) -> None:
            return None

        def close(self) -> None:
            pass

    class OldBackend(ModelBackend):
        backend_name = "old"

        @classmethod
        def from_options(cls, options: Any, *, name: str, context: BackendContext) -> ModelBackend:
            backend = cls(signature=None, model_name=name)
            backend.options = dict(options)  # type: ignore[attr-defined]
            return backend

        def predict(self, features: pa.Table) -> Any:
            raise NotImplementedError

    legacy: list[tuple[Registry[Any], str, object]] = [
        (CONNECTORS, "old-connector", OldConnector),
        (EXECUTORS, "old-executor", OldExecutor),
        (SOURCES, "old-source", OldSource),
    ]
    for registry, name, plugin in legacy:
        registry.register(name, plugin)
    try:
        with pytest.warns(DeprecationWarning, match="legacy from_options"):
            factory = CONNECTORS.load("old-connector")
        connection = factory.from_config({"root": str(tmp_path)}, context=PluginContext("old"))
        assert connection.health().ok
        with pytest.warns(DeprecationWarning, match="legacy constructor"):
            executor = make_executor("old-executor", max_workers=1)
        assert executor.max_workers == 1
        executor.close()
        with pytest.warns(DeprecationWarning, match="legacy constructor"):
            source = open_source("old-source", stream="x")
        assert source.options == {"stream": "x"}  # type: ignore[attr-defined]
        with pytest.warns(DeprecationWarning, match="legacy from_options"):
            backend = OldBackend.from_config({"path": "m.bin"}, context=PluginContext("m"))
        assert backend.options == {"path": "m.bin"}  # type: ignore[attr-defined]
    finally:
        CONNECTORS.unregister("old-connector")
        EXECUTORS.unregister("old-executor")
        SOURCES.unregister("old-source")


def _keyword_defaults(cls: type) -> dict[str, Any]:
    """The keyword parameters (and defaults) of ``cls`` and the bases its ``**options`` reach."""
    found: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        for parameter in parameters:
            if parameter.name != "self" and parameter.kind in (
                parameter.KEYWORD_ONLY,
                parameter.POSITIONAL_OR_KEYWORD,
            ):
                found.setdefault(parameter.name, parameter.default)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return found


@pytest.mark.parametrize(
    ("registry", "kind"), [(EXECUTORS, "executor"), (SOURCES, "source")], ids=["executor", "source"]
)
def test_keyword_built_plugins_have_a_config_model_matching_their_constructor(
    registry: Registry[Any], kind: str
) -> None:
    for name in BUILTINS[kind]:
        plugin = registry.load(name)
        fields = {field.alias or key: field for key, field in plugin.config_model.model_fields.items()}
        parameters = _keyword_defaults(plugin)
        assert set(fields) == set(parameters), name
        for key, field in fields.items():
            default = parameters[key]
            if default is not inspect.Parameter.empty and field.is_required() is False:
                assert field.get_default() == default, f"{name}.{key}: {field.get_default()!r} != {default!r}"
