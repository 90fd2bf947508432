"""A third-party plugin package tests itself with the shipped kit, in its own pytest run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sygnify

PLUGIN = Path(__file__).parent.parent / "fixtures" / "example_plugin"


def test_the_example_plugin_passes_the_connector_kit_in_its_own_test_run() -> None:
    repo = Path(sygnify.__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN), str(repo)])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--rootdir",
            str(PLUGIN),
            "-c",
            str(PLUGIN / "pyproject.toml"),
        ],
        cwd=PLUGIN,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "10 passed" in result.stdout, result.stdout


def test_the_example_plugin_uses_only_public_sygnify_names() -> None:
    import ast

    for path in PLUGIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sygnify"):
                module = node.module or ""
                assert not any(part.startswith("_") for part in module.split(".")), f"{path}: {module}"
                assert not any(alias.name.startswith("_") for alias in node.names), f"{path}: {module}"
