"""Tests for aqa.data.synthetic: videos, pose sidecars, labels and the quality model."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from aqa.data import synthetic as S
from aqa.data.labels import read_labels_csv

SIZE = (96, 72)
NF = 40


def _decode_cv2(path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return np.stack(frames)


def _decode_av(path):
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="bgr24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_single")
    rows = S.render_dataset(out, n=3, kind="single", seed=5, n_frames=NF, size=SIZE, progress=False)
    return out, rows


@pytest.fixture(scope="module")
def sync_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_sync")
    rows = S.render_dataset(out, n=2, kind="sync", seed=1, n_frames=NF, size=SIZE, progress=False)
    return out, rows


def test_files_decodable_by_cv2_and_av(small_set):
    out, rows = small_set
    for r in rows:
        path = out / f"{r.video_id}.mp4"
        a, b = _decode_cv2(path), _decode_av(path)
        assert a.shape == b.shape == (NF, SIZE[1], SIZE[0], 3)
        # both decoders see the same picture (lossy codec, same decoder family)
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3.0
        # and it is the rendered picture, up to mp4v compression
        sim = S.simulate(int(r.video_id[-4:]), "single", 5, NF, SIZE)
        ref = np.stack(list(S.render_frames(sim)))
        assert np.abs(a.astype(int) - ref.astype(int)).mean() < 12.0


def test_deterministic_by_seed(tmp_path):
    r1 = S.render_dataset(tmp_path / "a", n=2, seed=3, n_frames=NF, size=SIZE, progress=False)
    r2 = S.render_dataset(tmp_path / "b", n=2, seed=3, n_frames=NF, size=SIZE, progress=False)
    assert (tmp_path / "a/labels.csv").read_bytes() == (tmp_path / "b/labels.csv").read_bytes()
    assert [r.video_id for r in r1] == [r.video_id for r in r2]
    for r in r1:
        for suffix in (".pose.json", ".mp4"):
            assert ((tmp_path / "a" / f"{r.video_id}{suffix}").read_bytes()
                    == (tmp_path / "b" / f"{r.video_id}{suffix}").read_bytes())
        np.testing.assert_array_equal(_decode_cv2(tmp_path / "a" / f"{r.video_id}.mp4"),
                                      _decode_cv2(tmp_path / "b" / f"{r.video_id}.mp4"))
    # another seed gives other videos and labels
    r3 = S.render_dataset(tmp_path / "c", n=2, seed=4, n_frames=NF, size=SIZE, progress=False)
    assert [r.score for r in r3] != [r.score for r in r1]


def test_sidecar_format_and_geometry(small_set):
    out, rows = small_set
    for r in rows:
        d = S.read_pose_sidecar(out / f"{r.video_id}.pose.json")
        assert d["format"] == "aqa-synth-pose" and d["version"] == 1
        assert (d["width"], d["height"], d["n_frames"]) == (SIZE[0], SIZE[1], NF)
        assert d["joint_names"][0] == "nose" and d["joint_names"][16] == "right_ankle"
        assert d["keypoints"].shape == (1, NF, 17, 3) and list(d["roles"]) == [0]
        ph = d["phases"]
        assert list(ph) == ["approach", "flight", "entry"]
        assert ph["approach"][0] == 0 and ph["approach"][1] == ph["flight"][0]
        assert ph["flight"][1] == ph["entry"][0] and ph["entry"][1] == NF
        kp, bx = d["keypoints"], d["boxes"]
        assert (kp[..., 0] >= 0).all() and (kp[..., 0] <= SIZE[0] - 1).all()
        assert (kp[..., 1] >= 0).all() and (kp[..., 1] <= SIZE[1] - 1).all()
        assert (kp[..., 0] >= bx[..., None, 0] - 1e-3).all()
        assert (kp[..., 0] <= bx[..., None, 2] + 1e-3).all()
        assert (kp[..., 1] >= bx[..., None, 1] - 1e-3).all()
        assert (kp[..., 1] <= bx[..., None, 3] + 1e-3).all()
        assert set(np.unique(kp[..., 2])) <= {1.0, np.float32(S.SUBMERGED_SCORE)}
        assert (kp[:, : ph["flight"][0], :, 2] == 1.0).all()   # on the platform: all visible
        assert (kp[:, -1, :, 2] < 1.0).any()                    # into the water at the end
        assert len(d["camera"]["zoom"]) == NF


def test_keypoints_lie_on_the_drawn_figure():
    for kind in ("single", "sync"):
        sim = S.simulate(2, kind, 0, n_frames=NF, size=(160, 120))
        with_fig = np.stack(list(S.render_frames(sim)))
        bare = np.stack(list(S.render_frames(sim, figures=False)))
        kp = sim.keypoints
        vis = kp[..., 2] == 1.0
        p, t, j = np.nonzero(vis)
        x = np.round(kp[p, t, j, 0]).astype(int)
        y = np.round(kp[p, t, j, 1]).astype(int)
        diff = np.abs(with_fig[t, y, x].astype(int) - bare[t, y, x].astype(int)).sum(-1)
        assert (diff > 20).mean() > 0.95
        # and the figure is where the boxes are: far outside every box, nothing was drawn
        mask = np.ones(with_fig.shape[:3], bool)
        for pp in range(kp.shape[0]):
            for tt in range(NF):
                x0, y0, x1, y1 = sim.boxes[pp, tt]
                mask[tt, max(0, int(y0) - 4): int(y1) + 6, max(0, int(x0) - 4): int(x1) + 6] = False
        # splash drops fly outside the boxes after the entry; compare before any entry
        first_entry = min(ph["entry"][0] for ph in sim.phases)
        m = mask[:first_entry]
        assert np.array_equal(with_fig[:first_entry][m], bare[:first_entry][m])


def test_sync_has_two_persons(sync_set):
    out, rows = sync_set
    for r in rows:
        assert r.action == "synth_sync" and not math.isnan(r.sub_scores["sync"])
        d = S.read_pose_sidecar(out / f"{r.video_id}.pose.json")
        assert d["keypoints"].shape == (2, NF, 17, 3)
        assert list(d["roles"]) == [0, 1]
        assert d["persons"][0]["phases"] == d["phases"]
    sim = S.simulate(0, "sync", 1, NF, SIZE)
    assert len(sim.params) == 2 and sim.params[0].rotations == sim.params[1].rotations


def test_labels_roundtrip_and_score_rule(small_set, sync_set):
    for out, rows in (small_set, sync_set):
        back = read_labels_csv(out / "labels.csv")
        assert [b.video_id for b in back] == [r.video_id for r in rows]
        for b, r in zip(back, rows):
            assert (b.score, b.action, b.difficulty, b.split) == (r.score, r.action, r.difficulty,
                                                                 r.split)
            assert set(b.sub_scores) == set(r.sub_scores)
            for k, v in r.sub_scores.items():
                assert (math.isnan(v) and math.isnan(b.sub_scores[k])) or b.sub_scores[k] == v
            judges = np.array([r.sub_scores[f"judge_{i}"] for i in range(1, 8)])
            assert np.all(judges * 2 == np.round(judges * 2)) and judges.min() >= 0
            assert r.sub_scores["execution"] == np.sort(judges)[2:5].sum()
            assert r.score == pytest.approx(r.difficulty * r.sub_scores["execution"], abs=0.006)
            assert r.difficulty == S.difficulty_for(r.sub_scores["rotations"])
            assert 1.6 <= r.difficulty <= 3.6
            assert r.split in ("train", "test")
    assert math.isnan(small_set[1][0].sub_scores["sync"])


def test_split_is_seeded_75_25(tmp_path):
    r8 = S.render_dataset(tmp_path, n=8, seed=9, n_frames=NF, size=(64, 48), progress=False)
    assert sum(r.split == "test" for r in r8) == 2
    assert [r.split for r in read_labels_csv(tmp_path / "labels.csv")] == [r.split for r in r8]


def test_sidecar_reproduces_the_quality_model(small_set, sync_set):
    """The score is computed from the motion as rendered: the sidecar's keypoints give it back."""
    for out, rows in (small_set, sync_set):
        for r in rows:
            d = S.read_pose_sidecar(out / f"{r.video_id}.pose.json")
            q = S.execution_model(list(d["keypoints"]), [p["phases"] for p in d["persons"]])
            assert 3 * q["E"] == pytest.approx(r.sub_scores["execution_model"], abs=0.05)
            for k in ("coordination", "smoothness", "posture", "sync"):
                assert q[k] == pytest.approx(r.sub_scores[k], abs=0.05, nan_ok=True)


