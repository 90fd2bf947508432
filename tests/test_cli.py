from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import polars as pl
import pytest

from sygnify.cli import main
from sygnify.demo import generate_transactions


def test_demo_runs_end_to_end_and_reports_each_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--dir", str(tmp_path / "demo"), "--rows", "20000", "--batch-size", "5000"]) == 0
    out = capsys.readouterr().out
    assert "20,000 synthetic transactions" in out
    assert "4 batches, 20,000 rows" in out
    assert "health: ok=True" in out
    assert "LargeDataHandler: chunked per-account" in out
    assert "20,000 rows in 4 chunks" in out
    assert "RealTimeML: score sampled payments" in out
    assert "20,000 scored" in out
    by_account = pl.read_parquet(tmp_path / "demo" / "reports" / "by_account.parquet")
    expected = generate_transactions(20_000).group_by("account_id").agg(pl.len().alias("payments"))
    assert by_account.height == expected.height
    assert by_account["payments"].sum() == 20_000
    report = pl.read_parquet(tmp_path / "demo" / "reports" / "usd_by_country.parquet")
    assert report["transactions"].sum() == generate_transactions(20_000).filter(pl.col("amount") >= 10).height


def test_demo_rejects_a_bad_row_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--rows", "0"]) == 2
    assert "--rows must be at least 1" in capsys.readouterr().err


def test_plugins_lists_every_group(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for group in ("sygnify.connectors", "sygnify.executors", "sygnify.models", "sygnify.sources"):
        assert group in out
    assert "local" in out
    assert "sygnify.connectors.local:LocalConnector" in out
    assert "sygnify.connectors.postgres:PostgresConnector" in out
    assert "missing:" not in out  # the test environment installs every extra


def test_plugins_names_the_extra_to_install_when_its_packages_are_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sygnify.cli as cli

    monkeypatch.setattr(cli, "missing_packages", lambda extra: ["boto3"] if extra == "s3" else [])
    assert main(["plugins"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "missing: pip install 'sygnify[s3]'" in lines["s3"]
    assert "missing:" not in lines["local"]


def test_missing_packages_reads_sygnify_metadata() -> None:
    from sygnify.cli import missing_packages

    assert missing_packages("s3") == []  # boto3 is installed here
    assert missing_packages("not-an-extra") == []


def test_the_installed_console_script_runs(tmp_path: Path) -> None:
    script = Path(sysconfig.get_path("scripts")) / "sygnify"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sygnify.cli"]
    result = subprocess.run(
        [*command, "demo", "--dir", str(tmp_path), "--rows", "1000"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "USD volume by country" in result.stdout


def test_generated_transactions_are_deterministic() -> None:
    assert generate_transactions(100, seed=3).equals(generate_transactions(100, seed=3))
    assert generate_transactions(100).schema["ts"] == pl.Datetime("ms")


def test_a_closed_pipe_ends_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line, as with `| head` after it quits
    try:
        result = subprocess.run(
            [sys.executable, "-m", "sygnify.cli", "plugins"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1
