"""benchmarks/heads_vs_baseline.py: no default choice reads the test rows, and its table."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aqa.data.cache import CacheReader, CacheWriter  # noqa: E402
from aqa.data.labels import LabelRow  # noqa: E402
from cachekit import VIDEO_ATTRS, video_arrays  # noqa: E402
from scriptkit import load_benchmark  # noqa: E402


def _benchmark():
    return load_benchmark("heads_vs_baseline")


N, N_TRAIN, N_TEST, SEED = 30, 16, 8, 1
#: a small MLP: still early-stopped on a validation part of its training rows, then refit
MLP_PARAMS = {"max_iter": 30, "encoder_dim": 8, "hidden_dim": 4}


def _cache(path, corrupt: set):
    """Videos whose first feature column drives the score; the ``corrupt`` ones get other
    features and poses and a random score."""
    rng = np.random.default_rng(0)
    bad = np.random.default_rng(99)
    rows = []
    with CacheWriter(path, config={"sampling": "c3d", "pose": "file"}) as w:
        for i in range(N):
            vid = f"v{i:02d}"
            q = rng.uniform(0, 1)
            a = video_arrays(i, S=4, D=6)
            a["features/kin_pose/whole"][:, 0] = q
            a["features/kin_pose/joints"][:, :, 0] = q
            score = 10 + 80 * q
            if vid in corrupt:
                a = {k: (bad.normal(size=v.shape).astype(v.dtype) * 5
                         if k.startswith(("features/", "pose/keypoints")) and v.dtype.kind == "f" else v)
                     for k, v in a.items()}
                score = float(bad.uniform(-100, 100))
            w.write_video(vid, VIDEO_ATTRS, a)
            rows.append(LabelRow(vid, score, "a", math.nan, ""))
        w.write_labels(rows)
    return path


def _run(bench, cache, heads, monkeypatch):
    """Every estimator the bench makes, with each head's selection records."""
    from aqa.heads import registry

    made, real = [], registry.make

    def spy(name, **params):
        est = real(name, **params)
        made.append((name, params, est))
        return est

    monkeypatch.setattr(registry, "make", spy)
    with CacheReader(cache) as r:
        rows = r.labels()
    out = {}
    for head in heads:
        run, sel = bench.run_cell(cache, rows, head, N_TRAIN, N_TEST, SEED, feature="kin_pose",
                                  params={"mlp": MLP_PARAMS} if head == "mlp" else None)
        assert run is not None, sel
        out[head] = (run["spearman"], sel)
    monkeypatch.setattr(registry, "make", real)
    return made, out


@pytest.mark.slow
def test_no_default_choice_reads_the_test_rows(tmp_path, monkeypatch):
    """Corrupting the test rows' features, poses and labels leaves every fitted model (its
    predictions on the training inputs, bit for bit) and every selection record unchanged."""
    from aqa.heads.dataset import build_inputs

    torch.set_num_threads(1)
    bench = _benchmark()
    ids = [f"v{i:02d}" for i in range(N)]
    probe_rows = [LabelRow(v, 0.0, "a", math.nan, "") for v in ids]
    labels = bench.split_rows(probe_rows, N_TRAIN, N_TEST, SEED)
    test = {r.video_id for r in labels if r.split == "test"}
    train = [r.video_id for r in labels if r.split == "train"]
    assert len(test) == N_TEST and len(train) == N_TRAIN and not test & set(train)
    # the test draw is the same for every training size and seed
    assert test == {r.video_id for r in bench.split_rows(probe_rows, 4, N_TEST, 3) if r.split == "test"}

    heads = ["stats-ridge", "stats-gbr", "c3d-svr", "pose-dct-svr", "mlp"]
    clean = _cache(tmp_path / "clean.h5", set())
    dirty = _cache(tmp_path / "dirty.h5", test)
    made_a, out_a = _run(bench, clean, heads, monkeypatch)
    made_b, out_b = _run(bench, dirty, heads, monkeypatch)

    assert [(n, p) for n, p, _ in made_a] == [(n, p) for n, p, _ in made_b]
    assert {n for n, _, _ in made_a} == set(heads)
    assert sum(n == "c3d-svr" for n, _, _ in made_a) == 5          # 4 grid settings + the refit
    for head in heads:
        assert out_a[head][1] == out_b[head][1], head                # the selection records
        assert out_a[head][0] != out_b[head][0], head                 # the corruption is seen
    assert out_a["stats-ridge"][0] > 0.9
    with CacheReader(clean) as r:
        X = {h: build_inputs(h, r, train, "kin_pose") for h in heads}
    for (name, _, a), (_, _, b) in zip(made_a, made_b):
        if not hasattr(a, "predict") or not _is_fitted(a):
            continue
        np.testing.assert_array_equal(a.predict(X[name]), b.predict(X[name]), err_msg=name)


