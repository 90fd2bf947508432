"""``pip install "sygnify[torch]"`` alone serves a torch module and saved weights.

In the ``torch``-only session (``SYGNIFY_EXTRA_ONLY=torch``: sygnify[torch], the CPU build of
torch and pytest, nothing else) it also checks that no other extra's packages are there.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import torch

from sygnify.ml import RealTimeML
from tests.extras._only import check_alone, only_extra


@pytest.mark.skipif(only_extra() != "torch", reason="only in the torch-only environment")
def test_the_environment_holds_the_torch_extra_alone() -> None:
    check_alone("torch")


def test_register_a_module_and_its_weights_and_predict_with_the_torch_extra(tmp_path: Path) -> None:
    module = torch.nn.Linear(2, 1)
    with torch.no_grad():
        module.weight.copy_(torch.tensor([[2.0, 3.0]]))
        module.bias.fill_(1.0)
    weights = tmp_path / "linear.pt"
    torch.save(module.state_dict(), weights)
    with RealTimeML(sleep=lambda _: None) as ml:
        ml.register("module", backend="torch", module=module, features=["a", "b"], device="cpu")
        ml.register(
            "weights",
            backend="torch",
            path=str(weights),
            module_factory=lambda: torch.nn.Linear(2, 1),
            features=["a", "b"],
            device="cpu",
        )
        for name in ("module", "weights"):
            scored = ml.predict(name, {"a": [1.0, 0.0], "b": [2.0, -1.0]})
            assert isinstance(scored, pa.Table)
            assert scored.column("prediction").to_pylist() == pytest.approx([9.0, -2.0])
