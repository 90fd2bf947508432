"""MLServer (a real KServe v2 / Open Inference Protocol server) serving a scikit-learn model."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.emulators import ManagedProcess, ensure_venv, free_port, wait_for_http

REQUIREMENTS = ["mlserver", "mlserver-sklearn"]


@dataclass
class MLServer:
    url: str
    model_name: str
    model: Any


def start_mlserver(folder: Path, model: Any, *, name: str = "iris") -> Iterator[MLServer]:
    """Write ``model`` as joblib into a model repository and serve it; yields the server."""
    bin_dir = ensure_venv("mlserver", REQUIREMENTS)
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                "parallel_workers": 0,
            }
        )
    )
    model_dir = folder / name
    model_dir.mkdir(exist_ok=True)
    # joblib in the server's own venv reads plain pickles of sklearn models written here
    with (model_dir / "model.joblib").open("wb") as handle:
        pickle.dump(model, handle)
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": name,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    process = ManagedProcess("mlserver", [str(bin_dir / "mlserver"), "start", str(folder)], cwd=folder)
    url = f"http://127.0.0.1:{http_port}"
    process.wait_ready(
        lambda: wait_for_http(f"{url}/v2/models/{name}/ready", timeout=90, process=process.process)
    )
    try:
        yield MLServer(url, name, model)
    finally:
        process.stop()
