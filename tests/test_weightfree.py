"""Tests for aqa.extract.weightfree: pose kinematics, HOF in joint patches, camera motion per step."""
import warnings

import numpy as np
import pytest

from aqa.extract import weightfree as W

KIN = W.FAMILIES["kin_pose"]
JS, WS = KIN.slices("joints"), KIN.slices("whole")
L_SHO, R_SHO, L_HIP, R_HIP, L_WRI = 5, 6, 11, 12, 9


def _standing(n_frames, torso=100.0, origin=(300.0, 400.0)):
    """A still person (F, 17, 3): hips at origin +- 20 px, shoulders `torso` px above, others spread."""
    ox, oy = origin
    kp = np.zeros((n_frames, 17, 3))
    rng = np.random.default_rng(3)
    kp[:, :, 0] = ox + rng.uniform(-60, 60, 17)
    kp[:, :, 1] = oy + rng.uniform(-150, 120, 17)
    kp[:, L_HIP, :2], kp[:, R_HIP, :2] = (ox - 20, oy), (ox + 20, oy)
    kp[:, L_SHO, :2], kp[:, R_SHO, :2] = (ox - 25, oy - torso), (ox + 25, oy - torso)
    kp[..., 2] = 0.9
    return kp


def test_constant_velocity_joint():
    n, fps, torso = 40, 25.0, 100.0
    kp = _standing(n, torso)
    v = np.array([3.0, -2.0])                                  # px per frame
    kp[:, L_WRI, :2] = kp[0, L_WRI, :2] + np.arange(n)[:, None] * v
    clips = np.arange(n).reshape(4, 10)
    whole, joints = W.kinematics(kp[:, None], clips, fps)
    assert whole.shape == (4, KIN.whole_dim) and joints.shape == (4, 17, KIN.joints_dim)
    np.testing.assert_allclose(joints[:, L_WRI, JS["vel"]], np.tile(v * fps / torso, (4, 1)), rtol=1e-5)
    np.testing.assert_allclose(joints[:, L_WRI, JS["vel_std"]], 0.0, atol=1e-5)
    np.testing.assert_allclose(joints[:, L_WRI, JS["speed"]][:, 0], np.linalg.norm(v) * fps / torso,
                               rtol=1e-5)
    np.testing.assert_allclose(joints[:, L_WRI, JS["acc"]], 0.0, atol=1e-4)
    np.testing.assert_allclose(joints[:, L_WRI, JS["acc_norm"]], 0.0, atol=1e-4)
    # Relative position = mean over the step of (wrist - hip midpoint) / torso.
    rel = (kp[:, L_WRI, :2] - kp[:, [L_HIP, R_HIP], :2].mean(1)) / torso
    np.testing.assert_allclose(joints[:, L_WRI, JS["pos"]], rel[clips].mean(1), rtol=1e-5)
    np.testing.assert_allclose(joints[:, L_WRI, JS["pos_std"]], rel[clips].std(1), rtol=1e-4)
    # Still joints: zero velocity; full validity and the mean score.
    np.testing.assert_allclose(joints[:, 0, JS["vel"]], 0.0, atol=1e-6)
    np.testing.assert_allclose(joints[..., JS["valid"]], 1.0)
    np.testing.assert_allclose(joints[..., JS["score"]], 0.9, rtol=1e-6)
    np.testing.assert_allclose(whole[:, WS["orient"]], np.tile([1.0, 0.0], (4, 1)), atol=1e-6)
    np.testing.assert_allclose(whole[:, WS["centre_vel"]], 0.0, atol=1e-6)


def test_body_translation_goes_to_whole_not_joints():
    n, fps, torso = 30, 30.0, 100.0
    kp = _standing(n, torso)
    u = np.array([-4.0, 1.5])
    kp[..., :2] += np.arange(n)[:, None, None] * u             # the whole body drifts
    whole, joints = W.kinematics(kp[:, None], np.arange(n).reshape(3, 10), fps)
    np.testing.assert_allclose(joints[..., JS["vel"]], 0.0, atol=1e-5)
    np.testing.assert_allclose(whole[:, WS["centre_vel"]], np.tile(u * fps / torso, (3, 1)), rtol=1e-5)
    np.testing.assert_allclose(whole[:, WS["centre_acc_norm"]], 0.0, atol=1e-4)


