"""The package structure: no import cycles, and imports flow one way through the layers.

Every ``import`` in src/flareseq counts, including those inside functions (a function-level
import hides a cycle from Python's loader, not from a reader).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "flareseq"

# Lowest first: a module may import its own layer and the layers before it, never after.
LAYERS = (
    ("flareseq", "flareseq.errors", "flareseq._scan", "flareseq._lstm"),
    ("flareseq.data",),
    ("flareseq.prep",),
    ("flareseq.models",),
    ("flareseq.evaluation",),
    ("flareseq.training",),
    ("flareseq.reporting",),
    ("flareseq.experiments",),
    ("flareseq.forecasting",),  # forecasts for today's regions, the forecast service
    ("flareseq.cli", "flareseq.demo", "flareseq.__main__"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE_ROOT.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The flareseq modules ``name`` imports (anywhere in its code)."""
    path = MODULES[name]
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from package import module` imports the module
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        else:
            continue
        found.update(t for t in targets if t.split(".")[0] == "flareseq" and t != name)
    return {t if t in MODULES else t for t in found}


def layer_of(name: str) -> int:
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best is not None, f"{name} is in no layer; add its package to LAYERS"
    return best


def test_every_module_is_in_a_layer():
    for name in MODULES:
        layer_of(name)


def test_imports_flow_one_way():
    backwards = sorted(f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
                       for name in MODULES for target in imports_of(name) if layer_of(target) > layer_of(name))
    assert not backwards, "imports against the layers:\n" + "\n".join(backwards)


def test_no_import_cycles():
    graph = {name: {t for t in imports_of(name) if t in MODULES} for name in MODULES}
    # Tarjan's strongly connected components: any component of two or more modules is a cycle
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_function_level_imports(tmp_path):
    """The checks above would pass vacuously if imports inside functions were missed."""
    assert "flareseq.data.store" in imports_of("flareseq.data")  # imported inside load_dataset
