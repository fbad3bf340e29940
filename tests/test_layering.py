"""Imports go one way: the runtime never imports the dev tooling, and nothing imports upward.

Rules, checked on every ``import`` statement of every module (module level and inside
functions, so a lazy import counts too):

1. the runtime packages (``services.common``, ``services.ingest``, ``services.scorer``,
   ``services.api``) and ``models`` never import ``services.devtools``;
2. ``services.common`` and ``models`` import no other ``services`` package;
3. ``services.ingest``, ``services.scorer`` and ``services.api`` import only ``services.common``
   and ``models`` of the other packages (never each other);
4. the scorer's state package (``services.scorer.state``) imports no scorer module above it:
   only the record layout, catalogue, detectors, policy and exceptions;
5. inside ``services.scorer``, the module-level imports form no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("services.common", "services.ingest", "services.scorer", "services.api")
STATE_MAY_IMPORT = ("services.scorer.state", "services.scorer.layout", "services.scorer.catalogue",
                    "services.scorer.detectors", "services.scorer.policy", "services.scorer.exceptions")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module_level_only: bool = False) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import submodule`` imports the submodule; ``from module import name``
            # the module
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                base = ROOT / full.replace(".", "/")
                yield full if base.with_suffix(".py").exists() or base.is_dir() else node.module


def _modules(*packages: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in packages:
        for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
            out[_module(path)] = path
    return out


def _within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_runtime_never_imports_the_dev_tooling() -> None:
    bad = [(module, name) for module, path in _modules(*RUNTIME, "models").items()
           for name in _imports(path) if _within(name, "services.devtools")]
    assert bad == []


def test_runtime_packages_import_only_common_and_models() -> None:
    bad = []
    for module, path in _modules(*RUNTIME, "models").items():
        own = next((p for p in (*RUNTIME, "models") if _within(module, p)), "models")
        allowed = (own, "models") if own in ("services.common", "models") else (own, "services.common", "models")
        bad += [(module, name) for name in _imports(path)
                if (_within(name, "services") or _within(name, "models")) and not _within(name, *allowed)
                and name != "services"]
    assert bad == []


def test_the_scorer_state_imports_nothing_above_it() -> None:
    bad = [(module, name) for module, path in _modules("services.scorer.state").items()
           for name in _imports(path) if _within(name, "services.scorer") and name != "services.scorer"
           and not _within(name, *STATE_MAY_IMPORT)]
    assert bad == []


def test_the_scorer_modules_import_no_cycle() -> None:
    modules = _modules("services.scorer")
    graph = {module: {name for name in _imports(path, module_level_only=True) if name in modules and name != module}
             for module, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*trail, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*trail, node])):
                return cycle
        state[node] = 2
        return None

    cycles = [c for m in sorted(graph) if m not in state and (c := visit(m, []))]
    assert cycles == []
