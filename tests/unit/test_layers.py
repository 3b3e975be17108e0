"""The import graph: layers that import one way, no cycles, Prefect kept out of the lower
layers. Read with grimp from the package as it installs (top-level folders mapped under
`cronium_prefect`, as pyproject.toml's package-dir maps them)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUBPACKAGE_FOLDERS = ["flows", "blocks", "executors", "runtime_helpers", "dashboard", "examples"]

# Top first: a module may import its own layer and the layers below it, never above.
LAYERS = [
    "cli",
    "dashboard",
    "service",  # the HTTP front door and the store of users, tokens and audit
    "flows",
    "blocks",
    "prefect_adapter",  # every non-public Prefect name: test_prefect_adapter.py
    "executors",
    "runtime_helpers",
    "examples",  # data (the example events) and the path to it
    "model",
]
# Entry points nobody inside imports: the package's public facade (its lazy `run_event`
# reaches into flows) and Prefect's collection entry point.
FACADES = {"cronium_prefect", "cronium_prefect.collection"}
PREFECT = ("prefect", "prefect_docker")
# The one Prefect import the model keeps: Prefect's own cron and interval schedule types
# validate `schedule:`, so an event accepts exactly what Prefect's scheduler runs.
MODEL_MAY_IMPORT_PREFECT = {"cronium_prefect.event"}

_READ = """
import json, grimp
g = grimp.build_graph("cronium_prefect", include_external_packages=True, cache_dir=None)
print(json.dumps({
    m: sorted(g.find_modules_directly_imported_by(m))
    for m in g.modules if m.startswith("cronium_prefect")
}))
"""


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> dict[str, list[str]]:
    """Module -> the modules it imports (internal, and external packages by top name)."""
    package = tmp_path_factory.mktemp("layout") / "cronium_prefect"
    package.mkdir()
    for entry in (ROOT / "core").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for folder in SUBPACKAGE_FOLDERS:
        (package / folder).symlink_to(ROOT / folder)
    # A fresh interpreter with the layout first on the path: this one has the package
    # imported from its editable install, which maps only `core/` under the name.
    env = {**os.environ, "PYTHONPATH": str(package.parent)}
    done = subprocess.run(
        [sys.executable, "-c", _READ], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert len(found) > 50, sorted(found)  # the whole package was read, not a part
    return found


def layer(module: str) -> str:
    part = module.split(".")[1] if module.count(".") else ""
    return part if part in LAYERS else "model"


def test_layers_import_one_way(graph):
    upward = [
        f"{module} ({layer(module)}) imports {imported} ({layer(imported)})"
        for module, imports in graph.items()
        if module not in FACADES
        for imported in imports
        if imported.startswith("cronium_prefect")
        and imported not in FACADES
        and LAYERS.index(layer(imported)) < LAYERS.index(layer(module))
    ]
    assert upward == []


def test_no_module_imports_the_facades(graph):
    assert [
        f"{module} imports {imported}"
        for module, imports in graph.items()
        for imported in imports
        if imported in FACADES and module not in FACADES
    ] == []


def test_no_import_cycles(graph):
    internal = {
        m: [i for i in imports if i in graph and i not in FACADES]
        for m, imports in graph.items()
        if m not in FACADES
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in internal[module]:
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(internal):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_model_executors_and_helpers_are_free_of_prefect(graph):
    lower = {"executors", "runtime_helpers", "model"}
    reaching = {
        module: [i for i in imports if i.split(".")[0] in PREFECT]
        for module, imports in graph.items()
        if layer(module) in lower and module not in FACADES | MODEL_MAY_IMPORT_PREFECT
    }
    assert {m: found for m, found in reaching.items() if found} == {}
    # Nor through anything they import: the executors never load Prefect at all.
    seen: set[str] = set()
    todo = [m for m in graph if layer(m) in ("executors", "runtime_helpers")]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += [i for i in graph.get(module, []) if i in graph]
    assert [m for m in sorted(seen) if any(i.split(".")[0] in PREFECT for i in graph[m])] == []


def test_a_layer_the_rules_do_not_know_fails_loudly(graph):
    """A new top-level folder must be given a layer here, not fall into the model."""
    folders = {p.name for p in (ROOT / "core").iterdir() if p.is_dir() and p.name != "__pycache__"}
    folders |= set(SUBPACKAGE_FOLDERS)
    assert folders <= set(LAYERS), folders - set(LAYERS)


# Non-public Prefect: modules, a keyword and attributes that only the adapter may use.
PRIVATE_MODULES = (
    "prefect._internal",
    "prefect.server",
    "prefect.flow_engine",
    "prefect.utilities",
)
PRIVATE_KEYWORDS = {"_sync"}
PRIVATE_ATTRIBUTES = {"_runs_task_group", "_work_pool", "_logger", "_sync"}


def test_non_public_prefect_is_used_only_in_the_adapter():
    found = []
    folders = [ROOT / "core", *(ROOT / f for f in SUBPACKAGE_FOLDERS)]
    for path in sorted(p for folder in folders for p in folder.rglob("*.py")):
        if path.name == "prefect_adapter.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PRIVATE_MODULES):
                found.append(f"{where} from {node.module}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prefect"):
                found += [f"{where} {a.name}" for a in node.names if a.name.startswith("_")]
            elif isinstance(node, ast.Import):
                found += [
                    f"{where} import {a.name}"
                    for a in node.names
                    if a.name.startswith(PRIVATE_MODULES)
                ]
            elif isinstance(node, ast.keyword) and node.arg in PRIVATE_KEYWORDS:
                found.append(f"{where} {node.arg}=")
            elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES:
                found.append(f"{where} .{node.attr}")
    assert found == []
