"""The tree is the architecture: each internal package imports only the layers below it, and no module
imports itself back through another (no cycles), whether the import is at the top or inside a function.

Layers, bottom-up (each package's docstring says the same): ``_core`` ← ``_spec`` ← ``_web`` ← ``_engine`` ←
``_host`` ← the public packages (``progress``, ``testing``, ``local``, ``report``, then ``evaluation``, then
``cli``). The package root (``litellm_fusion/__init__.py``) is the facade and may name anything. A package's
lazy ``_EXPORTS`` map counts as its imports. ``benchmarks/`` and ``scripts/`` are tools outside the package:
they may import the internals they measure or probe.
"""

from __future__ import annotations

import ast
from pathlib import Path

import litellm_fusion

PACKAGE = Path(litellm_fusion.__file__).resolve().parent
LAYERS = {
    "_core": 0,
    "_spec": 1,
    "_web": 2,
    "_engine": 3,
    "_host": 4,
    "testing": 5,
    "progress": 5,
    "local": 5,
    "report": 5,
    "evaluation": 6,
    "cli": 7,
    "__main__": 8,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``litellm_fusion`` module this file imports, relative imports resolved, at any depth in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "_EXPORTS" for target in node.targets):
            # A package's lazy exports ({"name": "module"}) are imports made by importlib on first use.
            assert isinstance(node.value, ast.Dict)
            found.update(f"{package}.{value.value}" for value in node.value.values if isinstance(value, ast.Constant))
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("litellm_fusion"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("litellm_fusion"):
                continue
            for alias in node.names:  # "from pkg import module" imports the module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found - {name}


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(path) for path in FILES}
GRAPH = {module_name(path): imports_of(path) for path in FILES}


def layer_of(module: str) -> tuple[str, int] | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the facade
    return parts[1], LAYERS[parts[1]]


def test_every_package_has_a_layer():
    packages = {module.split(".")[1] for module in MODULES if "." in module}
    assert packages <= set(LAYERS), f"a new top-level package needs a layer in LAYERS: {sorted(packages - set(LAYERS))}"


def test_imports_point_down():
    upward = []
    for module, targets in GRAPH.items():
        here = layer_of(module)
        if here is None:
            continue
        for target in targets:
            there = layer_of(target)
            if there is None:  # the facade: only the public packages above the internals may use it
                if here[1] <= LAYERS["_host"]:
                    upward.append(f"{module} -> {target} (the facade)")
            elif there[0] != here[0] and there[1] >= here[1]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that do not point down:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(GRAPH.get(module, ())):
            if target in path:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in done:
                visit(target, [*path, target])
        done.add(module)

    done: set[str] = set()
    for module in sorted(GRAPH):
        if module not in done:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))
