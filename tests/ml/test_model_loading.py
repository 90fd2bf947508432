"""Loading model files safely: ``trusted`` is a real bool, torch is new enough, missing runtimes are named."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from sklearn.linear_model import LogisticRegression

from sygnify.config import load_config_file
from sygnify.errors import ConfigurationError, PluginNotFoundError
from sygnify.ml import RealTimeML
from sygnify.ml.backends.sklearn import load_sklearn_model
from tests.ml.conftest import FEATURES

REPO = Path(__file__).resolve().parents[2]


class _RunsCode:
    """A pickle that, when loaded, creates ``marker``: proof that loading ran its code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_RunsCode(marker)))
    return path, marker


NOT_BOOLS = ["false", "true", "False", "0", "no", 0, 1, None, 1.0]


@pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
def test_trusted_must_be_a_real_bool(value: Any, hostile: tuple[Path, Path], ml: RealTimeML) -> None:
    path, marker = hostile
    kind = type(value).__name__
    with pytest.raises(ConfigurationError, match=rf"trusted: must be True or False, got {kind}"):
        ml.register("m", backend="sklearn", path=str(path), features=FEATURES, trusted=value)
    with pytest.raises(ConfigurationError, match=rf"trusted: must be True or False, got {kind}"):
        ml.register("t", backend="torch", path=str(path), features=FEATURES, trusted=value)
    with pytest.raises(ConfigurationError, match=rf"^trusted must be True or False, got {kind}"):
        load_sklearn_model(path, trusted=value)
    assert not marker.exists()


def test_trusted_false_in_a_config_file_is_refused(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    path, marker = hostile
    config = tmp_path / "sygnify.toml"
    config.write_text(f'[models.m]\nbackend = "sklearn"\npath = "{path}"\ntrusted = "false"\n')
    with pytest.raises(ConfigurationError, match="trusted: must be True or False, got str"):
        RealTimeML(config_file=config).register("m")
    assert not marker.exists()


def test_the_hostile_pickle_does_run_when_trusted(hostile: tuple[Path, Path], ml: RealTimeML) -> None:
    # the refusals above are meaningful: this file does run code once trusted
    path, marker = hostile
    with pytest.raises(ConfigurationError, match="no predict"):
        ml.register("m", backend="sklearn", path=str(path), features=FEATURES, trusted=True)
    assert marker.exists()


def test_state_dicts_need_torch_2_6(tmp_path: Path, ml: RealTimeML, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(2, 1).state_dict(), path)
    options: dict[str, Any] = {
        "backend": "torch",
        "path": str(path),
        "module_factory": lambda: torch.nn.Linear(2, 1),
        "features": ["a", "b"],
        "device": "cpu",
    }
    ml.register("new", **options)  # the installed torch is new enough
    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")
    with pytest.raises(ConfigurationError, match=r"torch 2\.5\.1\+cpu .*CVE-2025-32434.*torch>=2\.6"):
        ml.register("old", **options)
    ml.register("old", trusted=True, **options)  # a file the caller produced


def test_the_torch_extra_requires_a_fixed_release() -> None:
    pyproject = load_config_file(REPO / "pyproject.toml")  # any TOML file
    assert pyproject["project"]["optional-dependencies"]["torch"] == ["torch>=2.6"]


# Blocking a top-level name makes importing it raise ImportError, as if its extra were missing;
# each backend is tried with only its own extra's packages blocked.
MISSING = """
import sys
from sygnify.errors import PluginNotFoundError
from sygnify.ml import RealTimeML
ml = RealTimeML()
for backend, blocked, options in {cases!r}:
    for name in blocked:
        sys.modules[name] = None
    try:
        ml.register(backend, backend=backend, features=["a"], **options)
    except PluginNotFoundError as exc:
        print(backend, "|", exc.extra, "|", exc)
    except BaseException as exc:
        print(backend, "| RAW", type(exc).__name__, exc)
    for name in blocked:
        del sys.modules[name]
"""


def test_a_backend_without_its_runtime_names_the_extra(
    tmp_path: Path, classifier: LogisticRegression
) -> None:
    (tmp_path / "m.onnx").write_bytes(b"not read: onnxruntime is missing")
    (tmp_path / "m.pt").write_bytes(b"not read: torch is missing")
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(classifier))  # unpickling needs scikit-learn
    cases = [
        ("torch", ["torch"], {"path": str(tmp_path / "m.pt")}),
        ("onnx", ["onnxruntime"], {"path": str(tmp_path / "m.onnx")}),
        ("sklearn", ["sklearn", "joblib"], {"path": str(tmp_path / "m.pkl"), "trusted": True}),
        ("tfserving", ["httpx"], {"url": "http://tfs.invalid:8501"}),
        ("sagemaker", ["boto3", "botocore"], {"endpoint_name": "e", "region": "us-east-1"}),
    ]
    script = MISSING.format(cases=cases)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" | ", 1) for line in result.stdout.splitlines())
    expected = {
        "torch": ("torch", "torch"),
        "onnx": ("onnx", "onnxruntime"),
        "sklearn": ("sklearn", "sklearn.linear_model"),  # what the pickled class lives in
        "tfserving": ("serving", "httpx"),
        "sagemaker": ("sagemaker", "boto3"),
    }
    assert set(lines) == set(expected), result.stdout
    for backend, (extra, package) in expected.items():
        # a model file is named by its path: that is what needs the package
        model = str(tmp_path / "m.pkl") if backend == "sklearn" else backend
        assert lines[backend] == (
            f"{extra} | {backend} model {model!r} needs {package!r}, which is not installed: "
            f"pip install 'sygnify[{extra}]'"
        ), lines[backend]


def test_the_missing_runtime_error_is_typed_in_process(
    monkeypatch: pytest.MonkeyPatch, ml: RealTimeML
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(PluginNotFoundError, match=r"pip install 'sygnify\[torch\]'") as caught:
        ml.register("m", backend="torch", path="m.pt", features=["a"])
    assert caught.value.extra == "torch"
    assert isinstance(caught.value.__cause__, ImportError)
