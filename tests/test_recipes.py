"""Every benchmark recipe end to end on synthetic videos laid out as the real releases, read
through the real label formats: labels -> extraction -> bench -> report."""
import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from aqa.pipelines.recipes import RECIPES, run_recipe

from recipekit import make_benchmark, place_on_real_labels

REAL = Path(__file__).resolve().parents[2] / "shared" / "datasets"

FAST_FLOW = {"nscales": 2, "warps": 1, "outer_iterations": 2, "inner_iterations": 5}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from aqa.data.synthetic import render_dataset

    d = tmp_path_factory.mktemp("synth")
    rows = render_dataset(d, n=12, kind="single", seed=11, n_frames=32, size=(64, 48), progress=False)
    return rows, d


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_end_to_end(name, synth, tmp_path):
    rows, d = synth
    videos, ann = make_benchmark(name, rows, d, tmp_path / "bench")
    # one video of the labels is absent: listed, not fatal
    first = sorted(p for p in videos.rglob("*") if p.suffix in (".avi", "") and p.is_dir() is False
                   or (p.is_dir() and any(p.glob("*.jpg"))))[0]
    if first.is_dir():
        import shutil
        shutil.rmtree(first)
    else:
        first.unlink()
    out = tmp_path / "out"
    res = run_recipe(name, videos, ann, out, heads=["c3d-svr", "mlp"], seeds=1, pose="file",
                     backbones=(), flow="tvl1-cpu", flow_options=FAST_FLOW, device="cpu",
                     head_params={"mlp": {"max_iter": 30}}, progress=False, allow_missing=True)
    assert len(res["missing"]) == 1 and not res["failed"]
    assert (out / "missing_videos.txt").read_text() == f"{first}\n"
    bench = res["result"]
    recipe = RECIPES[name]
    assert bench.setup["protocol"] == recipe.protocol
    assert bench.setup["feature"] == "kin_pose+hof_flow"
    expected_actions = {"aqa7": ["diving", "sync_diving_3m"], "jigsaws": ["Suturing"]}.get(name, ["all"])
    assert bench.actions == expected_actions
    for head in ("c3d-svr", "mlp"):
        assert head not in bench.errors, bench.errors
        for a in bench.actions:
            run = bench.runs[(head, a)][0]
            y, p = bench.predictions[(head, a)]
            assert np.isfinite(run["mse"]) and np.isfinite(p).all(), (head, a, p)
            assert -1 <= run["spearman"] <= 1 or np.ptp(p) == 0 or len(y) < 3, (head, a, y, p)
    md = res["paths"]["md"].read_text()
    assert f"# {name}:" in md and "1 missing" in md and "pose: file" in md
    assert "- left out (--allow-missing: the protocol is NOT run as published): 1 missing videos" in md
    setup = json.loads((out / "recipe.json").read_text())
    assert setup["videos_found"] == 11 and setup["recipe"] == name
    # the sampling protocol of the recipe is what the cache was extracted with
    from aqa.data.cache import CacheReader
    with CacheReader(res["cache"]) as r:
        cfg = r.provenance()["config"]
        assert cfg["sampling"] == recipe.sampling
        steps = r.load("kin_pose", part="whole").shape[1]
    assert steps == {"fragments": 9}.get(recipe.sampling, 10)
    # each video's source is recorded in the release's own layout, relative to the video folder
    import h5py
    from aqa.data.datasets import read_dataset, video_relpath
    want = {r.video_id: str(video_relpath(name, r)) for r in read_dataset(name, ann)}
    with h5py.File(res["cache"], "r") as f:
        got = {vid: f["videos"][vid].attrs["source_relpath"] for vid in f["videos"]}
    assert len(got) == 11 and all(want[v] == got[v] for v in got), (want, got)
    dd = "n/a" if name in ("aqa7", "jigsaws") else "yes, to the heads that take it (none of those run)"
    assert f"- difficulty given to heads: {dd}" in md
    sheets = sorted((out / "poses").glob("*.png"))      # one per action, of an extracted video
    assert len(sheets) == len(expected_actions)
    assert all(p.stem in got for p in sheets)
    assert f"- poses drawn on frames, to check person selection by eye: poses/{sheets[0].name}" in md
    if name == "aqa7":  # published figures stand beside ours, per action
        assert "0.6339" in md      # JRG's Whole-Scene baseline (the mlp head), diving
        # c3d-svr ran on weight-free features, not C3D: its published figure is withheld
        assert "0.7902" not in md and "Published figure withheld: c3d-svr" in md


