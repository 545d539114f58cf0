"""The package's import graph: no cycles, imports at module top, light commands stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "weaksup"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The package module an imported name lives in (a.b.c -> a.b when c is a symbol)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([base] if base else []))
        names = [f"{base}.{a.name}" for a in node.names] + [base]
    else:
        return []
    hits = {_resolve(n) for n in names}
    return sorted(h for h in hits if h and h != module and h.startswith("weaksup") and not module.startswith(h + "."))


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, int]]]:
    """(module -> modules it imports at run time, [(module, line) of imports inside functions])."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    inner: list[tuple[str, int]] = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.If):  # `if TYPE_CHECKING:` and `if __name__ == "__main__":`
                continue
            graph[module].update(_targets(node, module))
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    found = _targets(node, module)
                    if found:
                        graph[module].update(found)
                        inner.append((module, node.lineno))
    return graph, inner


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a path that returns to its start, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if not state.get(v):
                found = visit(v)
                if found:
                    return found
        stack.pop()
        state[u] = 2
        return None

    for m in sorted(graph):
        if not state.get(m):
            found = visit(m)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle():
    graph, _ = import_graph()
    assert len(graph) > 50 and graph["weaksup.train"] >= {"weaksup.train_lib", "weaksup.evaluators"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_of_the_package_inside_functions_say_why():
    """A lazy import is for a command's start-up time, and its line above says so."""
    _, inner = import_graph()
    unexplained = []
    for module, line in inner:
        above = MODULES[module].read_text(encoding="utf-8").splitlines()[line - 2].strip()
        if not above.startswith("#"):
            unexplained.append(f"{MODULES[module]}:{line}")
    assert not unexplained, f"in-function imports without a reason on the line above: {unexplained}"


@pytest.mark.parametrize("module", ["weaksup.hashtags.cli", "weaksup.hashtags.vocab_cli", "weaksup.corpus.cli",
                                    "weaksup.wordnet"])
def test_commands_without_models_do_not_import_jax(module):
    code = f"import sys, {module}; print(sorted(m for m in ('jax', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_training_commands_do_not_import_nltk():
    """nltk's package import costs ~1.5 s (scipy.stats, scikit-learn); the trainer, evaluator and
    demo reach the resolver only through the vocabulary, and never stem a gloss."""
    code = "import sys, weaksup.train, weaksup.demo, weaksup.evaluators.cli; print('nltk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
