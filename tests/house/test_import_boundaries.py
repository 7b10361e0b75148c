"""The house rules of the imports: the library never imports the sweeps, the engine loads neither torch nor any
audit's code, and no module-level import cycle exists between the project's modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("radio", "sweeps", "stagestore")


def _loaded_after(code: str) -> set[str]:
    """Top-level package names in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_importing_every_radio_module_loads_no_sweeps_module() -> None:
    code = (
        "import importlib, pkgutil, radio\n"
        "for m in pkgutil.walk_packages(radio.__path__, 'radio.'):\n"
        "    importlib.import_module(m.name)"
    )
    loaded = _loaded_after(code)
    assert "radio" in loaded and "torch" in loaded  # the probe really imported the library
    assert "sweeps" not in loaded


def test_the_engine_loads_neither_torch_nor_radio() -> None:
    loaded = _loaded_after("import sweeps.engine, stagestore")
    assert "sweeps" in loaded
    assert not loaded & {"torch", "radio", "ray", "mlflow"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """Project modules imported when `name` is imported: statements at module level (and under module-level
    `if` / `try`, except `if TYPE_CHECKING:`), resolved to the most specific known module."""
    found: set[str] = set()
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If):
            if not _is_type_checking(node):
                stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in modules}


def test_no_module_level_import_cycle() -> None:
    files = {_module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    modules = set(files)
    graph = {
        name: _module_level_imports(ast.parse(path.read_text()), name, path.name == "__init__.py", modules)
        for name, path in files.items()
    }
    # A module importing its own ancestor package (`from radio.detect import x` inside radio.detect.actor) is
    # Python's normal initialisation order, not a cycle: the package is already being imported.
    for name, targets in graph.items():
        targets.difference_update({t for t in targets if name.startswith(f"{t}.")})
    cycles = _cycles(graph)
    assert not cycles, f"module-level import cycles: {cycles}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), and self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
