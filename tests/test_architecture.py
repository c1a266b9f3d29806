"""The package's import graph points one way: down the layers of ``LAYERS``, with no circles (DESIGN.md).

Every ``import``/``from ... import`` of a ``chinchilla`` module counts, at module level or inside a function (a lazy
import is still a dependency), except those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "chinchilla"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` depends on pkg.sub when sub is a module, on pkg itself otherwise
            names = [
                f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        # importing a.b.c runs a/__init__ and a/b/__init__ too, but those edges are the package's, not this module's
        graph[name] = {target for target in _imports(path, modules) if target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_detects_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_circles():
    graph = import_graph()
    assert "chinchilla.train" in graph and "chinchilla.step" in graph["chinchilla.train"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


# The layers, bottom first: a module may import its own layer's modules and lower ones, never a higher layer's.
# A module belongs to the layer of the longest prefix listed; entry points (``__main__`` modules) are the CLI's.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation: files, constants, configuration, devices",
        (
            "chinchilla",
            "chinchilla.paper",
            "chinchilla.runfiles",
            "chinchilla.runlock",
            "chinchilla.interrupts",
            "chinchilla.jax_cache",
            "chinchilla.accelerators",
            "chinchilla.config",
            "chinchilla.schedule",
            "chinchilla.sharding",
            "chinchilla.checkpoint",
            "chinchilla.chunked_loss",
        ),
    ),
    ("accounting and fitting", ("chinchilla.flops", "chinchilla.zoo", "chinchilla.train_config", "chinchilla.fit")),
    (
        "the training step and its inputs",
        (
            "chinchilla.attention",
            "chinchilla.model",
            "chinchilla.step",
            "chinchilla.memory",
            "chinchilla.metrics",
            "chinchilla.data",
        ),
    ),
    ("one training run", ("chinchilla.train",)),
    ("sweeps of runs", ("chinchilla.sweep",)),
    ("a sweep's analysis", ("chinchilla.analysis",)),
    ("presets", ("chinchilla.preset", "chinchilla.presets")),
    ("the main job and studies", ("chinchilla.reproduce", "chinchilla.studies")),
    ("the command line", ("chinchilla.cli",)),
)


def layer_of(module: str) -> int:
    if module.endswith(".__main__"):
        return len(LAYERS) - 1
    best, level = "", None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, level = prefix, index
    if level is None:
        raise KeyError(f"{module} is in no layer: add it to LAYERS in tests/test_architecture.py")
    return level


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]


def test_upward_imports_are_found():
    assert upward_imports({"chinchilla.fit.parametric": {"chinchilla.sweep.results"}}) == [
        "chinchilla.fit.parametric (accounting and fitting) imports chinchilla.sweep.results (sweeps of runs)"
    ]
    assert upward_imports({"chinchilla.cli.fit": {"chinchilla.fit.parametric"}}) == []
    assert layer_of("chinchilla.data.__main__") == len(LAYERS) - 1


def test_every_module_has_a_layer_and_no_import_points_up():
    graph = import_graph()
    for module in graph:
        layer_of(module)
    assert upward_imports(graph) == []
