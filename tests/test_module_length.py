"""Modules stay small: one over 600 lines says why at its top (a docstring line "Length: ...")."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("extract", "heads", "data", "pipelines")
MAX_LINES = 600


def test_every_long_module_says_why_it_is_long():
    long_, scanned = {}, 0
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            scanned += 1
            text = path.read_text(encoding="utf-8")
            n = text.count("\n")
            if n > MAX_LINES:
                long_[path.relative_to(ROOT).as_posix()] = ast.get_docstring(ast.parse(text)) or ""
    assert scanned > 20, f"only {scanned} modules found under {PACKAGES}"
    silent = [p for p, doc in long_.items()
              if not any(line.startswith("Length: ") for line in doc.splitlines())]
    assert silent == [], (f"modules over {MAX_LINES} lines without a 'Length:' line in their "
                          f"docstring saying why: {silent}")
