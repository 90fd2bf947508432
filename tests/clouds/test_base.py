"""What the clouds share: Retry-After parsing, renamed options, and the layer rules of the package."""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from sygnify.clouds.aws import AwsCredentials
from sygnify.clouds.base import retry_after
from sygnify.ml.backends.sagemaker import SageMakerConfig

CLOUDS = Path(__file__).resolve().parents[2] / "sygnify" / "clouds"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ms-retry-after-ms": "250"}, 0.25),
        ({"x-ms-retry-after-ms": "250", "Retry-After": "9"}, 0.25),  # milliseconds are the precise one
        ({"Retry-After": "Wed, 01 Jan 2025 00:00:30 GMT"}, 30.0),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"retry-after-ms": "x", "Retry-After": "2"}, 2.0),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_reads_every_header_azure_aws_and_google_send(
    headers: dict[str, str] | None, seconds: float | None
) -> None:
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert retry_after(headers, now=now) == seconds


def test_a_renamed_option_warns_and_means_the_same() -> None:
    with pytest.warns(DeprecationWarning, match="'aws_access_key_id' is deprecated, use 'access_key_id'"):
        old = SageMakerConfig(endpoint_name="ep", aws_access_key_id="AKIA", secret_access_key="s")
    assert old.access_key_id == "AKIA"
    assert old.secret_access_key is not None
    assert old.secret_access_key.get_secret_value() == "s"


def test_old_and_new_name_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="old name of access_key_id"):
        SageMakerConfig(endpoint_name="ep", aws_access_key_id="A", access_key_id="B", secret_access_key="s")


def test_new_names_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AwsCredentials(access_key_id="A", secret_access_key="s")
        SageMakerConfig(endpoint_name="ep", access_key_id="A", secret_access_key="s")


def _sygnify_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sygnify"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("sygnify"))
    return names


def test_clouds_import_only_errors_config_resilience_and_each_other() -> None:
    allowed = ("sygnify.errors", "sygnify.config", "sygnify.resilience", "sygnify.clouds")
    found = {path.name: _sygnify_imports(path) for path in sorted(CLOUDS.glob("*.py"))}
    assert set(found) == {"__init__.py", "aws.py", "azure.py", "base.py", "gcp.py"}
    wrong = {name: sorted(i for i in imports if not i.startswith(allowed)) for name, imports in found.items()}
    assert not any(wrong.values()), wrong


def test_each_cloud_module_imports_without_its_sdk() -> None:
    # None in sys.modules makes an import fail as on an install without the cloud extras.
    script = """
import sys
SDKS = ("boto3", "botocore", "azure", "google")
sys.modules.update(dict.fromkeys(SDKS))
from sygnify.clouds import aws, azure, gcp
aws.AwsCredentials(access_key_id="A", secret_access_key="s")
azure.AzureCredentials(tenant_id="t", client_id="c", client_secret="s")
gcp.GcpCredentials(access_token="t")
assert azure.translate_azure_error(RuntimeError("x"), "m", None) is None
assert gcp.translate_gcp_error(RuntimeError("x"), "m", None) is None
print("no SDK needed:", sorted(m for m in sys.modules if m.split(".")[0] in SDKS and sys.modules[m]))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=CLOUDS.parents[1],
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "no SDK needed: []" in result.stdout
