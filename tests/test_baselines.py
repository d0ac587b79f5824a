"""The classical baselines (stats-ridge, stats-gbr) and their TemporalStats transformer."""
import numpy as np
import pytest
from scipy.fft import dct
from sklearn.utils.estimator_checks import parametrize_with_checks

from aqa.heads import registry
from aqa.heads.baselines import TemporalStats, stats_inputs
from cachekit import learnable_cache


@parametrize_with_checks([TemporalStats(), TemporalStats(stats=("max",), n_dct=2)],
                         expected_failed_checks=lambda e: {})
def test_temporal_stats_is_a_transformer(estimator, check):
    check(estimator)


def test_temporal_stats_values_skip_missing_joints():
    X = np.array([[[1.0, np.nan], [3.0, 2.0], [5.0, np.nan]],
                  [[0.0, np.nan], [0.0, np.nan], [6.0, np.nan]]])     # video 1: column 1 missing
    t = TemporalStats().fit(X)
    Z = t.transform(X)
    assert Z.shape == (2, 8)
    np.testing.assert_allclose(Z[0], [3.0, 2.0, np.std([1, 3, 5]), 0.0, 5.0, 2.0, 1.0, 2.0])
    # a column missing at every step of a video takes the training mean of that statistic
    np.testing.assert_allclose(Z[1], [2.0, 2.0, np.std([0, 0, 6]), 0.0, 6.0, 2.0, 0.0, 2.0])
    assert list(t.get_feature_names_out(["a", "b"])) == [
        "a_mean", "b_mean", "a_std", "b_std", "a_max", "b_max", "a_min", "b_min"]
    with pytest.raises(ValueError, match="infinity|inf"):
        t.transform(np.where(np.isnan(X), np.inf, X))


def test_temporal_stats_dct_is_the_slow_shape_of_each_column():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 8, 2))
    t = TemporalStats(stats=("mean",), n_dct=3).fit(X)
    Z = t.transform(X)
    C = dct(X, type=2, norm="ortho", axis=1)
    np.testing.assert_allclose(Z[:, 2:], C[:, 1:4].reshape(3, -1))
    assert list(t.get_feature_names_out())[2:4] == ["x0_dct1", "x1_dct1"]
    # a time-reversed ramp keeps mean/std/max/min but flips the first DCT coefficient
    ramp = np.linspace(0, 1, 8)[None, :, None]
    both = np.concatenate([ramp, ramp[:, ::-1]])
    assert TemporalStats(stats=("mean", "std", "max", "min")).fit(both).transform(both).std(0).max() == 0
    dz = TemporalStats(stats=(), n_dct=1).fit(both).transform(both)
    assert dz[0, 0] == pytest.approx(-dz[1, 0]) and abs(dz[0, 0]) > 0.5


@pytest.mark.parametrize("bad, msg", [({"stats": ("mean", "median")}, "stats must be"),
                                      ({"n_dct": -1}, "n_dct must be"),
                                      ({"stats": (), "n_dct": 0}, "no statistic")])
def test_temporal_stats_bad_parameters(bad, msg):
    with pytest.raises(ValueError, match=msg):
        TemporalStats(**bad).fit(np.zeros((3, 2, 2)))


def test_temporal_stats_refuses_another_column_count():
    t = TemporalStats().fit(np.zeros((3, 4, 2)))
    with pytest.raises(ValueError, match="3 feature columns per step, but TemporalStats was fitted with 2"):
        t.transform(np.zeros((3, 4, 3)))


def test_baselines_come_first_everywhere():
    assert registry.baselines() == ["stats-ridge", "stats-gbr"]
    assert registry.names()[:2] == ["stats-ridge", "stats-gbr"]
    assert registry.resolve_heads("jrg,stats-gbr,mlp") == ["stats-gbr", "jrg", "mlp"]
    assert all(not registry.get(h).baseline for h in registry.names()[2:])


def test_stats_inputs_put_whole_then_joints_per_step(tmp_path):
    from aqa.data.cache import CacheReader
    path = learnable_cache(tmp_path / "c.h5", n=6)
    with CacheReader(path) as r:
        X = stats_inputs(r, ["v00", "v01"], "kin_pose")
        whole = r.load("kin_pose", ["v00", "v01"], part="whole")
        joints = r.load("kin_pose", ["v00", "v01"], part="joints")
    assert X.shape == (2, 4, 6 + 17 * 6)
    np.testing.assert_array_equal(X[:, :, :6], whole)
    np.testing.assert_array_equal(X[:, :, 6 + 6 * 3: 6 + 6 * 4], joints[:, :, 3])


