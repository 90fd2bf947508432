from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from sygnify.config import (
    ConnectorConfig,
    config_fingerprint,
    interpolate,
    load_section,
    resolve_connection,
    validate_config,
)
from sygnify.errors import ConfigurationError
from sygnify.ml import RealTimeML
from sygnify.ml.backends.kserve_v2 import KServeV2Backend
from sygnify.processing import LargeDataHandler
from sygnify.streams import open_source
from sygnify.streams.redis import RedisSource


class WarehouseConfig(ConnectorConfig):
    account: str
    user: str
    password: SecretStr
    port: int = 443


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sygnify.toml"
    path.write_text(text)
    return path


def test_interpolation_with_defaults_and_nesting() -> None:
    environ = {"HOST": "db.example.com"}
    value = {"url": "https://${HOST}:${PORT:-8443}/x", "list": ["${HOST}"], "n": 3}
    assert interpolate(value, environ) == {
        "url": "https://db.example.com:8443/x",
        "list": ["db.example.com"],
        "n": 3,
    }


def test_interpolation_of_a_missing_variable_names_it() -> None:
    with pytest.raises(ConfigurationError, match="SNOW_PASSWORD") as info:
        interpolate("${SNOW_PASSWORD}", {})
    assert info.value.resource == "SNOW_PASSWORD"


def test_precedence_is_kwargs_over_environment_over_toml(tmp_path: Path) -> None:
    config_file = write_toml(
        tmp_path,
        """
        [connections.wh]
        type = "snowflake"
        account = "from-toml"
        user = "toml-user"
        password = "${WH_PASSWORD}"
        [connections.wh.retry]
        max_attempts = 7
        initial_delay = 1.5
        """,
    )
    environ = {
        "WH_PASSWORD": "s3cret",
        "SYGNIFY_WH__USER": "env-user",
        "SYGNIFY_WH__RETRY__MAX_ATTEMPTS": "2",
    }
    connector_type, options = resolve_connection(
        "wh", None, {"account": "from-kwargs"}, environ=environ, config_file=config_file
    )
    assert connector_type == "snowflake"
    assert options == {
        "account": "from-kwargs",
        "user": "env-user",
        "password": "s3cret",
        "retry": {"max_attempts": "2", "initial_delay": 1.5},
    }
    config = validate_config(WarehouseConfig, options, context="wh")
    assert config.retry.max_attempts == 2
    assert config.password.get_secret_value() == "s3cret"


def test_environment_values_in_json_become_structures() -> None:
    _, options = resolve_connection("lake", "local", {}, environ={"SYGNIFY_LAKE__TABLES": '{"tx": "tx/"}'})
    assert options == {"tables": {"tx": "tx/"}}


def test_missing_type_explains_where_to_set_it() -> None:
    with pytest.raises(ConfigurationError, match="SYGNIFY_ORPHAN__TYPE"):
        resolve_connection("orphan", None, {}, environ={})


