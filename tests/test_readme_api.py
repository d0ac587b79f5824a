"""The README's Python API example runs as written, on a small synthetic set."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: TV-L1 settings for tiny test videos (the example itself uses the defaults)
FAST_FLOW = {"nscales": 2, "warps": 1, "outer_iterations": 2, "inner_iterations": 5}


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_python_api_example_runs(tmp_path, monkeypatch, capsys):
    import aqa.extract
    from aqa.data.synthetic import render_dataset

    render_dataset(tmp_path / "videos", n=12, kind="single", seed=3, n_frames=32, size=(64, 48),
                   progress=False)
    monkeypatch.chdir(tmp_path)
    code = readme_example()
    assert "extract(" in code and "GridSearchCV" in code and "spearman_scorer" in code
    assert len([line for line in code.splitlines() if line.strip()]) <= 14
    # the README's call as written, with TV-L1 settings that suit 64x48 test videos
    code = code.replace("from aqa.extract import extract\n", "")
    namespace = {"extract": lambda *a, **k: aqa.extract.extract(*a, flow_options=FAST_FLOW, **k)}
    exec(compile(code, "README.md", "exec"), namespace)
    search = namespace["search"]
    assert search.best_params_["svr__C"] in (0.1, 1.0, 10.0)
    assert namespace["X"].shape[0] == 9 and namespace["X_test"].shape[0] == 3
    printed = capsys.readouterr().out
    assert "test Spearman:" in printed
