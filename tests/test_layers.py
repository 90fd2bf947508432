"""The layering of ``docs/architecture.md``, checked on every module's imports (parsed, not run).

Every ``import`` under ``sygnify/`` counts: at module level, inside functions, under
``if TYPE_CHECKING:``, and ``importlib.import_module("sygnify...")`` with a literal name.
Each test fails with the full list of violations, one ``file:line: what`` per line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sygnify

PACKAGE_DIR = Path(sygnify.__file__).parent
REPO = PACKAGE_DIR.parent

#: the "Layers" table of docs/architecture.md: top-level module or package -> layer
LAYERS: dict[str, int] = {
    "errors": 0,
    "events": 0,
    "redaction": 0,
    "resilience": 1,
    "config": 1,
    "plugins": 1,
    "io": 1,
    "clouds": 1,
    "_moved": 1,
    "connectors": 2,
    "orchestrators": 2,
    "streams": 2,
    "processing": 3,
    "ml": 3,
    "monitoring": 4,
    "__init__": 5,
    "cli": 5,
    "demo": 5,
    "testing": 5,
}

#: imports between two parts of one layer that the table allows (``resilience`` -> ``config``
#: -> ``plugins``; ``io``, ``clouds`` use all three; the named exceptions of layers 0, 2, 3)
SAME_LAYER: dict[str, set[str]] = {
    "events": {"errors"},
    "config": {"resilience", "_moved"},
    "plugins": {"resilience", "config", "_moved"},
    "io": {"resilience", "config", "plugins", "_moved"},
    "clouds": {"resilience", "config", "plugins", "_moved"},
    "orchestrators": {"connectors"},
    "ml": {"processing"},
}

#: deprecation shims (docs/architecture.md, "Old import paths"): exempt from the layer rules,
#: and no other module may import them
SHIMS: tuple[str, ...] = (
    "sygnify/ml/sources/*.py",
    "sygnify/ml/windows.py",
    "sygnify/monitoring/hooks.py",
    "sygnify/connectors/azure_data_factory.py",
    "sygnify/connectors/formats.py",
    "sygnify/_arrow.py",
    "sygnify/ml/registry.py",
    "sygnify/ml/streaming.py",
    "sygnify/processing/chunked.py",
    "sygnify/processing/fused.py",
    "sygnify/processing/incremental.py",
    "sygnify/processing/parallel.py",
    "sygnify/processing/streaming.py",
)

#: underscore attributes that are public API of the standard library / third-party types
PUBLIC_UNDERSCORE_ATTRIBUTES = frozenset(
    {"_asdict", "_replace", "_fields", "_make", "_field_defaults", "_value_", "_name_", "_missing_"}
)
#: private attributes of third-party objects sygnify has to use (no public spelling exists)
THIRD_PARTY_PRIVATE = frozenset({("KafkaError", "_TRANSPORT"), ("KafkaError", "_ALL_BROKERS_DOWN")})


@dataclass(frozen=True)
class Edge:
    """``importer`` imports sygnify module ``target`` at ``path:line``."""

    importer: str
    target: str
    path: str
    line: int
    runtime: bool  # executed when the importer is imported (module level, not TYPE_CHECKING)
    names: tuple[str, ...] = ()  # the names of a ``from target import ...``
    scope: str = "at module level"  # or "in a function", "under TYPE_CHECKING"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    is_package: bool
    edges: list[Edge] = field(default_factory=list)

    @property
    def rel(self) -> str:
        return self.path.relative_to(REPO).as_posix()

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _collect_modules() -> dict[str, Module]:
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        name, is_package = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        modules[name] = Module(name, path, tree, is_package)
    return modules


MODULES = _collect_modules()


def _known(dotted: str) -> str | None:
    """The longest prefix of ``dotted`` that is a sygnify module."""
    parts = dotted.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, module: Module) -> None:
        self.module = module
        self.depth = 0  # inside a function
        self.type_checking = 0

    @property
    def runtime(self) -> bool:
        return self.depth == 0 and self.type_checking == 0

    def _edge(self, target: str, line: int, names: tuple[str, ...] = ()) -> None:
        scope = "in a function" if self.depth else ("under TYPE_CHECKING" if self.type_checking else "")
        edge = Edge(
            self.module.name, target, self.module.rel, line, self.runtime, names, scope or "at module level"
        )
        self.module.edges.append(edge)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.type_checking += 1
            for child in node.body:
                self.visit(child)
            self.type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            target = _known(alias.name) if alias.name.startswith("sygnify") else None
            if target is not None:
                self._edge(target, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        if not source.startswith("sygnify"):
            return
        plain: list[str] = []
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in MODULES:
                self._edge(submodule, node.lineno)
            else:
                plain.append(alias.name)
        target = _known(source)
        if target is not None and (plain or not node.names):
            self._edge(target, node.lineno, tuple(plain))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if (
            name == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.startswith("sygnify")
        ):
            target = _known(node.args[0].value)
            if target is not None:
                self._edge(target, node.lineno)
        self.generic_visit(node)


for _module in MODULES.values():
    _ImportCollector(_module).visit(_module.tree)


def _top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_shim(module: Module) -> bool:
    return any(module.path.relative_to(REPO).match(pattern) for pattern in SHIMS)


def _may_import(importer: str, target: str) -> bool:
    low, high = _top(target), _top(importer)
    if low == high or LAYERS[high] == max(LAYERS.values()):  # the surface may import everything
        return True
    if LAYERS[low] < LAYERS[high]:
        return True
    return LAYERS[low] == LAYERS[high] and low in SAME_LAYER.get(high, set())


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# -- cycles ---------------------------------------------------------------------------------
def _cycles(runtime_only: bool) -> list[list[Edge]]:
    """One cycle (as its edges) per strongly connected component of the import graph."""
    graph: dict[str, dict[str, Edge]] = {name: {} for name in MODULES}
    for module in MODULES.values():
        for edge in module.edges:
            if (edge.runtime or not runtime_only) and edge.target != module.name:
                graph[module.name].setdefault(edge.target, edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for name in graph:
            if name not in index:
                connect(name)
    finally:
        sys.setrecursionlimit(limit)
    return [_one_cycle(graph, sorted(component)) for component in components]


def _one_cycle(graph: dict[str, dict[str, Edge]], component: list[str]) -> list[Edge]:
    """A shortest cycle through the first module of ``component`` (breadth-first)."""
    members = set(component)
    start = component[0]
    previous: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor, edge in graph[node].items():
                if successor not in members:
                    continue
                if successor == start:
                    path = [edge]
                    while path[0].importer != start:
                        path.insert(0, previous[path[0].importer])
                    return path
                if successor not in previous:
                    previous[successor] = edge
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # unreachable for a real component


def _describe_cycle(cycle: list[Edge]) -> str:
    chain = " -> ".join([cycle[0].importer, *(edge.target for edge in cycle)])
    steps = "; ".join(f"{edge.where} imports {edge.target} {edge.scope}" for edge in cycle)
    return f"{chain}  ({steps})"


def _report(title: str, violations: list[str]) -> str:
    def order(violation: str) -> tuple[str, int, str]:
        parts = violation.split(":", 2)
        if len(parts) == 3 and parts[1].isdigit():
            return parts[0], int(parts[1]), parts[2]
        return violation, 0, ""

    return f"{len(violations)} {title}:\n  " + "\n  ".join(sorted(violations, key=order))


def test_every_module_has_a_layer_and_imports_are_found() -> None:
    edges = [edge for module in MODULES.values() for edge in module.edges]
    assert any(edge.target == "sygnify.errors" and edge.runtime for edge in edges)
    assert any(not edge.runtime for edge in edges)  # imports in functions are seen too
    unplaced = sorted(
        name for name, module in MODULES.items() if _top(name) not in LAYERS and not _is_shim(module)
    )
    assert not unplaced, f"modules in no layer of docs/architecture.md: {unplaced}"


def test_no_import_cycles_at_module_level() -> None:
    cycles = [_describe_cycle(cycle) for cycle in _cycles(runtime_only=True)]
    assert not cycles, _report("import cycles among module-level imports", cycles)


def test_no_import_cycles_counting_imports_in_functions_and_type_checking() -> None:
    cycles = [_describe_cycle(cycle) for cycle in _cycles(runtime_only=False)]
    assert not cycles, _report("import cycles (imports in functions and TYPE_CHECKING included)", cycles)


def test_no_module_imports_a_higher_layer() -> None:
    violations = [
        f"{edge.where}: {module.name} (layer {LAYERS[_top(module.name)]} {_top(module.name)}) imports "
        f"{edge.target} (layer {LAYERS[_top(edge.target)]} {_top(edge.target)}) {edge.scope}"
        for module in MODULES.values()
        if not _is_shim(module)
        for edge in module.edges
        if not _may_import(module.name, edge.target)
    ]
    assert not violations, _report("imports against the layers of docs/architecture.md", violations)


def test_shims_are_shims_and_nothing_imports_them() -> None:
    shims = {name for name, module in MODULES.items() if _is_shim(module)}
    assert len(shims) >= 6
    not_shims = [
        MODULES[name].rel for name in sorted(shims) if "warn_moved" not in MODULES[name].path.read_text()
    ]
    assert not not_shims, f"exempt from the layer rules but not a deprecation shim: {not_shims}"
    violations = [
        f"{edge.where}: imports the deprecated path {edge.target}"
        for module in MODULES.values()
        if module.name not in shims
        for edge in module.edges
        if edge.target in shims
    ]
    assert not violations, _report("imports of deprecated paths", violations)


def _private_imports(module: Module) -> Iterator[str]:
    for edge in module.edges:
        parts = edge.target.split(".")
        for depth, part in enumerate(parts):
            if _private(part):
                owner = ".".join(parts[:depth])  # a private module belongs to its package
                if not (module.name + ".").startswith(owner + "."):
                    yield f"{edge.where}: imports private module {edge.target} from outside {owner}"
                break
        if edge.target != module.name:
            for name in edge.names:
                if _private(name):
                    yield f"{edge.where}: imports private name {name} from {edge.target}"


def _third_party_names(module: Module) -> set[str]:
    names = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith("sygnify"):
                    names.add(alias.asname or alias.name.split(".")[0])
        elif (
            isinstance(node, ast.ImportFrom)
            and not node.level
            and not (node.module or "").startswith("sygnify")
        ):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _private_attributes(module: Module) -> Iterator[str]:
    third_party = _third_party_names(module)
    for node in ast.walk(module.tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        if node.attr in PUBLIC_UNDERSCORE_ATTRIBUTES:
            continue
        base = node.value
        if isinstance(base, ast.Name):
            if base.id in ("self", "cls") or (base.id, node.attr) in THIRD_PARTY_PRIVATE:
                continue
            if base.id in third_party:  # e.g. sys._getframe: not a sygnify object
                continue
        if isinstance(base, ast.Call) and getattr(base.func, "id", None) == "super":
            continue
        yield f"{module.rel}:{node.lineno}: reaches private attribute {ast.unparse(node)}"


def test_no_module_reaches_into_another_modules_private_names() -> None:
    violations = [
        violation
        for module in MODULES.values()
        for check in (_private_imports, _private_attributes)
        for violation in check(module)
    ]
    assert not violations, _report(
        "uses of private names across modules (give them a public seam instead)", violations
    )
