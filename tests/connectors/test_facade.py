from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.local.connector import LocalConnector
from sygnify.errors import ConfigurationError, NotFoundError, PluginNotFoundError
from sygnify.testing.connectors import sample_table


def test_connect_get_close_all_and_context_manager(tmp_path: Path) -> None:
    with CloudDataConnector(environ={}) as connector:
        lake = connector.connect("local", name="lake", root=tmp_path)
        assert connector.get("lake") is lake
        assert "lake" in connector
        assert list(connector) == ["lake"]
        assert len(connector) == 1
        other = connector.connect("local", root=tmp_path / "other")
        assert other.name == "local-1"
    assert lake.closed
    assert other.closed
    with pytest.raises(NotFoundError, match="no open connection named 'lake'"):
        connector.get("lake")


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    with CloudDataConnector(environ={}) as connector:
        connector.connect("local", name="lake", root=tmp_path)
        with pytest.raises(ConfigurationError, match="already open"):
            connector.connect("local", name="lake", root=tmp_path)


def test_unknown_connector_type_lists_the_available_ones() -> None:
    with CloudDataConnector(environ={}) as connector, pytest.raises(PluginNotFoundError, match="local"):
        connector.connect("teradata", name="x")


def test_invalid_options_are_configuration_errors(tmp_path: Path) -> None:
    with CloudDataConnector(environ={}) as connector, pytest.raises(ConfigurationError, match="rooot"):
        connector.connect("local", rooot=tmp_path)


def test_connection_defined_in_toml_and_environment(tmp_path: Path) -> None:
    config_file = tmp_path / "sygnify.toml"
    config_file.write_text(
        '[connections.lake]\ntype = "local"\nroot = "${LAKE_DIR}"\n'
        "[connections.lake.retry]\nmax_attempts = 9\n"
    )
    environ = {"LAKE_DIR": str(tmp_path / "from-toml"), "SYGNIFY_LAKE__BREAKER__FAILURE_THRESHOLD": "2"}
    with CloudDataConnector(config_file=config_file, environ=environ) as connector:
        lake = connector.connect(name="lake")
        assert isinstance(lake, LocalConnector)
        assert lake.root == (tmp_path / "from-toml").resolve()
        assert lake.config.retry.max_attempts == 9
        assert lake.breaker.failure_threshold == 2


def test_sygnify_config_environment_variable_selects_the_file(tmp_path: Path) -> None:
    config_file = tmp_path / "conf.toml"
    config_file.write_text(f'[connections.lake]\ntype = "local"\nroot = "{tmp_path}"\n')
    with CloudDataConnector(environ={"SYGNIFY_CONFIG": str(config_file)}) as connector:
        assert connector.connect(name="lake").health().ok


def test_same_config_shares_one_pooled_client_and_survives_partial_close(tmp_path: Path) -> None:
    with CloudDataConnector(environ={}) as connector:
        first = connector.connect("local", name="a", root=tmp_path)
        second = connector.connect("local", name="b", root=tmp_path)
        different = connector.connect("local", name="c", root=tmp_path / "elsewhere")
        assert first._database is second._database
        assert first._database is not different._database
        first.write(sample_table(3), "t.parquet", mode="overwrite")
        connector.close("a")
        assert second.query(
            "SELECT count(*) AS n FROM read_parquet(?)", [str(tmp_path / "t.parquet")]
        ).to_pylist() == [{"n": 3}]


def test_connections_are_safe_to_use_from_threads(tmp_path: Path) -> None:
    with CloudDataConnector(environ={}) as connector:
        lake = connector.connect("local", name="lake", root=tmp_path)
        lake.write(sample_table(1_000), "t.parquet", mode="overwrite")
        results: list[int] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(20):
                    table = lake.query(
                        "SELECT sum(id) AS s FROM read_parquet(?)", [str(tmp_path / "t.parquet")]
                    )
                    results.append(table.column("s")[0].as_py())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert results == [sum(range(1_000))] * 80


def test_health_reports_every_connection(tmp_path: Path) -> None:
    with CloudDataConnector(environ={}) as connector:
        connector.connect("local", name="a", root=tmp_path)
        health = connector.health()
        assert health["a"].ok
        assert health["a"].connector == "local"
        assert health["a"].latency_ms >= 0