def test_camera_moves_the_scene():
    """Pan/zoom moves the background, so the image border changes from frame to frame."""
    sim = S.simulate(1, "single", 0, n_frames=NF, size=(160, 120))
    assert np.ptp(sim.cam_zoom) > 0.01 * sim.cam_zoom.mean()
    assert np.ptp(sim.cam_center, axis=0).min() > 0.05
    bare = np.stack(list(S.render_frames(sim, figures=False))).astype(int)
    border = np.ones(bare.shape[1:3], bool)
    border[8:-8, 8:-8] = False
    change = np.abs(np.diff(bare, axis=0))[:, border].mean(axis=(1, 2))
    assert (change > 0.5).mean() > 0.9


def _with(sim, **kw):
    return [replace(p, **kw) for p in sim.params]


def test_quality_is_monotone_in_the_hidden_parameters():
    base = S.simulate(0, "single", 0, n_frames=64, size=SIZE)
    clean = dict(asymmetry=0.0, lr_lag=0.0, tilt=0.0, bend=0.0, tuck=0.9)
    # rougher motion -> lower smoothness and execution, other things equal
    q = [S.simulate(0, "single", 0, 64, SIZE, params=_with(base, jitter=j, **clean)).quality
         for j in (0.0, 0.03, 0.06, 0.1, 0.15)]
    assert np.all(np.diff([x["smoothness"] for x in q]) < 0)
    assert np.all(np.diff([x["E"] for x in q]) < 0)
    # tighter tuck -> higher posture; more tilt or bend at entry -> lower posture
    quiet = dict(clean, jitter=0.0)
    post = [S.simulate(0, "single", 0, 64, SIZE, params=_with(base, **dict(quiet, tuck=v)))
            .quality["posture"] for v in (0.5, 0.7, 0.9)]
    assert np.all(np.diff(post) > 0)
    for name, vals in (("tilt", (0.0, 0.2, 0.4)), ("bend", (0.0, 0.3, 0.6))):
        post = [S.simulate(0, "single", 0, 64, SIZE, params=_with(base, **dict(quiet, **{name: v})))
                .quality["posture"] for v in vals]
        assert np.all(np.diff(post) < 0), name
    # left/right asymmetry and lag -> lower coordination
    coord = [S.simulate(0, "single", 0, 64, SIZE, params=_with(
        base, **dict(quiet, asymmetry=a, lr_lag=l))).quality["coordination"]
        for a, l in ((0.0, 0.0), (0.05, 0.5), (0.1, 1.5), (0.15, 3.0))]
    assert np.all(np.diff(coord) < 0)