@pytest.mark.slow
@pytest.mark.parametrize("head", ["stats-ridge", "stats-gbr"])
def test_baseline_learns_and_round_trips_through_a_head_file(tmp_path, head):
    from aqa.data.cache import CacheReader
    from aqa.heads.base import load_head, save_head
    from aqa.heads.dataset import build_inputs
    from aqa.heads.metrics import spearman

    path = learnable_cache(tmp_path / "c.h5", n=80, actions=("a",))
    with CacheReader(path) as r:
        rows = r.labels()
        X = build_inputs(head, r, [x.video_id for x in rows], None)
    y = np.array([x.score for x in rows])
    tr = np.array([x.split == "train" for x in rows])
    est = registry.make(head, random_state=0).fit(X[tr], y[tr])
    pred = est.predict(X[~tr])
    assert spearman(y[~tr], pred) > 0.8
    if head == "stats-ridge":
        alpha = est.named_steps["ridge"].alpha_
        assert 1e-2 <= alpha <= 1e4
    f = save_head(est, tmp_path / "h.pt")
    back = load_head(f, allow_pickle=True)
    np.testing.assert_array_equal(back.predict(X[~tr]), pred)


def test_aqa_heads_list_marks_the_baselines_first():
    import json

    from click.testing import CliRunner

    from aqa.heads.cli import main
    out = CliRunner().invoke(main, ["list"]).output
    assert out.startswith("stats-ridge (baseline): ")
    assert "\nstats-gbr (baseline): " in out and "\njrg: " in out
    items = json.loads(CliRunner().invoke(main, ["list", "--json"]).output)
    assert [i["name"] for i in items if i["baseline"]] == ["stats-ridge", "stats-gbr"]


@pytest.mark.slow
def test_bench_reports_what_the_baselines_chose_on_their_training_rows(tmp_path):
    from aqa.heads.bench import run_bench
    from aqa.heads.report import to_markdown

    cache = learnable_cache(tmp_path / "c.h5", n=40, actions=("a",))
    res = run_bench(cache, heads="stats-gbr,stats-ridge", seeds=2, feature="kin_pose", progress=False)
    assert res.heads == ["stats-ridge", "stats-gbr"] and not res.errors
    ridge = res.setup["selection"]["stats-ridge"]
    assert [r["kind"] for r in ridge["runs"]] == ["internal", "internal"]
    assert ridge["summary"].startswith("alpha chosen by leave-one-out error on the training rows "
                                       "(RidgeCV) in 2 fit(s): ")
    assert res.setup["selection"]["stats-gbr"]["summary"].startswith(
        "trees chosen by early stopping on 20% of the training rows in 2 fit(s): ")
    md = to_markdown(res)
    assert md.index("| stats-ridge |") < md.index("| stats-gbr |")


def test_step_heads_read_kin_pose_joints_and_the_whole_scene_of_other_families(tmp_path):
    """The 'steps' input (MLP, Siamese, CoRe, fragment, the SVRs): a backbone family's whole-scene
    clip feature as the papers read it, hof_flow's whole-frame histogram; kin_pose's whole-scene part
    followed by its joints, where the pose is (aqa.heads.inputs.JOINTS_IN_STEPS); families side by
    side. stats-ridge reads every family's joints."""
    from aqa.data.cache import CacheReader, CacheWriter
    from aqa.heads.dataset import build_inputs
    from aqa.heads.inputs import JOINTS_IN_STEPS, clip_mean_inputs
    from cachekit import VIDEO_ATTRS, video_arrays

    assert JOINTS_IN_STEPS == ("kin_pose",)
    fams = ("kin_pose", "hof_flow", "i3d_rgb")
    path, ids = tmp_path / "c.h5", ["v0", "v1", "v2"]
    with CacheWriter(path, config={"sampling": "c3d", "pose": "file"}) as w:
        for i, vid in enumerate(ids):
            w.write_video(vid, VIDEO_ATTRS, video_arrays(i, families=fams))
    with CacheReader(path) as r:
        whole = {f: r.load(f, ids, part="whole") for f in fams}
        joints = {f: r.load(f, ids, part="joints").reshape(3, 4, 17 * 6) for f in fams}
        for head in ("mlp", "core", "fragment", "siamese", "c3d-svr"):
            for fam in ("i3d_rgb", "hof_flow"):
                np.testing.assert_array_equal(build_inputs(head, r, ids, fam), whole[fam])
            np.testing.assert_array_equal(build_inputs(head, r, ids, "kin_pose"),
                                          np.concatenate([whole["kin_pose"], joints["kin_pose"]], axis=2))
        np.testing.assert_array_equal(
            build_inputs("mlp", r, ids, "kin_pose+hof_flow"),
            np.concatenate([whole["kin_pose"], joints["kin_pose"], whole["hof_flow"]], axis=2))
        np.testing.assert_array_equal(
            build_inputs("stats-ridge", r, ids, "kin_pose+hof_flow"),
            np.concatenate([whole["kin_pose"], joints["kin_pose"], whole["hof_flow"], joints["hof_flow"]],
                           axis=2))
        np.testing.assert_allclose(clip_mean_inputs(r, ids, "kin_pose"),
                                   build_inputs("mlp", r, ids, "kin_pose").mean(axis=1), rtol=1e-6)