def test_recipe_errors(synth, tmp_path):
    rows, d = synth
    videos, ann = make_benchmark("jigsaws", rows, d, tmp_path / "b")
    with pytest.raises(ValueError, match="unknown recipe"):
        run_recipe("kinetics", videos, ann, tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="none of the 12 jigsaws videos") as e:
        run_recipe("jigsaws", tmp_path / "empty", ann, tmp_path / "o", pose="file", backbones=())
    assert "cut" not in str(e.value)
    _, ann = make_benchmark("mtl_aqa", rows, d, tmp_path / "m")
    with pytest.raises(FileNotFoundError, match=r"none of the 12 mtl_aqa videos .*01_01\); to cut "
                                                r"the release's full videos .* aqa.pipelines cut mtl_aqa"):
        run_recipe("mtl_aqa", tmp_path / "empty", ann, tmp_path / "o", pose="file", backbones=())


def test_recipe_features_follow_the_backbones():
    from aqa.pipelines.recipes import recipe_features

    fams = {"kin_pose", "hof_flow", "i3d_rgb", "i3d_flow", "i3dr50_rgb", "c3d_rgb"}
    assert recipe_features(("i3d",), fams) == ("i3d_rgb", {"jrg": "i3d_rgb+i3d_flow"})
    assert recipe_features(("i3d",), fams - {"i3d_flow"}) == ("i3d_rgb", {})
    assert recipe_features(("i3d-r50",), fams) == ("i3dr50_rgb", {})
    assert recipe_features(("c3d", "i3d-r50"), fams) == ("i3dr50_rgb", {})
    assert recipe_features(("c3d",), fams) == ("c3d_rgb", {})
    assert recipe_features((), fams) == ("kin_pose+hof_flow", {})
    with pytest.raises(RuntimeError, match="none of the backbone features"):
        recipe_features(("i3d-r50",), {"kin_pose", "hof_flow"})
    with pytest.raises(ValueError, match="unknown backbone"):
        recipe_features(("resnet",), fams)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["aqa7", "jigsaws", "unlv_dive", "mtl_aqa"])
