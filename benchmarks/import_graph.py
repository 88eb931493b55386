"""The project's import graph: module cycles, package cycles, forbidden imports, function-level imports.

Reads every module's imports with ``ast`` -- top level and inside functions alike, since an import
moved into a function still makes a cycle, only a hidden one -- and prints a JSON summary, also
written to ``benchmarks/results/import_graph.json``::

    python benchmarks/import_graph.py [--out PATH]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("foundry", "provenance", "recipes", "training", "api", "worker")
FORBIDDEN = {
    # importer prefix: prefixes it must not import (the rules pyproject.toml's import contracts enforce)
    "foundry": ("api", "worker", "training", "fastapi", "starlette", "celery", "kombu", "typer", "torch", "diffusers",
                "transformers", "accelerate", "peft"),
    "provenance": ("foundry", "recipes", "api", "worker", "training", "torch", "diffusers", "sqlalchemy"),
    "recipes": ("foundry", "provenance", "api", "worker", "training", "torch", "diffusers", "sqlalchemy"),
    "training": ("foundry", "api", "worker", "sqlalchemy", "celery", "kombu", "fastapi"),
    "api": ("worker", "torch", "diffusers"),
}
EXEMPT = {
    # edges inside foundry: the command line starts workers and runs jobs in-process
    "foundry.cli": ("api", "worker", "training", "typer"),
    "foundry.demo": ("worker", "training"),
}
ALLOWED = {
    # the client half of the queue: task names and ids
    "api": ("worker.queue",),
}


def _matches(name: str, prefixes) -> bool:
    return any(name == prefix or name.startswith(f"{prefix}.") for prefix in prefixes)


def is_forbidden(module: str, target: str) -> bool:
    for prefix, banned in FORBIDDEN.items():
        if not _matches(module, (prefix,)) or not _matches(target, banned) or _matches(target, ALLOWED.get(prefix, ())):
            continue
        if any(_matches(module, (edge,)) and _matches(target, exempt) for edge, exempt in EXEMPT.items()):
            continue
        return True
    return False


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else ():
            modules[module_name(path)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module ``name`` refers to (its nearest existing parent), or None if not ours."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[dict]:
    """Every import in ``path``: target (a project module or an external top-level name), line, function-level."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}".strip(".")
                names = [f"{base}.{alias.name}" for alias in child.names]
            for name in names:
                target = _resolve(name, modules)
                found.append({"target": target or name, "ours": target is not None, "line": child.lineno,
                              "function_level": in_function})
            visit(child, nested)

    visit(tree, False)
    return found


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one node (the cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(10_000)

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(components)


def package_of(module: str) -> str:
    """``foundry.catalog.service`` -> ``foundry.catalog``; top-level modules of a package stay themselves."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "foundry" and len(parts) > 2 else (
        module if parts[0] == "foundry" else parts[0])


def analyse() -> dict:
    modules = discover()
    graph: dict[str, set[str]] = defaultdict(set)
    function_level: set[str] = set()
    forbidden: set[str] = set()
    for module, path in modules.items():
        graph[module]
        for item in imports_of(module, path, modules):
            target = item["target"]
            if item["ours"] and target != module and not module.startswith(f"{target}."):
                graph[module].add(target)
                if item["function_level"]:
                    function_level.add(f"{module}:{item['line']} -> {target}")
            if is_forbidden(module, target):
                forbidden.add(f"{module}:{item['line']} -> {target}")
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        for target in targets:
            if package_of(module) != package_of(target):
                packages[package_of(module)].add(package_of(target))
    module_cycles = strongly_connected(graph)
    package_cycles = strongly_connected(packages)
    return {
        "modules": len(modules),
        "module_cycles": module_cycles,
        "package_cycles": package_cycles,
        "forbidden_imports": sorted(forbidden),
        "function_level_project_imports": len(function_level),
        "function_level_project_import_sites": sorted(function_level),
        "package_graph": {package: sorted(targets) for package, targets in sorted(packages.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "import_graph.json")
    args = parser.parse_args()
    result = analyse()
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    summary = {key: (len(value) if isinstance(value, list | dict) else value) for key, value in result.items()}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