def test_translation_and_scale_invariance():
    n = 24
    rng = np.random.default_rng(7)
    kp = _standing(n)
    kp[..., :2] += rng.normal(0, 5, size=(n, 17, 2)).cumsum(0)   # arbitrary motion
    clips = np.arange(n).reshape(3, 8)
    w1, j1 = W.kinematics(kp[:, None], clips, 25.0)
    kp2 = kp.copy()
    kp2[..., :2] = kp[..., :2] * 2.5 + np.array([-700.0, 90.0])
    w2, j2 = W.kinematics(kp2[:, None], clips, 25.0)
    np.testing.assert_allclose(j1, j2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w1, w2, rtol=1e-4, atol=1e-5)


def test_frame_index_gives_per_second_rates():
    n, fps = 40, 25.0
    kp = _standing(n)
    kp[:, L_WRI, 0] += 2.0 * np.arange(n)
    full_w, full_j = W.kinematics(kp[:, None], np.arange(40).reshape(4, 10), fps)
    sub = kp[::2]                                              # decode every second frame
    sub_w, sub_j = W.kinematics(sub[:, None], np.arange(20).reshape(4, 5), fps,
                                frame_index=np.arange(0, n, 2))
    np.testing.assert_allclose(sub_j[:, L_WRI, JS["vel"]], full_j[:, L_WRI, JS["vel"]], rtol=1e-5)
    with pytest.raises(ValueError, match="increasing"):
        W.kinematics(sub[:, None], np.arange(20).reshape(4, 5), fps, frame_index=np.zeros(20))