def _is_fitted(est):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted
    try:
        check_is_fitted(est)
        return True
    except NotFittedError:
        return False


def test_the_table_puts_each_head_beside_the_baseline():
    bench = _benchmark()
    results = {("stats-ridge", "single", 80): [(0.8, 1.0), (0.6, 3.0)],
               ("jrg", "single", 80): [(0.9, 10.0, 19.0), (math.nan, math.nan, math.nan)]}
    text = bench.to_markdown(results, ["stats-ridge", "jrg"], ["single"], [80], [0, 1], "setup")
    assert "| stats-ridge | 0.700 ± 0.141 (2.0 s) |" in text
    assert "| jrg | 0.900 (10.0 s, 19.0 CPU s) |" in text
    assert "| jrg | +0.100 |" in text        # seed 0 only: the seed where both ran
    text = bench.to_markdown(results, ["stats-ridge", "jrg"], ["single"], [80], [0, 1], "setup",
                             {("jrg", "single"): ["ValueError: no camera motion"]})
    assert text.endswith("Failed cells:\n\n- jrg on single (1 failed fit(s)): ValueError: no camera motion\n")


@pytest.mark.slow
def test_the_pose_only_cache_holds_the_extractors_kin_pose(tmp_path):
    """--features kin_pose skips decoding and flow, and still writes what aqa-extract writes."""
    from aqa.data.synthetic import render_dataset
    from aqa.extract.config import ExtractConfig
    from aqa.extract.runner import run_extraction
    from aqa.pipelines.demo import DEMO_FLOW

    bench = _benchmark()
    videos = tmp_path / "videos"
    render_dataset(videos, n=2, kind="coordination", seed=0, n_frames=32, size=(64, 48), progress=False)
    run_extraction([videos], tmp_path / "full.h5",
                   ExtractConfig(sampling="jrg", pose="file", persons=1, flow="tvl1-cpu",
                                 flow_options=dict(DEMO_FLOW), short_side=None),
                   labels=videos / "labels.csv", device="cpu", progress=False)
    bench.pose_only_cache(videos, tmp_path / "pose.h5", persons=1)
    with CacheWriter(tmp_path / "pose.h5", config={}):      # another process writing it:
        bench.pose_only_cache(videos, tmp_path / "pose.h5", persons=1)   # complete, so read only
    with CacheReader(tmp_path / "full.h5") as a, CacheReader(tmp_path / "pose.h5") as b:
        ids = a.video_ids()
        assert b.video_ids() == ids and b.families() == ["kin_pose"]
        assert [x.score for x in b.labels()] == [x.score for x in a.labels()]
        for part in ("whole", "joints", "clip_start", "clip_end"):
            np.testing.assert_array_equal(a.load("kin_pose", ids, part), b.load("kin_pose", ids, part))
        np.testing.assert_array_equal(a.pose(ids[0])["keypoints"], b.pose(ids[0])["keypoints"])