def test_recipe_on_the_real_label_files(name, synth, tmp_path):
    """The real annotation files (../shared/datasets) drive the recipe: 12 tiny synthetic videos sit
    at the release paths of real keys, so the real key formats (AQA-7's score x 100 rows, UNLV-Dive's
    numpy uint8 split keys and its one split key without annotation, JIGSAWS' trial names and task
    folds, MTL-AQA's tuple keys and difficulty) flow through labels -> extraction -> bench -> report."""
    ann = REAL / name
    if not ann.is_dir():
        pytest.skip(f"the real {name} annotation files are not at {ann}")
    rows, d = synth
    videos = tmp_path / "videos"
    chosen = place_on_real_labels(name, ann, rows, d, videos)
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_recipe(name, videos, ann, out, heads=["c3d-svr", "mlp"], seeds=1, pose="file",
                         backbones=(), flow="tvl1-cpu", flow_options=FAST_FLOW, device="cpu",
                         head_params={"mlp": {"max_iter": 20, "encoder_dim": 16, "hidden_dim": 8}},
                         progress=False, allow_missing=True)
    assert not res["failed"]
    bench = res["result"]
    with open(out / "labels.csv") as f:
        labels = {r["video_id"]: r for r in csv.DictReader(f)}
    assert set(labels) == {r.video_id for r in chosen}
    for r in chosen:
        assert float(labels[r.video_id]["score"]) == pytest.approx(r.score)
        assert labels[r.video_id]["split"] == r.split
    n_total = {"aqa7": 1106, "jigsaws": 103, "unlv_dive": 369, "mtl_aqa": 1412}[name]
    assert len(res["missing"]) == n_total - 12
    md = res["paths"]["md"].read_text()
    if name == "aqa7":
        from scipy.io import loadmat
        raw = {}
        for s in ("train", "test"):
            for cls, sample, score100 in loadmat(ann / f"consolidated_{s}_list.mat")[f"consolidated_{s}_list"]:
                raw[f"{int(cls):02d}_{int(sample):03d}"] = score100
        for r in chosen:   # the release stores score x 100
            assert float(labels[r.video_id]["score"]) == pytest.approx(raw[r.video_id] / 100)
        assert bench.actions == ["diving", "gym_vault"]
        assert "- difficulty given to heads: n/a" in md
    elif name == "jigsaws":
        assert bench.actions == ["Knot_Tying", "Needle_Passing", "Suturing"]
        assert bench.setup["folds"] == ["fold0", "fold1", "fold2", "fold3"]
        for a in bench.actions:     # each trial is tested once, in its own fold
            y, _ = bench.predictions[("c3d-svr", a)]
            assert len(y) == 4
        assert "4-fold cross-validation" in md
    elif name == "unlv_dive":
        from aqa.data.safepickle import safe_load
        split = safe_load(ann / "train_split_370_4.pkl")
        assert all(isinstance(k, np.uint8) for k in split[0])   # the real key format: uint8 pairs
        assert any("dropping 1 key(s)" in str(w.message) for w in caught)
        assert "01_64" not in labels
    if name in ("unlv_dive", "mtl_aqa"):
        assert all(np.isfinite(float(labels[r.video_id]["difficulty"])) for r in chosen)
        assert "- difficulty given to heads: yes" in md
    # R-l2's range is each action's over the whole release, not over the 12 videos present
    from aqa.data.datasets import read_dataset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        all_rows = read_dataset(name, ann)
    for a in bench.setup["score_ranges"]:
        full = [x.score for x in all_rows if x.action == a]
        assert bench.setup["score_ranges"][a] == [min(full), max(full)]
    assert set(bench.setup["score_ranges"]) == {x.action for x in all_rows}
    for head in ("c3d-svr", "mlp"):
        assert not bench.head_errors(head), bench.errors
        for a in bench.actions:
            assert np.isfinite(bench.runs[(head, a)][0]["mse"])
    # with so few rows no selection is possible, and the report says so
    assert "selection, c3d-svr: NO model selection" in md


@pytest.mark.parametrize("n_frames", [40, 70, 96, 140])
def test_finediving_samples_its_clips_evenly_without_padding(n_frames):
    """Most FineDiving clips are shorter than CoRe's 103 frames: 96 frames over the whole clip."""
    from aqa.extract.sampling import sample
    r = RECIPES["finediving"]
    s = sample(r.sampling, n_frames, **r.sampling_options)
    assert s.clips.shape == (10, 16) and not s.padded.any()
    assert s.clips.min() == 0 and s.clips.max() == n_frames - 1      # first to last frame
    assert len(set(s.clips[:, 0].tolist())) == 10                    # no window repeated


def test_unknown_heads_fail_before_any_work(tmp_path):
    from aqa.pipelines.demo import main as demo
    with pytest.raises(ValueError, match=r"unknown head\(s\) \['foo'\]; known heads: stats-ridge, stats-gbr, jrg"):
        run_recipe("aqa7", tmp_path, tmp_path, tmp_path / "out", heads="mlp,foo")
    assert not (tmp_path / "out").exists()                   # nothing read, nothing written
    with pytest.raises(SystemExit):
        demo(["--out", str(tmp_path / "demo"), "--heads", "foo"])
    with pytest.raises(SystemExit):
        demo(["--out", str(tmp_path / "demo"), "--n", "0"])
    assert not (tmp_path / "demo").exists()


def test_unlv_dive_gives_the_fragment_head_lis_last_fragment():
    """The recipe runs Li et al.'s published setting (Sec. 5.3: the last fragment); -p keys win."""
    from aqa.heads.presets import preset_params
    from aqa.pipelines.recipes import recipe_head_params
    r = RECIPES["unlv_dive"]
    frag, mlp = preset_params("fragment", "paper"), preset_params("mlp", "paper")
    assert recipe_head_params(r, ["fragment", "mlp"], None) == {"fragment": {**frag, "fragments": "last"},
                                                                "mlp": mlp}
    assert recipe_head_params(r, ["fragment", "mlp"], {"fragment": {"fragments": "all", "max_iter": 5},
                                                      "mlp": {"max_iter": 7}}) \
        == {"fragment": {**frag, "fragments": "all", "max_iter": 5}, "mlp": {**mlp, "max_iter": 7}}
    assert recipe_head_params(r, ["c3d-svr"], None) == {}                # only heads that run
    assert recipe_head_params(RECIPES["aqa7"], ["fragment"], None) == {"fragment": frag}