def test_invalid_toml_and_missing_file_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        resolve_connection("x", None, {}, environ={}, config_file=write_toml(tmp_path, "[connections\n"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        resolve_connection("x", None, {}, environ={}, config_file=tmp_path / "nope.toml")


def test_secrets_never_show_in_repr_logs_or_validation_errors(caplog: pytest.LogCaptureFixture) -> None:
    config = validate_config(
        WarehouseConfig, {"account": "a", "user": "u", "password": "hunter2"}, context="wh"
    )
    logging.getLogger("test").warning("config: %s %r", config, config)
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config)
    assert "hunter2" not in caplog.text
    with pytest.raises(ConfigurationError) as info:
        validate_config(
            WarehouseConfig,
            {"account": "a", "user": "u", "password": "hunter2", "port": "hunter2"},
            context="wh",
        )
    assert "hunter2" not in str(info.value)
    assert "port" in str(info.value)


def test_unknown_options_are_rejected_by_name() -> None:
    with pytest.raises(ConfigurationError, match="acount"):
        validate_config(WarehouseConfig, {"acount": "a", "user": "u", "password": "p"}, context="wh")


def test_fingerprint_distinguishes_secrets_without_containing_them() -> None:
    first = WarehouseConfig(account="a", user="u", password=SecretStr("one"))
    second = WarehouseConfig(account="a", user="u", password=SecretStr("two"))
    same = WarehouseConfig(account="a", user="u", password=SecretStr("one"))
    assert config_fingerprint(first) != config_fingerprint(second)
    assert config_fingerprint(first) == config_fingerprint(same)


# -- [models.*], [sources.*] and [handler] sections ------------------------------------------------


def test_sections_are_read_interpolated_and_empty_when_absent(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[handler]\nmax_memory = "${MEM:-2GB}"\n[sources.s]\ntype = "redis"\n')
    assert load_section("handler", config_file=path, environ={}) == {"max_memory": "2GB"}
    assert load_section("sources", "s", config_file=path, environ={}) == {"type": "redis"}
    assert load_section("models", "nope", config_file=path, environ={}) == {}
    assert load_section("models", "nope", config_file=None) == {}
    with pytest.raises(ConfigurationError, match="unknown config table 'model'; sygnify reads connections"):
        load_section("model", "x", config_file=path)  # type: ignore[arg-type]
    bad = write_toml(tmp_path, '[sources]\ns = "redis"\n')
    with pytest.raises(
        ConfigurationError, match=r"\[sources\.s\] in .* must be a table of settings, got str"
    ):
        load_section("sources", "s", config_file=bad)


def test_models_section_configures_register_and_kwargs_win(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        [models.risk]
        backend = "kserve_v2"
        url = "http://127.0.0.1:9"
        features = ["age", "income"]
        timeout = 2.5
        [models.risk.retry]
        max_attempts = 1
        """,
    )
    with RealTimeML(config_file=path) as ml:
        backend = ml.register("risk", timeout=5)
        assert isinstance(backend, KServeV2Backend)
        assert backend.config.url == "http://127.0.0.1:9"
        assert backend.config.timeout == 5.0
        assert backend.config.retry.max_attempts == 1
        assert backend.signature is not None
        assert backend.signature.names == ["age", "income"]
        # a model without a section is built from its keyword arguments alone
        plain = ml.register("double", fn=lambda X: X[:, 0] * 2, features=["x"])
        assert ml.predict_one("double", {"x": 2.0}).prediction == 4.0
        assert plain.backend_name == "callable"


def test_a_typo_in_a_models_section_is_refused_with_the_closest_field(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[models.risk]\nbackend = "kserve_v2"\nurl = "http://h"\ntimout = 1\n')
    with RealTimeML(config_file=path) as ml, pytest.raises(ConfigurationError) as info:
        ml.register("risk")
    assert "kserve_v2 model 'risk': does not take option 'timout' (did you mean 'timeout'?)" in str(
        info.value
    )


@pytest.mark.emulator
def test_sources_section_configures_open_source_and_kwargs_win(tmp_path: Path) -> None:
    stream = f"sygnify-test-config-{tmp_path.name}"
    path = write_toml(
        tmp_path,
        f"""
        [sources.sensors]
        type = "redis"
        url = "redis://127.0.0.1:6379/0"
        stream = "{stream}"
        group = "from-file"
        batch_size = 7
        [sources.sensors.retry]
        max_attempts = 2
        """,
    )
    source = open_source("sensors", config_file=path, group="from-kwargs")
    try:
        assert isinstance(source, RedisSource)
        assert (source.stream, source.group, source.batch_size) == (stream, "from-kwargs", 7)
        assert source.retry.max_attempts == 2
    finally:
        source.close()
        redis.Redis.from_url("redis://127.0.0.1:6379/0").delete(stream)
    typo = write_toml(
        tmp_path, '[sources.sensors]\ntype = "redis"\nstream = "s"\ngroup = "g"\nbatchsize = 3\n'
    )
    with pytest.raises(
        ConfigurationError, match=r"does not take option 'batchsize' \(did you mean 'batch_size'\?\)"
    ):
        open_source("sensors", config_file=typo)


def test_handler_section_gives_large_data_handler_its_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(
        tmp_path,
        """
        [handler]
        max_memory = "1GB"
        chunk_size = 70
        max_workers = 3
        executor = "processes"
        executor_options = { start_method = "spawn" }
        progress = false
        """,
    )
    handler = LargeDataHandler(config_file=path, chunk_size=10)
    assert handler.chunk_size == 10  # keyword arguments win
    assert handler.max_memory == 1_000_000_000
    assert (handler.max_workers, handler.executor, handler.progress) == (3, "processes", False)
    assert handler.executor_options == {"start_method": "spawn"}
    monkeypatch.setenv("SYGNIFY_CONFIG", str(path))
    assert LargeDataHandler().chunk_size == 70  # found through $SYGNIFY_CONFIG
    monkeypatch.delenv("SYGNIFY_CONFIG")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)  # no sygnify.toml here: the built-in defaults
    plain = LargeDataHandler()
    assert (plain.executor, plain.progress, plain.max_memory) == ("local", True, None)


def test_a_typo_in_the_handler_section_is_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[handler]\nchunksize = 5\n")
    with pytest.raises(
        ConfigurationError, match=r"does not take option 'chunksize' \(did you mean 'chunk_size'\?\)"
    ):
        LargeDataHandler(config_file=path)
