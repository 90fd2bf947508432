from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_local_quickstart_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["local_quickstart.py", str(tmp_path)])
    runpy.run_path(str(EXAMPLES / "local_quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "streamed rows: 50000" in out
    assert "top countries" in out


def test_realtime_ml_example_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["realtime_ml_example.py"])
    runpy.run_path(str(EXAMPLES / "realtime_ml_example.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "single:" in out
    assert "model_version" in out
