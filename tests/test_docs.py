"""The documents the code cites are in the repository, and the architecture document names real
registries."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("data", "extract", "heads", "pipelines", "tests", "benchmarks")
           for p in (ROOT / d).rglob("*.py")] + [ROOT / "README.md"]


def test_cited_documents_exist_and_none_is_outside_the_repository():
    cited, outside = set(), []
    for path in SOURCES:
        text = path.read_text()
        cited |= set(re.findall(r"docs/[\w./-]+\.md", text))
        if re.search(r"DESIGN\.md", text) and path != Path(__file__):
            outside.append(str(path.relative_to(ROOT)))
    assert "docs/architecture.md" in cited
    assert not [c for c in cited if not (ROOT / c).is_file()]
    assert not outside, f"cite a file outside the repository: {outside}"


def test_library_code_cites_no_folder_outside_the_repository():
    """The library's docstrings name papers and released files, never the folder a development
    machine keeps them in (tests and benchmarks may read ../shared, and skip without it)."""
    library = [p for d in ("data", "extract", "heads", "pipelines") for p in (ROOT / d).rglob("*.py")]
    cites = [f"{p.relative_to(ROOT)}:{i}" for p in library
             for i, line in enumerate(p.read_text().splitlines(), 1) if "../shared" in line]
    assert len(library) > 50
    assert not cites, f"library code cites ../shared: {cites}"


def test_architecture_names_the_registries_that_exist():
    from aqa.data.registry import load

    text = (ROOT / "docs" / "architecture.md").read_text()
    names = set(re.findall(r"`(aqa\.(?:heads|extract)\.registry\.[A-Z_]+)`", text))
    assert len(names) == 6
    for name in names:
        mod, _, attr = name.rpartition(".")
        assert load(f"{mod}:{attr}") is not None