def test_finished_cells_are_kept_and_a_torn_line_runs_again(tmp_path):
    bench = _benchmark()
    store = tmp_path / "cells.jsonl"
    bench.save_cell(store, ("jrg", "sync", 80, 2, 80), "kin_pose", (0.912, 33.5, 60.25))
    bench.save_cell(store, ("aim", "sync", 80, 2, 80), "kin_pose", (math.nan, math.nan, math.nan),
                    error="ValueError: no camera")
    bench.save_cell(store, ("jrg", "sync", 80, 3, 80), "kin_pose+hof_flow", (0.5, 1.0, 1.0))
    with open(store, "a") as f:
        f.write('{"head": "mlp", "kind": "sync", "n_tr')          # a stop in the middle of a write
    done = bench.load_cells(store, "kin_pose")
    assert done[("jrg", "sync", 80, 2, 80)] == (0.912, 33.5, 60.25)
    assert math.isnan(done[("aim", "sync", 80, 2, 80)][0])          # a failed cell is not rerun
    assert bench.load_errors(store, "kin_pose") == {("aim", "sync"): ["ValueError: no camera"]}
    assert set(done) == {("jrg", "sync", 80, 2, 80), ("aim", "sync", 80, 2, 80)}  # other features apart
    bench.save_cell(store, ("core", "sync", 80, 2, 80), "kin_pose", (0.6, 1.0, 1.0), {"hidden_dim": 64})
    assert ("core", "sync", 80, 2, 80) not in bench.load_cells(store, "kin_pose")  # other settings apart
    assert bench.load_cells(store, "kin_pose", {"core": {"hidden_dim": 64}})[("core", "sync", 80, 2, 80)][0] == 0.6
    bench.save_cell(store, ("mlp", "sync", 80, 2, 80), "kin_pose", (0.7, 2.0, 3.0))   # after the torn line
    assert bench.load_cells(store, "kin_pose")[("mlp", "sync", 80, 2, 80)] == (0.7, 2.0, 3.0)


def test_temporal_stats_input_parts_are_the_heads_inputs(tmp_path):
    """benchmarks/temporal_stats.py's parts: whole + joints is stats-ridge's input and, for a
    kin_pose, what the 'steps' heads read; whole-scene alone is the part a backbone family
    gives them; the joint average is the mean over the joints."""
    ts = load_benchmark("temporal_stats")
    from aqa.heads.dataset import build_inputs
    cache = _cache(tmp_path / "c.h5", set())
    ids = [f"v{i:02d}" for i in range(4)]
    with CacheReader(cache) as r:
        parts = ts.input_parts(r, ids, "kin_pose")
        np.testing.assert_array_equal(parts["whole-scene only"], r.load("kin_pose", ids, part="whole"))
        for head in ("stats-ridge", "mlp"):
            np.testing.assert_array_equal(parts["whole-scene and joints"],
                                          build_inputs(head, r, ids, "kin_pose"))
        joints = r.load("kin_pose", ids, part="joints")
    assert set(parts) == set(ts.INPUTS)
    np.testing.assert_allclose(parts["joints averaged over joints"], joints.mean(axis=2), rtol=1e-6)
    # CoRe's input of a backbone family: the whole-scene steps averaged over the steps (CoReRegressor._check_X)
    np.testing.assert_allclose(parts["whole-scene mean over steps"],
                               parts["whole-scene only"].mean(axis=1), rtol=1e-6)


def test_temporal_stats_splits_are_seeded_folds_or_draws_of_n_fitting_rows():
    """benchmarks/temporal_stats.py: the folds partition the pool; an --n-fit draw fits n rows and
    validates on all the others; the same seeds give the same splits."""
    ts = load_benchmark("temporal_stats")
    folds = ts.splits(23, None, 5, 3)
    assert len(folds) == 5
    assert sorted(np.concatenate([val for _, val in folds]).tolist()) == list(range(23))
    draws = ts.splits(23, 8, 5, 3)
    assert len(draws) == 3 and len({tuple(fit) for fit, _ in draws}) == 3
    for fit, val in draws:
        assert len(fit) == 8 and sorted(np.concatenate([fit, val]).tolist()) == list(range(23))
    assert all((a[0] == b[0]).all() for a, b in zip(draws, ts.splits(23, 8, 5, 3)))
