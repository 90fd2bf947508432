"""No import cycles among ``sygnify.ml.*``, counting every import: module level, inside
functions and under ``TYPE_CHECKING`` alike (a cycle hidden in a function is still a cycle).

The import graph is the one ``tests/test_layers.py`` parses for the whole package; this
file holds ml's own promises on it.
"""

from __future__ import annotations

import ast
import graphlib

from tests.test_layers import MODULES

ML = {name for name in MODULES if name == "sygnify.ml" or name.startswith("sygnify.ml.")}


def _targets(module: str) -> set[str]:
    return {edge.target for edge in MODULES[module].edges}


def test_the_graph_sees_ml_imports() -> None:
    assert {"sygnify.ml.realtime", "sygnify.ml.stream"} <= ML
    assert "sygnify.ml.stream" in _targets("sygnify.ml.realtime")
    # the mode logic and the exactly-once driver are model-free: they live in processing
    assert "sygnify.processing.stream_processor" in _targets("sygnify.ml.stream")
    assert "sygnify.processing.stream_run" in _targets("sygnify.ml.stream")


def test_no_import_cycles_among_ml_modules() -> None:
    # cycles through other layers are tests/test_layers.py's to report
    graph = {name: _targets(name) & ML for name in ML}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        raise AssertionError(f"import cycle among sygnify.ml modules: {' -> '.join(error.args[1])}") from None


def test_streams_do_not_know_realtime_ml() -> None:
    # PredictionStream and StreamProcessor get score/notify callables instead of a RealTimeML,
    # not even under TYPE_CHECKING
    assert "sygnify.ml.realtime" not in _targets("sygnify.ml.stream")
    assert not any(t.startswith("sygnify.ml") for t in _targets("sygnify.processing.stream_processor"))
    assert not any(t.startswith("sygnify.ml") for t in _targets("sygnify.processing.stream_run"))


def test_no_ml_module_uses_the_old_private_seams_of_realtime_ml() -> None:
    offenders = [
        f"{MODULES[name].rel}:{node.lineno} .{node.attr}"
        for name in sorted(ML)
        for node in ast.walk(MODULES[name].tree)
        if isinstance(node, ast.Attribute) and node.attr in ("_score", "_fire")
    ]
    assert offenders == []