def test_sync_lag_lowers_synchronization():
    base = S.simulate(0, "sync", 0, n_frames=64, size=SIZE)
    p0 = replace(base.params[0], jitter=0.0)
    ys = [S.simulate(0, "sync", 0, 64, SIZE, params=[p0, replace(p0, sync_lag=lag)])
          .quality["sync"] for lag in (0.0, 1.0, 2.0, 3.5)]
    assert np.all(np.diff(ys) < 0)
    # identical performers in perfect time are perfectly synchronized (same body size aside)
    assert ys[0] > 9.0


def _pose_features(d):
    """Hand-made features from a sidecar's keypoints (independent of the model's own code)."""
    kp = d["keypoints"][..., :2].astype(float)
    f0, f1 = d["phases"]["flight"]
    te = d["phases"]["entry"][0]
    feats = []
    for person in kp:
        hip = 0.5 * (person[:, 11] + person[:, 12])
        sh = 0.5 * (person[:, 5] + person[:, 6])
        torso = np.linalg.norm(sh - hip, axis=-1)
        rel = (person - hip[:, None]) / torso[:, None, None]
        ang = np.unwrap(np.arctan2(sh[:, 0] - hip[:, 0], hip[:, 1] - sh[:, 1]))
        rot = abs(ang[te] - ang[f0]) / (2 * np.pi)
        jerk = np.log(np.mean(np.diff(rel[:, 7:17], n=3, axis=0) ** 2))
        # left/right differences of hip->ankle and shoulder->wrist reach
        lr = (np.abs(np.linalg.norm(rel[:, 15] - rel[:, 11], axis=-1)
                     - np.linalg.norm(rel[:, 16] - rel[:, 12], axis=-1)).mean()
              + np.abs(np.linalg.norm(rel[:, 9] - rel[:, 5], axis=-1)
                       - np.linalg.norm(rel[:, 10] - rel[:, 6], axis=-1)).mean())
        mid = slice(f0 + (f1 - f0) // 3, f0 + 2 * (f1 - f0) // 3)
        compact = np.linalg.norm(rel[mid, 15:17] - rel[mid, 11:13], axis=-1).mean()
        axis = sh[te] - 0.5 * (person[te, 15] + person[te, 16])
        tilt = np.arccos(abs(axis[1]) / np.linalg.norm(axis))
        straight = np.linalg.norm(rel[te, 15:17] - rel[te, 5:7], axis=-1).mean()
        feats.append([np.log(1.6 + 0.8 * (np.round(2 * rot) / 2 - 1)), jerk, lr, compact, tilt,
                      straight])
    return np.mean(feats, axis=0)


def test_score_is_learnable_from_ground_truth_pose():
    """Ridge on hand-made pose features, 4-fold cross-validated over 48 videos: Spearman > 0.5."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = [], []
    for i in range(48):
        sim = S.simulate(i, "single", 11, n_frames=72, size=(160, 120))
        d = json.loads(json.dumps(sim.sidecar()))          # exactly what the file holds
        d["keypoints"] = np.asarray(d["persons"][0]["keypoints"])[None]
        X.append(_pose_features(d))
        y.append(sim.score)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12)))
    pred = cross_val_predict(model, np.array(X), np.log(y), cv=KFold(4, shuffle=True,
                                                                      random_state=0))
    rho = spearmanr(pred, y)[0]
    print(f"cross-validated Spearman of ridge on pose features: {rho:.3f}")
    assert rho > 0.5


def test_rendering_eight_videos(tmp_path):
    rows = S.render_dataset(tmp_path, n=8, kind="single", seed=0, progress=False)
    assert len(rows) == 8 and len({r.video_id for r in rows}) == 8
    assert len(list(tmp_path.glob("*.mp4"))) == 8 and len(list(tmp_path.glob("*.pose.json"))) == 8
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.slow
def test_jobs_do_not_change_the_result(tmp_path):
    r1 = S.render_dataset(tmp_path / "a", n=4, seed=2, n_frames=NF, size=SIZE, progress=False)
    r2 = S.render_dataset(tmp_path / "b", n=4, seed=2, n_frames=NF, size=SIZE, jobs=2,
                          progress=False)
    assert (tmp_path / "a/labels.csv").read_bytes() == (tmp_path / "b/labels.csv").read_bytes()
    for r in r1:
        assert ((tmp_path / "a" / f"{r.video_id}.pose.json").read_bytes()
                == (tmp_path / "b" / f"{r.video_id}.pose.json").read_bytes())
    assert [r.video_id for r in r2] == [r.video_id for r in r1]


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        S.simulate(0, "triple")
    with pytest.raises(ValueError, match="n_frames"):
        S.simulate(0, "single", n_frames=10)
    with pytest.raises(ValueError, match="size"):
        S.simulate(0, "single", size=(161, 120))
    with pytest.raises(ValueError, match="rotations"):
        S.QualityParams(rotations=1.25)
    with pytest.raises(ValueError, match="jitter"):
        S.QualityParams(jitter=-1.0)
    with pytest.raises(ValueError, match="QualityParams"):
        S.simulate(0, "sync", params=[S.QualityParams()])
    with pytest.raises(ValueError, match="jobs"):
        S.render_dataset(tmp_path, n=1, jobs=0)
    bad = tmp_path / "x.pose.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="aqa-synth-pose"):
        S.read_pose_sidecar(bad)


def _body_relative(kp):
    kp = np.asarray(kp, float)[..., :2]
    mid_hip = 0.5 * (kp[:, 11] + kp[:, 12])
    torso = np.linalg.norm(0.5 * (kp[:, 5] + kp[:, 6]) - mid_hip, axis=-1)
    return (kp - mid_hip[:, None]) / torso[:, None, None]


@pytest.mark.slow
def test_coordination_kind_is_scored_on_the_timing_between_limbs():
    """The label follows the arms' lag behind the legs; the statistics of each joint's motion
    (mean/std/max/min of its body-relative position) barely predict it."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sims = [S.simulate(i, "coordination", 0) for i in range(48)]
    y = np.array([s.score for s in sims])
    assert {s.difficulty for s in sims} == {S.difficulty_for(2.0)}
    applied = np.array([s.params[0].limb_lag for s in sims])
    starts = np.array([s.params[0].sync_lag for s in sims])
    assert np.ptp(applied) > 5 and np.ptp(starts) > 3
    # the pairwise timing, measured from the image keypoints, is the lag that was applied
    measured = np.array([S.limb_timing(s.keypoints[0], s.phases[0]) for s in sims])
    assert np.abs(measured - applied).mean() < 0.25 and np.abs(measured - applied).max() < 0.75
    assert spearmanr(np.abs(measured - S.IDEAL_LIMB_LAG), y)[0] < -0.85
    # ... and neither one limb's clock (the start offset) nor per-joint statistics predict it
    assert abs(spearmanr(starts, y)[0]) < 0.3
    per_joint = np.array([np.concatenate([f(_body_relative(s.keypoints[0]), axis=0).ravel()
                                          for f in (np.mean, np.std, np.max, np.min)]) for s in sims])
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    assert spearmanr(cross_val_predict(model, per_joint, y, cv=4), y)[0] < 0.5
    row = sims[0].label_row("train")
    assert row.sub_scores["timing"] == pytest.approx(sims[0].quality["timing"])
    assert row.action == "synth_coordination"


def test_single_and_sync_have_no_timing_score():
    for kind in ("single", "sync"):
        sim = S.simulate(1, kind, 0, n_frames=NF, size=SIZE)
        assert "timing" not in sim.quality and "timing" not in sim.label_row().sub_scores
        assert all(p.limb_lag == 0.0 for p in sim.params)
