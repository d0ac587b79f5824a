"""aqa.heads has no import cycle: its modules form a layered graph (dataset and inputs below
training, training below the bench, the report and the CLI), counting imports inside functions
too (a lazy import that closes a cycle still ties the two modules together)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "heads"


def _is_type_checking(node) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree, modules):
    """Sibling modules imported anywhere in ``tree`` except ``if TYPE_CHECKING:`` blocks."""
    out = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking(node):
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            elif node.level == 0 and (node.module or "").startswith("aqa.heads"):
                parts = node.module.split(".")
                names = [parts[2]] if len(parts) > 2 else [a.name for a in node.names]
            else:
                continue
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[2] for a in node.names if a.name.startswith("aqa.heads.")]
        else:
            continue
        out.update(n for n in names if n in modules)
    return out


def import_graph():
    modules = {p.stem for p in PKG.glob("*.py")}
    return {p.stem: _imports(ast.parse(p.read_text()), modules) - {p.stem} for p in PKG.glob("*.py")}


def find_cycle(graph):
    """One cycle as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep, path + [dep])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_find_cycle_sees_a_cycle_through_a_function_level_import():
    tree = ast.parse("def f():\n    from .b import x\n")
    assert _imports(tree, {"a", "b"}) == {"b"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_heads_has_no_import_cycle():
    graph = import_graph()
    assert {"train", "dataset", "report", "bench", "cli"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_cli_and_bench_import_no_library_code_from_the_cli():
    graph = import_graph()
    assert not any("cli" in deps for mod, deps in graph.items()), \
        {m: d for m, d in graph.items() if "cli" in d}
    assert "report" not in graph["bench"] and "bench" not in graph["train"]
