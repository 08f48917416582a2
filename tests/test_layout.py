"""The package's shape: no import cycle among bertcls modules (function-level imports included, since
a lazy import cycle still ties two modules together), and every verb lives in a room named for it."""

from __future__ import annotations

import ast
from pathlib import Path

from bertcls.cli import COMMANDS

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (SRC / "bertcls").rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                # importing a submodule runs its parent package's __init__ first: that is not an edge
                # of this module's own, and bertcls/__init__ only names the lazy public API
                if t in modules and t != "bertcls" and t != name:
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (c := visit(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 20 and graph["bertcls.train.train"], "the graph must see the package"
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_imports_no_room():
    rooms = (
        "bertcls.train",
        "bertcls.pretrain",
        "bertcls.deploy",
        "bertcls.compress",
        "bertcls.analysis",
        "bertcls.classifier",
        "bertcls.cli",
    )
    for m, deps in import_graph().items():
        if m.startswith("bertcls.core"):
            assert not [d for d in deps if d.startswith(rooms)], f"{m} imports a room: {deps}"


def test_each_verb_is_a_module_in_its_room():
    for c in COMMANDS:
        path = SRC / (c.module.replace(".", "/") + ".py")
        assert path.is_file(), c
        words = c.name.replace("-", "_").split()  # self-train -> self_train.py
        assert words[-1] in path.stem or words[0] in path.stem, (c.name, path)