def test_aqa7_gives_aim_its_published_weight_decay():
    """AIM Sec. 5.5 fixes Adam's weight decay to 0.8 on AQA-7 (0.5, the default, elsewhere)."""
    from aqa.heads.aim import AIMRegressor
    from aqa.pipelines.recipes import recipe_head_params
    from aqa.heads.presets import preset_params
    assert AIMRegressor().weight_decay == 0.5
    got = recipe_head_params(RECIPES["aqa7"], ["aim", "jrg"], None)
    assert got == {"aim": {**preset_params("aim", "paper"), "weight_decay": 0.8},
                   "jrg": preset_params("jrg", "paper")}
    assert recipe_head_params(RECIPES["jigsaws"], ["aim"], None) == {"aim": preset_params("aim", "paper")}


@pytest.mark.slow
def test_recipe_views_are_extracted_for_training_videos_only(synth, tmp_path):
    from aqa.data.cache import CacheReader
    from aqa.pipelines.recipes import recipe_views

    assert [v.name for v in recipe_views(["jrg", "fragment", "core", "c3d-svr"], "paper")] == \
        ["flip", "shift1", "shift2", "shift3", "shift4", "shift5"]
    assert recipe_views(["mlp"], None) == []
    with pytest.raises(ValueError, match="expected flip, histeq"):
        run_recipe("unlv_dive", tmp_path, tmp_path, tmp_path / "o", views="mirror")
    rows, d = synth
    videos, ann = make_benchmark("unlv_dive", rows, d, tmp_path / "bench")
    res = run_recipe("unlv_dive", videos, ann, tmp_path / "out", heads=["c3d-svr", "mlp"], seeds=1,
                     pose="file", backbones=(), flow="tvl1-cpu", flow_options=FAST_FLOW,
                     device="cpu", head_params={"mlp": {"max_iter": 30}}, progress=False,
                     views="flip")
    assert not res["failed"] and not res["result"].errors
    with CacheReader(res["cache"]) as r:
        train = sorted(x.video_id for x in r.labels() if x.split == "train")
        assert r.views() == {"flip": train} and len(train) < len(r.video_ids())
    assert res["result"].setup["views"] == {"mlp": ["flip"]}
    assert "augmented views added to the training rows" in res["paths"]["md"].read_text()


@pytest.mark.slow
def test_jigsaws_both_cameras_are_samples_of_their_own(synth, tmp_path):
    import shutil

    from aqa.data.labels import read_labels_csv

    rows, d = synth
    videos, ann = make_benchmark("jigsaws", rows, d, tmp_path / "bench")
    for left in videos.rglob("*_capture1.*"):             # the right camera's recordings
        shutil.copy(left, left.with_name(left.name.replace("_capture1", "_capture2")))
    out = tmp_path / "out"
    res = run_recipe("jigsaws", videos, ann, out, heads=["c3d-svr"], seeds=1, pose="file",
                     backbones=(), flow="tvl1-cpu", flow_options=FAST_FLOW, device="cpu",
                     progress=False, dataset_options={"cameras": "both"})
    assert not res["missing"] and not res["failed"]
    setup = json.loads((out / "recipe.json").read_text())
    assert setup["videos_found"] == 24 and setup["dataset_options"] == {"cameras": "both"}
    labels = {r.video_id: r for r in read_labels_csv(out / "labels.csv")}
    assert len(labels) == 24
    for vid, r in labels.items():
        if not vid.endswith("_capture2"):                 # a trial's two recordings, one fold
            assert labels[vid + "_capture2"].split == r.split
    assert "- annotation reader options: {'cameras': 'both'}" in res["paths"]["md"].read_text()
    from click.testing import CliRunner
    from aqa.pipelines.cli import main as pipelines_cli
    bad = CliRunner().invoke(pipelines_cli, ["run", "aqa7", str(videos), str(ann), "--out",
                                             str(tmp_path / "o"), "--cameras", "both"])
    assert bad.exit_code == 2 and "--cameras is for the jigsaws recipe" in bad.output
