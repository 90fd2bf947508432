from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from sygnify.config import (
    ConnectorConfig,
    config_fingerprint,
    interpolate,
    resolve_connection,
    validate_config,
)
from sygnify.errors import ConfigurationError


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