def test_nan_frames_and_steps_give_zeros_not_nan():
    n = 30
    kp = _standing(n)
    kp[:, L_WRI, 0] += 2.0 * np.arange(n)
    kp[12:15] = np.nan                                         # person lost for 3 frames in step 1
    kp[20:30] = np.nan                                         # and for all of step 2
    kp[:, 3, 2] = -1.0                                         # one joint always below min_score
    clips = np.arange(n).reshape(3, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # no all-NaN RuntimeWarnings either
        whole, joints = W.kinematics(kp[:, None], clips, 25.0)
    assert np.isfinite(whole).all() and np.isfinite(joints).all()
    np.testing.assert_allclose(joints[:, 0, JS["valid"]][:, 0], [1.0, 0.7, 0.0])
    np.testing.assert_allclose(whole[:, WS["valid"]][:, 0], [1.0, 0.7, 0.0])
    np.testing.assert_array_equal(joints[2], 0.0)
    np.testing.assert_array_equal(joints[:, 3], 0.0)
    # Velocity in step 1 is still the true one, estimated from the frames around the gap.
    np.testing.assert_allclose(joints[1, L_WRI, JS["vel"]], [2.0 * 25 / 100, 0.0], rtol=1e-5, atol=1e-6)


def test_person_never_seen_gives_all_zeros():
    kp = np.full((10, 1, 17, 3), np.nan)
    whole, joints = W.kinematics(kp, np.arange(10).reshape(2, 5), 25.0)
    assert not whole.any() and not joints.any()


def test_torso_fallback_to_boxes_and_shoulder_centre():
    n = 10
    kp = _standing(n)
    kp[:, [L_HIP, R_HIP]] = np.nan                             # no hips: centre = shoulder midpoint
    boxes = np.tile([0.0, 0.0, 100.0, 200.0], (n, 1, 1))
    _, joints = W.kinematics(kp[:, None], np.arange(n)[None], 25.0, boxes=boxes)
    rel = (kp[:, 0, :2] - kp[:, [L_SHO, R_SHO], :2].mean(1)) / 200.0
    np.testing.assert_allclose(joints[0, 0, JS["pos"]], rel.mean(0), rtol=1e-5)


def test_two_person_pair_features():
    n, torso = 20, 100.0
    a = _standing(n, torso)
    b = a.copy()
    b[..., 0] += 150.0                                         # same pose, 1.5 torso lengths to the right
    b[..., :2] += np.arange(n)[:, None, None] * np.array([0.0, 1.0])   # drifting down 1 px/frame
    clips = np.arange(n).reshape(2, 10)
    whole, joints = W.kinematics(np.stack([a, b], 1), clips, 20.0)
    np.testing.assert_allclose(whole[:, WS["pair_pose_diff"]], 0.0, atol=1e-6)
    np.testing.assert_allclose(whole[:, WS["pair_valid"]], 1.0)
    np.testing.assert_allclose(whole[:, WS["pair_offset"]][:, 0], 1.5, rtol=1e-5)
    np.testing.assert_allclose(whole[:, WS["pair_rel_vel"]], np.tile([0.0, 20.0 / torso], (2, 1)),
                               atol=1e-5)
    np.testing.assert_allclose(whole[:, WS["pair_orient_diff"]], np.tile([1.0, 0.0], (2, 1)), atol=1e-6)
    # joints are the primary's: identical to a one-person call.
    w1, j1 = W.kinematics(a[:, None], clips, 20.0)
    np.testing.assert_allclose(joints, j1)
    np.testing.assert_array_equal(w1[:, KIN.whole_dim - sum(g.width for g in W._KIN_PAIR):], 0.0)
    # Secondary absent: pair columns zero.
    wn, _ = W.kinematics(np.stack([a, np.full_like(a, np.nan)], 1), clips, 20.0)
    np.testing.assert_array_equal(wn[:, WS["pair_valid"]], 0.0)
    np.testing.assert_allclose(wn[:, :WS["pair_offset"].start], w1[:, :WS["pair_offset"].start])


def test_kinematics_errors():
    with pytest.raises(ValueError, match=r"\(F, P, 17, 3\)"):
        W.kinematics(np.zeros((5, 17, 3)), np.zeros((1, 5), int), 25.0)
    with pytest.raises(ValueError, match="fps"):
        W.kinematics(np.zeros((5, 1, 17, 3)), np.zeros((1, 5), int), 0.0)
    with pytest.raises(ValueError, match="clip positions"):
        W.kinematics(np.zeros((5, 1, 17, 3)), np.array([[0, 5]]), 25.0)


# ------------------------------------------------------------------------------------------- HOF
def _boxes(n_frames, box, n_joints=17):
    return np.tile(np.asarray(box, float), (n_frames, n_joints, 1))


@pytest.mark.parametrize("k", range(8))
def test_uniform_flow_puts_all_mass_in_one_bin(k):
    ang = k * np.pi / 4
    flow = np.zeros((4, 24, 32, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3 * np.cos(ang), 3 * np.sin(ang)
    clips = np.array([[0, 1], [2, 4]])
    whole, joints = W.flow_histograms(flow, clips, _boxes(5, [4, 4, 12, 12]), subtract_camera=False)
    expected = np.zeros(11)
    expected[k], expected[9], expected[10] = 1.0, 3.0, 1.0
    np.testing.assert_allclose(whole, np.tile(expected, (2, 1)), atol=1e-5)
    np.testing.assert_allclose(joints, np.tile(expected, (2, 17, 1)), atol=1e-5)


def test_zero_flow_is_no_motion_and_camera_is_removed_in_patches():
    flow = np.zeros((3, 20, 20, 2), np.float32)
    whole, joints = W.flow_histograms(flow, np.array([[0, 1, 2]]), _boxes(4, [5, 5, 15, 15]))
    assert whole[0, 8] == 1.0 and whole[0, :8].sum() == 0 and whole[0, 9] == 0
    assert (joints[0, :, 8] == 1.0).all()
    # A pan of (0, -2) px: the whole frame sees it (bin 6 = up), the camera-compensated patches do not.
    flow[..., 1] = -2.0
    whole, joints = W.flow_histograms(flow, np.array([[0, 1, 2]]), _boxes(4, [5, 5, 15, 15]))
    assert whole[0, 6] == pytest.approx(1.0) and whole[0, 9] == pytest.approx(2.0)
    assert (joints[0, :, 8] == 1.0).all() and np.allclose(joints[0, :, 9], 0.0)
    whole_c, _ = W.flow_histograms(flow, np.array([[0, 1, 2]]), _boxes(4, [5, 5, 15, 15]),
                                   subtract_camera_whole=True)
    assert whole_c[0, 8] == pytest.approx(1.0)


def _naive_hof(region, n_bins, thr):
    """Direct per-pixel reference: (n_bins + 1) weights, magnitude sum, pixel count."""
    h = np.zeros(n_bins + 1)
    mags = []
    for dx, dy in region.reshape(-1, 2).astype(np.float64):
        m = np.hypot(dx, dy)
        mags.append(m)
        if m < thr:
            h[n_bins] += thr
        else:
            a = np.degrees(np.arctan2(dy, dx)) % 360
            h[int(np.floor(a / (360 / n_bins) + 0.5)) % n_bins] += m
    return h, np.sum(mags), len(mags)


def test_hof_matches_direct_computation_with_partial_patch():
    rng = np.random.default_rng(11)
    n_frames, n_bins, thr = 4, 6, 0.7
    flow = rng.normal(0, 1.5, size=(n_frames - 1, 18, 22, 2)).astype(np.float32)
    jb = np.zeros((n_frames, 2, 4))
    jb[:, 0] = (3, 2, 11, 10)                                  # inside
    jb[:, 1] = (16, -4, 26, 6)                                 # sticks out right and top
    jb[2, 0] = (5, 6, 13, 14)                                  # moves in frame 2
    clips = np.array([[1, 2, 3]])                              # frame 3 reads pair 2
    whole, joints = W.flow_histograms(flow, clips, jb, n_bins=n_bins, min_magnitude=thr,
                                      subtract_camera=False)
    pairs = [1, 2, 2]
    for j in range(2):
        hist, msum, cnt = np.zeros(n_bins + 1), 0.0, 0
        area = 0
        for p in pairs:
            x0, y0, x1, y1 = jb[p, j].astype(int)
            area += (x1 - x0) * (y1 - y0)
            h_, m_, c_ = _naive_hof(flow[p, max(y0, 0):y1, max(x0, 0):x1], n_bins, thr)
            hist, msum, cnt = hist + h_, msum + m_, cnt + c_
        expected = np.concatenate([hist / hist.sum(), [msum / cnt, cnt / area]])
        np.testing.assert_allclose(joints[0, j], expected, rtol=1e-5)
    hist, msum, cnt = np.zeros(n_bins + 1), 0.0, 0
    for p in pairs:
        h_, m_, c_ = _naive_hof(flow[p], n_bins, thr)
        hist, msum, cnt = hist + h_, msum + m_, cnt + c_
    np.testing.assert_allclose(whole[0], np.concatenate([hist / hist.sum(), [msum / cnt, 1.0]]), rtol=1e-5)
    assert joints[0, 1, -1] == pytest.approx(36 / 100)         # 6 of 10 columns x 6 of 10 rows inside


def test_hof_patch_outside_frame_and_nan_flow():
    flow = np.ones((2, 10, 10, 2), np.float32)
    flow[0, :5] = np.nan
    jb = _boxes(3, [40, 40, 50, 50], n_joints=1)
    whole, joints = W.flow_histograms(flow, np.array([[0, 1]]), jb, subtract_camera=False)
    np.testing.assert_array_equal(joints, 0.0)
    assert np.isfinite(whole).all()
    assert whole[0, -1] == pytest.approx(150 / 200)            # coverage counts finite pixels


def test_hof_errors():
    flow = np.zeros((3, 8, 8, 2), np.float32)
    with pytest.raises(ValueError, match="expected 4 frames"):
        W.flow_histograms(flow, np.array([[0]]), _boxes(3, [0, 0, 4, 4]))
    with pytest.raises(ValueError, match="NaN"):
        W.flow_histograms(flow, np.array([[0]]), _boxes(4, [0, 0, np.nan, 4]))
    with pytest.raises(ValueError, match="camera"):
        W.flow_histograms(flow, np.array([[0]]), _boxes(4, [0, 0, 4, 4]), camera=np.zeros((2, 2)))


def test_given_camera_vectors_are_used():
    flow = np.zeros((2, 12, 12, 2), np.float32)
    flow[..., 0] = 5.0
    cam = np.array([[5.0, 0.0], [0.0, 0.0]])
    _, joints = W.flow_histograms(flow, np.array([[0], [1]]), _boxes(3, [2, 2, 8, 8]), camera=cam)
    assert joints[0, 0, 8] == 1.0 and joints[1, 0, 0] == 1.0
    with pytest.raises(ValueError, match="translations"):
        W.flow_histograms(flow, np.array([[0]]), _boxes(3, [2, 2, 8, 8]), camera=np.zeros((2, 8)))


def test_border_median_matches_flow_helper():
    flow_mod = pytest.importorskip("aqa.extract.flow")
    if not hasattr(flow_mod, "camera_motion") or not hasattr(flow_mod, "CAMERA_MOTION_FIELDS"):
        pytest.skip("aqa.extract.flow.camera_motion not available")
    f = np.random.default_rng(2).normal(size=(3, 30, 50, 2))
    cols = [flow_mod.CAMERA_MOTION_FIELDS.index(c) for c in ("median_dx", "median_dy")]
    helper = flow_mod.camera_motion(f, band=0.1)[:, cols]
    ours = np.stack([W.border_median_flow(x, band=0.1) for x in f])
    np.testing.assert_allclose(ours, helper, rtol=1e-6, atol=1e-7)   # the helper returns float32


# ------------------------------------------------------------------------------------- camera motion
def test_border_median_flow_ignores_the_athlete():
    f = np.zeros((40, 40, 2), np.float32)
    f[..., 0] = 1.5
    f[4:36, 4:36] = (9.0, 9.0)                                 # centre object, inside the band-free core
    np.testing.assert_allclose(W.border_median_flow(f, band=0.1), [1.5, 0.0])
    with pytest.raises(ValueError, match="band"):
        W.border_median_flow(f, band=0.6)


def test_camera_motion_steps_matches_numpy_mean():
    rng = np.random.default_rng(5)
    cam = rng.normal(size=(9, 3))
    clips = np.array([[0, 2, 4], [5, 7, 9]])                   # frame 9 -> pair 8
    out = W.camera_motion_steps(cam, clips)
    np.testing.assert_allclose(out, np.stack([cam[[0, 2, 4]].mean(0), cam[[5, 7, 8]].mean(0)]), rtol=1e-6)
    cam[2] = np.nan
    out = W.camera_motion_steps(cam, clips, with_std=True)
    assert out.shape == (2, 6)
    np.testing.assert_allclose(out[0, :3], cam[[0, 4]].mean(0), rtol=1e-6)
    np.testing.assert_allclose(out[0, 3:], cam[[0, 4]].std(0), rtol=1e-6)


def test_families_describe_the_outputs():
    kin, hof = W.FAMILIES["kin_pose"], W.FAMILIES["hof_flow"]
    assert (kin.whole_dim, kin.joints_dim) == (23, 16)
    assert hof.whole_dim == hof.joints_dim == W.DEFAULT_N_BINS + 3
    d = hof.to_dict()
    assert d["joints_dim"] == 11 and [g["name"] for g in d["joints"]][:2] == ["hist", "no_motion"]
    assert all(g.description for g in kin.whole + kin.joints + hof.joints)
    assert W.hof_family(4).joints_dim == 7
    flow = np.zeros((2, 8, 8, 2), np.float32)
    whole, joints = W.flow_histograms(flow, np.array([[0, 1]]), _boxes(3, [0, 0, 4, 4]), n_bins=4)
    assert whole.shape[-1] == joints.shape[-1] == W.hof_family(4).whole_dim


def test_padded_positions_are_zero_frames_no_person_and_no_motion():
    n = 6
    kp = _standing(n)
    kp[:, L_WRI, 0] += 4.0 * np.arange(n) ** 2                      # an accelerating wrist
    kp = kp[:, None]                                                # (F, P=1, 17, 3)
    clips = np.array([[0, 1, 2], [3, 4, 5], [5, 5, 5]])
    padded = np.array([[False] * 3, [False, False, True], [True] * 3])
    w, j = W.kinematics(kp, clips, fps=25.0, padded=padded)
    w_ref, j_ref = W.kinematics(kp, np.array([[0, 1, 2], [3, 4, 5]]), fps=25.0)
    np.testing.assert_allclose(j[0], j_ref[0])
    # the padded position is missing, not the last frame repeated: step 1 averages frames 3 and 4 only
    two = W.kinematics(kp, np.array([[3, 4]]), fps=25.0)[1]
    np.testing.assert_allclose(j[1, :, JS["pos"]], two[0, :, JS["pos"]])
    assert j[1, 0, JS["valid"]] == pytest.approx(2 / 3) and w[1, WS["valid"]] == pytest.approx(2 / 3)
    assert not j[2].any() and not w[2].any()                        # an all-padding step: no person
    assert np.abs(j[1] - j_ref[1]).max() > 0                        # differs from reading frame 5

    flow = np.full((n - 1, 20, 20, 2), (2.0, 0.0), np.float32)      # motion in every real pair
    boxes = _boxes(n, [5, 5, 15, 15])
    hw, hj = W.flow_histograms(flow, clips, boxes, subtract_camera=False, padded=padded)
    assert hw[0, 0] == pytest.approx(1.0) and hw[0, 8] == 0          # real pairs: +x motion
    assert hw[2, 8] == 1.0 and hw[2, :8].sum() == 0 and (hj[2, :, 8] == 1.0).all()  # zero flow
    assert 0 < hw[1, 8] < 1 and hw[1, 9] == pytest.approx(2.0 * 2 / 3)
    cam = np.full((n - 1, 2), 1.5)
    steps = W.camera_motion_steps(cam, clips, padded=padded)
    np.testing.assert_allclose(steps[:, 0], [1.5, 1.0, 0.0])        # padding: the camera is still
