"""Every ``from aqa... import name`` in benchmarks/ names something that exists (the scripts run
for hours, and a renamed helper should fail here, not an hour into a run)."""
import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _aqa_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aqa"):
            for alias in node.names:
                yield node.lineno, node.module, alias.name


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")))
def test_benchmark_imports_resolve(script):
    missing = []
    for line, module, name in _aqa_imports(ROOT / "benchmarks" / script):
        mod = importlib.import_module(module)
        if not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"line {line}: from {module} import {name}")
    assert not missing, missing
