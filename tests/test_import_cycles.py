"""No import cycle among the package's modules, counting the imports inside functions too (a cycle
there works only as long as nobody moves the import, and it shows two modules that should be
one, or a third that both should import)."""
import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("data", "extract", "heads", "pipelines")



def _modules() -> dict[str, Path]:
    mods = {}
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(["aqa", *parts])] = path
    return mods


def _imports(tree: ast.AST):
    """Import nodes that run (those under ``if TYPE_CHECKING:`` do not)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


@functools.lru_cache(maxsize=1)
def import_graph() -> dict[str, set[str]]:
    """module -> the aqa modules it imports (module level and inside functions). ``from P import x``
    imports the module ``P.x`` when there is one, else ``P``; a module's parent packages, which
    Python also runs, are left out (``pkg/__init__`` importing ``pkg.sub`` is no cycle)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    parent = ".".join(base + ([node.module] if node.module else []))
                else:
                    parent = node.module or ""
                targets = [f"{parent}.{a.name}" if f"{parent}.{a.name}" in mods else parent
                           for a in node.names]
            graph[mod] |= {t for t in targets if t in mods and t != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.mark.slow
def test_graph_sees_module_and_function_level_and_relative_imports():
    g = import_graph()
    assert "aqa.data.registry" in g["aqa.extract.registry"]           # module level, absolute
    assert "aqa.extract.registry" in g["aqa.extract.sampling"]         # module level, relative
    assert "aqa.extract.weights" in g["aqa.extract.cli"]               # inside a function
    assert "aqa.extract.pose.base" in g["aqa.extract.pose"]            # a package's __init__


def test_cycle_finder_finds_a_cycle_through_function_imports():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(g) == [{"a", "b", "c"}]


@pytest.mark.slow
def test_no_import_cycle():
    found = [sorted(c) for c in cycles(import_graph())]
    assert not found, f"import cycles: {found}"
