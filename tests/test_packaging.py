"""The folder -> `aqa.*` mapping survives a plain (non-editable) `pip install .`."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_plain_install_maps_folders_into_aqa(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(wheels), str(ROOT)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("aqa_pipeline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for mod in ("aqa/data/cache.py", "aqa/data/labels.py", "aqa/extract/__init__.py",
                "aqa/heads/__init__.py", "aqa/pipelines/__init__.py"):
        assert mod in names, f"{mod} missing from the wheel"
    assert not any(n.startswith(("data/", "heads/", "extract/", "tests/")) for n in names), \
        "a bare top-level package was installed"
    entry = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry[0]).decode()
    for script in ("aqa-extract", "aqa-heads", "aqa-data"):
        assert script in text
    site = tmp_path / "site"
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                           str(site), str(wheel)], capture_output=True, text=True)
    assert inst.returncode == 0, inst.stderr[-2000:]
    code = ("import aqa.data.cache, aqa.data.labels, aqa.extract, aqa.heads, aqa.pipelines;"
            "print(aqa.data.cache.__file__)")
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith(str(site)), out.stdout


def test_editable_install_imports_from_the_tree():
    import aqa.data.cache

    assert Path(aqa.data.cache.__file__).resolve() == ROOT / "data" / "cache.py"


#: the import direction (docs/architecture.md): extract -> data, heads -> data, pipelines -> everything
FORBIDDEN = {"data": ("extract", "heads", "pipelines"), "extract": ("heads", "pipelines"),
             "heads": ("extract", "pipelines")}


def test_import_direction():
    """No module of a stage imports what docs/architecture.md says it must not (absolute ``aqa.x`` imports
    and relative ``..x`` ones), at module level or inside a function."""
    import ast

    bad = []
    for folder, banned in FORBIDDEN.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            depth = len(path.relative_to(ROOT / folder).parts)   # 1: directly in the folder
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    if node.level == 0:
                        names = [node.module or ""]
                    elif node.level == depth + 1:                   # ..x from the folder's top
                        names = [f"aqa.{node.module or ''}"]
                    else:
                        continue
                else:
                    continue
                for name in names:
                    if any(name == f"aqa.{b}" or name.startswith(f"aqa.{b}.") for b in banned):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not bad, "\n".join(bad)
