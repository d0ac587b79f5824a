"""aqa-heads end to end on a small synthetic cache whose scores are a known function of the features."""
import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from click.testing import CliRunner  # noqa: E402

from aqa.data.cache import CacheWriter  # noqa: E402
from aqa.data.labels import LabelRow, write_labels_csv  # noqa: E402
from aqa.heads.cli import main  # noqa: E402
from aqa.heads.train import run_train_eval  # noqa: E402

torch.set_num_threads(1)
JRG_P = ["-p", "encoder_dim=16", "-p", "hidden_dim=8", "-p", "max_iter=150", "-p", "learning_rate=0.01",
         "-p", "lr_schedule='constant'", "-p", "staged=false"]


def make_cache(path, n=60, S=4, D=6, seed=0, untrained=False, config=None):
    """Per-step quality q_t drives one whole-scene dim, one dim of every joint and the pose amplitude;
    score = 50 + 10 sum_t q_t + small noise. 40 train / 20 test, two actions."""
    rng = np.random.RandomState(seed)
    rows = []
    with CacheWriter(path, config=config or {"sampling": "jrg", "T": S}, untrained=untrained) as w:
        for k in range(n):
            q = rng.randn(S)
            whole = rng.randn(S, D).astype(np.float32)
            whole[:, 1] += q
            joints = (0.5 * rng.randn(S, 17, D)).astype(np.float32)
            joints[:, :, 0] += q[:, None]
            F = 8
            kp = np.zeros((F, 1, 17, 3), np.float32)
            kp[:, 0, :, 0] = 80 + 10 * q.mean() * np.sin(2 * np.pi * np.linspace(0, 1, F))[:, None]
            kp[:, 0, :, 1] = 60 + rng.randn(F, 17)
            kp[:, 0, :, 2] = 1
            vid = f"vid{k:03d}"
            w.write_video(vid, attrs={"fps": 25.0, "n_frames": F, "height": 120, "width": 160,
                                      "source_relpath": vid + ".mp4"},
                          arrays={"frames/index": np.arange(F, dtype=np.int32), "pose/keypoints": kp,
                                  "pose/boxes": np.zeros((F, 1, 4), np.float32),
                                  "pose/box_scores": np.ones((F, 1), np.float32),
                                  "pose/roles": np.zeros(1, np.int32),
                                  "features/kin_pose/whole": whole, "features/kin_pose/joints": joints,
                                  "motion/camera": np.zeros((S, 2), np.float32)})
            rows.append(LabelRow(vid, float(50 + 10 * q.sum() + 0.5 * rng.randn()),
                                 action="diving" if k % 2 else "vault", difficulty=2.0 + k % 3,
                                 split="train" if k < 2 * n // 3 else "test"))
        w.write_labels(rows)
    return rows


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rows = make_cache(d / "feats.h5")
    return d / "feats.h5", rows


def _png_ok(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    from matplotlib.image import imread
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    assert len(np.unique(_colour_keys(img))) > 20, f"{path} is (nearly) one colour"


def _colour_keys(img):
    """One integer per pixel, equal exactly when the colours are: imread's [0, 1] channels of an 8-
    or 16-bit PNG times 65535 are integers, packed 16 bits each (np.unique on these is ~20x faster
    than on the pixel rows with axis=0)."""
    q = np.rint(img.reshape(-1, img.shape[-1]).astype(np.float64) * 65535).astype(np.uint64)
    key = np.zeros(len(q), np.uint64)
    for c in range(q.shape[1]):
        key = (key << np.uint64(16)) | q[:, c]
    return key


def test_list():
    r = CliRunner().invoke(main, ["list", "--json"])
    assert r.exit_code == 0, r.output
    items = {it["name"]: it for it in json.loads(r.output)}
    assert {"jrg", "mlp", "c3d-svr", "i3d-svr", "pose-dct-svr"} <= set(items)
    assert items["jrg"]["parameters"]["ortho_weight"] == 0.8
    assert items["jrg"]["parameters"]["graph_l2"] == 0.1
    assert items["jrg"]["parameters"]["learning_rate"] == 1e-3   # measured on a CPU; the paper's below
    from aqa.heads.presets import preset_params
    assert preset_params("jrg", "paper")["learning_rate"] == 1e-4
    assert items["jrg"]["paper_views"] == ["flip"] and items["fragment"]["paper_views"] == ["shift:1-5"]
    assert items["core"]["paper_views"] == items["c3d-svr"]["paper_views"] == "does not train on views"
    r = CliRunner().invoke(main, ["list"])
    assert "Joint Relation Graphs" in r.output and "inputs: jrg  --views paper: flip" in r.output


@pytest.mark.slow
def test_train_evaluate_predict_explain_jrg(cache, tmp_path):
    path, rows = cache
    model = tmp_path / "jrg.pt"
    r = CliRunner().invoke(main, ["train", "jrg", str(path), "--out", str(model), "--json", "--seed", "1"] + JRG_P)
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["n_train"] == 40 and res["n_test"] == 20 and res["feature"] == "kin_pose"
    assert res["metrics"]["spearman"] > 0.8                  # chance is 0; the score is learnable
    assert set(res["metrics"]["per_action"]) == {"diving", "vault"}

    r = CliRunner().invoke(main, ["evaluate", str(model), str(path), "--json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.output)
    assert ev["metrics"]["spearman"] == pytest.approx(res["metrics"]["spearman"])

    out_csv, out_json = tmp_path / "p.csv", tmp_path / "p.json"
    assert CliRunner().invoke(main, ["predict", str(model), str(path), "--out", str(out_csv)]).exit_code == 0
    with open(out_csv) as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == 60 and preds[0]["video_id"] == "vid000"
    assert CliRunner().invoke(main, ["predict", str(model), str(path), "--split", "test",
                                     "--out", str(out_json)]).exit_code == 0
    pj = json.loads(out_json.read_text())["predictions"]
    assert len(pj) == 20
    by_id = {p["video_id"]: float(p["pred_score"]) for p in preds}
    for p in pj:
        assert by_id[p["video_id"]] == pytest.approx(p["pred_score"])

    r = CliRunner().invoke(main, ["explain", str(model), str(path), "--out", str(tmp_path / "plots"),
                                  "--video", "vid041", "--video", "vid050"])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["graph_spatial.png", "graph_temporal.png", "joint_scores_vid041.png",
                     "joint_scores_vid050.png", "step_scores.png"]
    for p in (tmp_path / "plots").iterdir():
        _png_ok(p)


def test_run_train_eval_svr_and_labels_csv(cache, tmp_path):
    path, rows = cache
    # a labels CSV overrides the cache's labels: move 10 test videos into train
    alt = [LabelRow(r.video_id, r.score, r.action, r.difficulty, "train" if i < 50 else "test")
           for i, r in enumerate(rows)]
    csv_path = write_labels_csv(alt, tmp_path / "labels.csv")
    res = run_train_eval(path, csv_path, head="c3d-svr", seed=0)
    assert res["n_train"] == 50 and res["n_test"] == 10
    assert res["metrics"]["spearman"] > 0.6
    assert set(res["predictions"]) == {f"vid{k:03d}" for k in range(50, 60)}
    res = run_train_eval(path, None, head="pose-dct-svr", out=tmp_path / "svr.pt")
    assert res["metrics"]["spearman"] > 0.6
    # a non-neural head file loads without --trust-model (skops, known types only)
    r = CliRunner().invoke(main, ["evaluate", str(tmp_path / "svr.pt"), str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["metrics"]["spearman"] == pytest.approx(res["metrics"]["spearman"])


def test_run_train_eval_r_l2_uses_each_actions_labelled_range(cache):
    from aqa.heads.metrics import relative_l2

    path, rows = cache
    # labelled videos outside the cache still set their action's s_min/s_max (CoRe eq. 11)
    labels = list(rows) + [LabelRow("elsewhere1", 0.0, "diving", 2.0, "train"),
                           LabelRow("elsewhere2", 200.0, "vault", 2.0, "test")]
    res = run_train_eval(path, labels, head="c3d-svr", seed=0)
    ranges = {"diving": (0.0, max(r.score for r in rows if r.action == "diving")),
              "vault": (min(r.score for r in rows if r.action == "vault"), 200.0)}
    assert res["score_ranges"] == ranges
    test = {r.video_id: r for r in rows if r.split == "test"}
    for action, (lo, hi) in ranges.items():
        ids = [v for v, r in test.items() if r.action == action]
        y = [test[v].score for v in ids]
        p = [res["predictions"][v] for v in ids]
        got = res["metrics"]["per_action"][action]["rl2"]
        assert got == pytest.approx(relative_l2(y, p, lo, hi))
        assert got < relative_l2(y, p)        # not the test rows' own (narrower) range


def test_errors_are_one_line(cache, tmp_path):
    path, _ = cache
    r = CliRunner().invoke(main, ["train", "nohead", str(path)])
    assert r.exit_code == 1 and "unknown head 'nohead'" in r.output and "jrg" in r.output
    r = CliRunner().invoke(main, ["train", "mlp", str(path), "--split", "fold9"])
    assert r.exit_code == 1 and "fold9" in r.output and "train" in r.output
    r = CliRunner().invoke(main, ["train", "mlp", str(path), "--feature", "i3d_rgb"])
    assert r.exit_code == 1 and "i3d_rgb" in r.output
    r = CliRunner().invoke(main, ["train", "mlp", str(path), "-p", "nonsense=3"])
    assert r.exit_code == 1 and "has no parameter(s) ['nonsense']" in r.output
    assert "random_state']" not in r.output.split("its parameters")[0]      # only what the user gave
    r = CliRunner().invoke(main, ["train", "mlp", str(path), "--feature", "nope"])
    assert r.exit_code == 1 and r.output.rstrip().endswith("no feature family 'nope'; has ['kin_pose']")
    from aqa.heads.cli import _reason
    assert _reason(KeyError("no complete video 'x'")) == "no complete video 'x'"     # closing quote kept
    assert _reason(ValueError("max_iter must be a positive integer, got 'abc'")).endswith("'abc'")
    assert "Traceback" not in r.output
    for junk in (b"", b"not hdf5 at all", b"\x89HDF\r\n\x1a\n" + bytes(40)):
        bad = tmp_path / "bad.h5"
        bad.write_bytes(junk)
        for cmd in (["train", "mlp", str(bad)], ["bench", str(bad), "--heads", "mlp", "--seeds", "1"]):
            r = CliRunner().invoke(main, cmd)
            assert r.exit_code == 1 and r.output.startswith("error: ") and "not a readable HDF5" in r.output, r.output
    (tmp_path / "notes.txt").write_text("hello")
    r = CliRunner().invoke(main, ["evaluate", str(tmp_path / "notes.txt"), str(path)])
    assert r.exit_code == 1 and "is not an aqa head file" in r.output and "weights_only" not in r.output


def test_bench_fails_loudly(cache, tmp_path):
    path, _ = cache
    out = ["--out", str(tmp_path / "rep")]
    r = CliRunner().invoke(main, ["bench", str(path), "--heads", "c3d-svr", "--seeds", "1", "-p", "c3d-svr.foo=2",
                                  *out])
    assert r.exit_code == 1 and "error: 2 run(s) failed" in r.output and "has no parameter(s) ['foo']" in r.output
    r = CliRunner().invoke(main, ["bench", str(path), "--heads", "c3d-svr", "-p", "jrgg.max_iter=5", *out])
    assert r.exit_code == 1 and "parameters given for unknown head(s) ['jrgg']" in r.output
    r = CliRunner().invoke(main, ["bench", str(path), "--heads", "c3d-svr", "--seeds", "0", *out])
    assert r.exit_code == 2 and "--seeds" in r.output
    r = CliRunner().invoke(main, ["bench", str(path), "--heads", "c3d-svr", "--feature", "nope", *out])
    assert r.exit_code == 1 and "no feature family 'nope'" in r.output and "kin_pose" in r.output


def test_untrained_cache_is_flagged(tmp_path):
    make_cache(tmp_path / "u.h5", n=12, untrained=True)
    r = CliRunner().invoke(main, ["train", "c3d-svr", str(tmp_path / "u.h5"), "--json"])
    assert r.exit_code == 0, r.output
    assert "UNTRAINED" in r.output


def test_train_refuses_videos_of_another_config(tmp_path):
    """A second extraction into the same file with other settings must not be trained on silently."""
    path = tmp_path / "mixed.h5"
    make_cache(path, n=12)
    from aqa.data.cache import CacheReader
    with CacheReader(path) as r:
        attrs, pose = r.video_attrs("vid003"), r.pose("vid003")
        feats = {f"features/kin_pose/{k}": r.load("kin_pose", ["vid003"], part=k)[0]
                 for k in ("whole", "joints")}
    with CacheWriter(path, config={"sampling": "jrg", "T": 4, "short_side": 320}) as w:
        w.write_video("vid003", {k: attrs[k] for k in ("fps", "n_frames", "height", "width")},
                      {**{f"pose/{k}": v for k, v in pose.items()}, **feats,
                       "frames/index": np.arange(8, dtype=np.int32),
                       "motion/camera": np.zeros((4, 2), np.float32)})
    r = CliRunner().invoke(main, ["train", "c3d-svr", str(path)])
    assert r.exit_code == 1 and r.output.startswith("error: ") and "Traceback" not in r.output
    assert "not the file's root config" in r.output and "vid" in r.output, r.output


@pytest.mark.slow
def test_a_model_refuses_a_cache_of_other_features(tmp_path):
    """Scores of a head applied to features extracted otherwise mean nothing: refused, unless
    --allow-other-features (then warned); a cache that only adds families is fine."""
    base = {"sampling": "jrg", "T": 4, "short_side": 256, "flow": "tvl1-cpu", "backbones": [],
            "checkpoints": {}, "pose_options": {"path": "a/poses"}}
    make_cache(tmp_path / "a.h5", n=12, config=base)
    model = tmp_path / "m.pt"
    r = CliRunner().invoke(main, ["train", "mlp", str(tmp_path / "a.h5"), "--out", str(model),
                                  "-p", "max_iter=5"])
    assert r.exit_code == 0, r.output
    same = {**base, "flow": "tvl1-torch", "backbones": ["c3d"], "pose_options": {"path": "b/poses"}}
    make_cache(tmp_path / "same.h5", n=12, seed=1, config=same)   # GPU TV-L1, more families: fine
    other = {**base, "short_side": 320}
    make_cache(tmp_path / "other.h5", n=12, seed=1, config=other)
    make_cache(tmp_path / "rand.h5", n=12, seed=1, config=base, untrained=True)
    for cmd in (["evaluate"], ["predict"], ["explain", "--out", str(tmp_path / "plots")]):
        r = CliRunner().invoke(main, [cmd[0], str(model), str(tmp_path / "same.h5"), *cmd[1:]])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(main, [cmd[0], str(model), str(tmp_path / "other.h5"), *cmd[1:]])
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert "extracted with other settings" in r.output and "short_side: 256 (training) vs 320" in r.output
        assert "--allow-other-features" in r.output
    r = CliRunner().invoke(main, ["evaluate", str(model), str(tmp_path / "rand.h5")])
    assert r.exit_code == 1 and "untrained weights: False (training) vs True" in r.output
    with pytest.warns(UserWarning, match=r"short_side: 256 \(training\) vs 320 \(--allow-other-"
                                         r"features: scoring anyway\)"):
        r = CliRunner().invoke(main, ["evaluate", str(model), str(tmp_path / "other.h5"),
                                      "--allow-other-features", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["metrics"]["n"] == 4


def test_config_differences_by_setting_and_checkpoint_role():
    from aqa.data.compat import config_differences
    a = {"sampling": "jrg", "flow": "tvl1-cpu", "flow_options": {}, "backbones": ["i3d"],
         "checkpoints": {"i3d_rgb_imagenet": "a" * 64, "keypointrcnn_resnet50_fpn_coco": "k" * 64}}
    assert config_differences(a, {**a, "flow": "tvl1-torch", "backbones": ["i3d", "c3d"],
                                  "checkpoints": {**a["checkpoints"], "c3d_sports1m": "c" * 64}}) == []
    assert config_differences(a, {**a, "flow_options": {"warps": 1}}) == [
        'flow_options: {} (training) vs {"warps": 1}']
    swapped = {**a, "checkpoints": {"i3d_rgb_kinetics_hassony2": "b" * 64,
                                    "keypointrcnn_resnet50_fpn_coco": "k" * 64}}
    (line,) = config_differences(a, swapped)     # another file in the same role
    assert line.startswith("checkpoint for backbone:i3d/rgb: i3d_rgb_imagenet (aaaaaaaaaaaa) "
                           "(training) vs i3d_rgb_kinetics_hassony2 (bbbbbbbbbbbb)")
    merged = {"merged_configs": [a, {**a, "flow": "tvl1-torch"}]}
    assert config_differences(a, merged) == [] and config_differences(merged, a) == []
    assert config_differences({}, a) == [] and config_differences(None, a) == []
    assert config_differences(a, {**a, "untrained": True}) == ["untrained weights: False (training) vs True"]


def test_predict_time_extras_never_include_sub_scores():
    from aqa.heads.dataset import label_extras as _extras

    class Head:
        fit_extras = ("groups", "difficulty", "execution")

    rows = [LabelRow("a", 1.0, "dive", 2.0, "train", {"execution": 5.0}),
            LabelRow("b", 2.0, "vault", 3.0, "train", {"execution": 6.0})]
    fit = _extras(Head(), rows)
    assert list(fit["groups"]) == ["dive", "vault"] and list(fit["execution"]) == [5.0, 6.0]
    pred = _extras(Head(), rows, predict=True)
    assert set(pred) == {"groups", "difficulty"} and list(pred["difficulty"]) == [2.0, 3.0]
    Head.predict_extras = ("groups",)
    assert set(_extras(Head(), rows, predict=True)) == {"groups"}


def test_params_parse_shell_spellings_of_constants():
    from aqa.heads.presets import parse_params
    got = parse_params(["staged=false", "a=None", "b=TRUE", "c=1e-3", "d=(4, 2)", "e=cyclic", "f='x'",
                         "g=null"])
    assert got == {"staged": False, "a": None, "b": True, "c": 1e-3, "d": (4, 2), "e": "cyclic", "f": "x",
                   "g": None}
    with pytest.raises(ValueError, match="expected key=value, got 'staged'"):
        parse_params(["staged"])
    from aqa.heads.jrg import JRGRegressor
    with pytest.raises(ValueError, match="staged must be True or False, got 'no'"):
        JRGRegressor(staged="no").fit(np.zeros((4, 2, 18, 3)), np.arange(4.0))


def test_jrg_defaults_to_a_family_with_joints_and_says_what_it_needs(tmp_path):
    import math
    from cachekit import VIDEO_ATTRS, video_arrays
    from aqa.data.cache import CacheReader
    from aqa.heads.dataset import build_inputs
    from aqa.heads.inputs import default_feature

    path = tmp_path / "c.h5"
    rows = []
    with CacheWriter(path, config={"sampling": "jrg"}) as w:
        for i in range(6):
            a = video_arrays(i, families=("i3d_rgb", "kin_pose"))
            del a["features/i3d_rgb/joints"]                     # extracted with --no-joints
            w.write_video(f"v{i}", VIDEO_ATTRS, a)
            rows.append(LabelRow(f"v{i}", float(i), "diving", math.nan, "train" if i < 4 else "test"))
        w.write_labels(rows)
    with CacheReader(path) as r:
        assert default_feature(r) == "i3d_rgb" and default_feature(r, part="joints") == "kin_pose"
        assert build_inputs("jrg", r, ["v0"]).shape == (1, 4, 18, 6)
        with pytest.raises(ValueError, match=r"jrg needs joint features, and 'i3d_rgb' has none.*\['kin_pose'\]"):
            build_inputs("jrg", r, ["v0"], "i3d_rgb")
    res = run_train_eval(path, head="jrg", params={"staged": False, "max_iter": 2, "encoder_dim": 4,
                                                   "hidden_dim": 2})
    assert res["feature"] == "kin_pose"


def test_unmatched_labels_and_another_sampling_are_said(cache, tmp_path):
    path, rows = cache
    labels = tmp_path / "l.csv"
    write_labels_csv(rows[:-5] + [LabelRow("ghost", 1.0, split="train")], labels)
    with pytest.warns(UserWarning) as said:
        run_train_eval(path, labels, head="mlp", params={"max_iter": 2})
    said = " | ".join(str(w.message) for w in said)
    assert "5 of 60 cache videos have no label row and are left out: vid055, vid056, vid057, ..." in said
    assert "1 of 56 label rows have no video in the cache and are left out: ghost" in said
    from aqa.heads.mlp import SceneMLPRegressor
    X = np.zeros((6, 4, 5), np.float32)
    m = SceneMLPRegressor(max_iter=1).fit(X, np.arange(6.0))
    with pytest.raises(ValueError, match=r"X has 3 time steps per video .*fitted on 4.*--sampling-opt T"):
        m.predict(X[:, :3])
