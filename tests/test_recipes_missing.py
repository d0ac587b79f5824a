"""A recipe whose videos are partly missing does not pass for the published protocol: it stops
before extraction, non-zero, naming the paths it looked for; --allow-missing runs on what is
there and says what it left out."""
from pathlib import Path

import pytest
from click.testing import CliRunner

from aqa.data.labels import LabelRow
from aqa.pipelines.cli import main
from aqa.pipelines.recipes import RECIPES, protocol_gaps

from recipekit import make_benchmark


@pytest.fixture(scope="module")
def aqa7(tmp_path_factory):
    from aqa.data.synthetic import render_dataset

    d = tmp_path_factory.mktemp("synth")
    rows = render_dataset(d, n=12, kind="single", seed=11, n_frames=32, size=(64, 48), progress=False)
    return make_benchmark("aqa7", rows, d, tmp_path_factory.mktemp("bench"))


def _keep_only(videos: Path, keep: set[str]) -> list[Path]:
    """Delete every video file of ``videos`` but the ``keep`` stems; the deleted paths."""
    gone = [p for p in videos.rglob("*") if p.is_file() and not p.name.endswith(".json")
            and p.stem not in keep]
    for p in gone:
        p.unlink()
    return sorted(gone)


def test_missing_videos_fail_before_extraction_with_their_paths(aqa7, tmp_path):
    videos, ann = aqa7
    gone = _keep_only(videos, {"001", "002"})           # diving 01_001 (test), 01_002 (train)
    assert len(gone) == 10
    out = tmp_path / "out"
    args = ["run", "aqa7", str(videos), str(ann), "--out", str(out), "--pose", "file", "--no-backbone"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert "10 of 12 aqa7 videos are missing (expected at " in r.output
    assert str(gone[0]) in r.output and "sync_diving_3m: none of its 6 videos found" in r.output
    assert "cannot be run as published" in r.output and "--allow-missing" in r.output
    listed = (out / "missing_videos.txt").read_text().split()
    assert sorted(map(Path, listed)) == gone
    assert not (out / "feats.h5").exists()                 # stopped before extraction

    _keep_only(videos, {"001"})                             # diving: a test video, no training one
    r = CliRunner().invoke(main, args + ["--allow-missing"])
    assert r.exit_code == 2 and "nothing of the protocol can be run" in r.output, r.output
    assert "diving: empty train or test split (0 train, 1 test videos found)" in r.output


def test_protocol_gaps_name_each_part_left_empty():
    rows = [LabelRow(f"t{i}", float(i), "Suturing", split=f"fold{i % 4}") for i in range(8)]
    present = [r for r in rows if r.split != "fold2"]
    assert protocol_gaps(RECIPES["jigsaws"], rows, rows) == {}
    assert protocol_gaps(RECIPES["jigsaws"], rows, present) == {"Suturing": "no video of fold2 found"}
    split = [LabelRow(f"v{i}", float(i), split="train" if i else "test") for i in range(4)]
    assert protocol_gaps(RECIPES["mtl_aqa"], split, split[1:]) == {
        "all": "empty train or test split (3 train, 0 test videos found)"}
