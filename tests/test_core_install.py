"""The core install (no extras) imports sygnify and runs the demo: optional SDKs load lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OPTIONAL_SDKS = [
    "boto3",
    "botocore",
    "azure",
    "google",
    "snowflake",
    "pymongo",
    "adbc_driver_manager",
    "adbc_driver_postgresql",
    "connectorx",
    "dask",
    "distributed",
    "ray",
    "sklearn",
    "onnxruntime",
    "torch",
    "httpx",
    "confluent_kafka",
    "redis",
    "nats",
    "paho",
    "prometheus_client",
    "scipy",
]

# Blocking a top-level name makes `import name` (and `import name.sub`) raise ImportError,
# as if the extra that provides it were not installed.
SCRIPT = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
import sygnify
from sygnify.cli import main
assert main(["demo", "--dir", {root!r}, "--rows", "5000"]) == 0
loaded = sorted(name for name in {blocked!r} if sys.modules.get(name) is not None)
assert not loaded, loaded
from sygnify.errors import PluginNotFoundError
try:
    sygnify.CloudDataConnector(environ={{}}).connect("s3", bucket="b")
except PluginNotFoundError as exc:
    print("MISSING-EXTRA:", exc.extra, exc)
"""


def test_core_install_runs_the_demo_without_any_optional_sdk(tmp_path: Path) -> None:
    script = SCRIPT.format(blocked=OPTIONAL_SDKS, root=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RealTimeML: score sampled payments" in result.stdout
    assert "MISSING-EXTRA: s3 connector 's3' needs a package that is not installed" in result.stdout
    assert "pip install 'sygnify[s3]'" in result.stdout
