"""AIM (Gao et al., ECCV 2020): eqs. 1-8 checked on small inputs against a direct numpy reference."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aqa.heads.aim import AIMNet, AIMRegressor, aim_lr  # noqa: E402

torch.set_num_threads(1)


def _np(t):
    return t.detach().double().numpy()


def _reference(net: AIMNet, x: np.ndarray):
    """Eqs. 1-6 written out in numpy; the LSTM (eq. 3's temporal network) is torch's, fed the
    numpy-built M_ps."""
    dp, ds, dw = net.dims
    a_p, a_s, f_wl = x[..., :dp], x[..., dp:dp + ds], x[..., dp + ds:]
    T = a_s @ _np(net.transform.weight).T + _np(net.transform.bias)
    i_d = a_p - T                                                    # eq. 1
    m_ps = np.concatenate([a_p, i_d], -1)                            # eq. 2
    with torch.no_grad():
        y_psi = _np(net.lstm(torch.tensor(m_ps, dtype=torch.float32))[0])   # eq. 3
    enc = net.encoder[0]
    x_wl = np.maximum(f_wl @ _np(enc.weight).T + _np(enc.bias), 0)
    o_key = f_wl @ _np(net.key.weight).T + _np(net.key.bias)          # eq. 5, key from F_wl
    B, S, _ = x.shape
    z = np.zeros_like(x_wl)
    w_all = np.zeros((B, S, 2))
    for b in range(B):
        for t in range(S):
            M = np.stack([x_wl[b, t], y_psi[b, t]])                   # (X_wl (+) Y_psi)' : 2 x d
            logits = M @ o_key[b, t]
            w = np.exp(logits - logits.max())
            w /= w.sum()                                              # eq. 5 softmax
            z[b, t] = w @ M                                           # eq. 4
            w_all[b, t] = w
    r1, r2 = net.reg[1], net.reg[3]
    steps = (np.maximum(z @ _np(r1.weight).T + _np(r1.bias), 0) @ _np(r2.weight).T + _np(r2.bias))[..., 0]
    return steps.sum(1), steps, w_all                                  # eq. 6


def test_aimnet_matches_equations():
    torch.manual_seed(0)
    net = AIMNet(3, 2, 4, hidden=6, reg_hidden=5, dropout=0.0).eval()
    x = np.random.default_rng(0).normal(size=(2, 4, 9))
    with torch.no_grad():
        out = net(torch.tensor(x, dtype=torch.float32))
    score, steps, w = _reference(net, x)
    np.testing.assert_allclose(_np(out["pred"]), score, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_np(out["steps"]), steps, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_np(out["attention"]), w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(_np(out["attention"]).sum(-1), 1.0, rtol=1e-6)


def test_transform_init_is_standard_unless_same_domain_is_declared():
    torch.manual_seed(0)
    net = AIMNet(4, 4, 2, hidden=3)                       # equal sizes alone say nothing of the domain
    torch.manual_seed(0)
    ref = torch.nn.Linear(4, 4)                          # the standard nn.Linear initialisation
    np.testing.assert_array_equal(_np(net.transform.weight), _np(ref.weight))
    assert not np.allclose(_np(net.transform.weight), np.eye(4))
    same = AIMNet(4, 4, 2, hidden=3, transform_init="identity")
    np.testing.assert_array_equal(_np(same.transform.weight), np.eye(4))
    assert not torch.any(same.transform.bias)
    assert AIMNet(4, 3, 2, hidden=3).transform.weight.shape == (4, 3)
    with pytest.raises(ValueError, match="Ds == Dp"):
        AIMNet(4, 3, 2, hidden=3, transform_init="identity")
    with pytest.raises(ValueError, match="transform_init"):
        AIMNet(4, 4, 2, hidden=3, transform_init="eye")


@pytest.mark.slow
def test_identity_init_warns_on_a_zero_padded_secondary():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 2, 3, 5)).astype(np.float32)   # the (n, S, 3, D) layout of aim_inputs
    X[:, :, 1, 2:] = 0                                      # a 2-d camera stream padded to D = 5
    y = rng.normal(size=12)
    kw = dict(hidden_dim=4, reg_hidden_dim=4, max_iter=1, random_state=0)
    with pytest.warns(UserWarning, match="zero-padded"):
        AIMRegressor(transform_init="identity", **kw).fit(X, y)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = AIMRegressor(**kw).fit(X, y)                    # default: standard init, no warning
        X[:, :, 0, 2:] = 0                                  # primary padded the same way: same domain
        AIMRegressor(transform_init="identity", **kw).fit(X, y)
    assert not np.allclose(_np(m.module_.transform.weight), np.eye(5))


def test_ablations_change_the_interaction_and_fusion():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 9)
    half = AIMNet(3, 3, 3, hidden=4, fusion="half").eval()
    torch.testing.assert_close(half(x)["attention"], torch.full((2, 3, 2), 0.5))
    # "concat" feeds (A_p, A_s) to the LSTM: no transform module at all
    cat = AIMNet(3, 3, 3, hidden=4, interaction="concat")
    assert not hasattr(cat, "transform") and cat.lstm.input_size == 6
    # no whole-scene stream (Dw = 0): the AIM feature gets all the weight
    solo = AIMNet(2, 2, 0, hidden=4).eval()
    torch.testing.assert_close(solo(torch.randn(2, 3, 4))["attention"][..., 1], torch.ones(2, 3))


def test_multitask_loss_is_eq8():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3, 6))
    y, ex, sn = rng.normal(size=20) * 5 + 50, rng.normal(size=20) + 30, rng.normal(size=20) + 20
    m = AIMRegressor(dims=(2, 2, 2), hidden_dim=4, reg_hidden_dim=4, multitask=True, theta=0.3,
                     max_iter=2, random_state=0).fit(X, y, execution=ex, sync=sn)
    out = m._forward(m.module_, torch.tensor(X, dtype=torch.float32), {"execution": ex, "sync": sn}, True)
    yt = torch.tensor((y - m.y_mean_) / m.y_std_, dtype=torch.float32)
    loss = m._batch_loss(out["pred"], yt, out).detach()
    mse = lambda a, b: float(torch.mean((a - b) ** 2).detach())  # noqa: E731
    e_t = torch.tensor((ex - ex.mean()) / ex.std(), dtype=torch.float32)
    s_t = torch.tensor((sn - sn.mean()) / sn.std(), dtype=torch.float32)
    expect = mse(out["pred"], yt) + 0.3 * mse(out["execution"], e_t) + 0.7 * mse(out["sync"], s_t)
    assert float(loss) == pytest.approx(expect, rel=1e-5)
    sub = m.predict_subscores(X)
    assert sub["execution"].shape == sub["sync"].shape == (20,)
    with pytest.raises(ValueError, match="sync"):
        AIMRegressor(dims=(2, 2, 2), multitask=True, max_iter=1).fit(X, y, execution=ex)


@pytest.mark.slow
def test_explain_steps_sum_to_prediction_and_plot(tmp_path):
    from aqa.heads.aim import plot_explain
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(16, 5, 7)), rng.normal(size=16) + 10
    m = AIMRegressor(dims=(2, 2, 3), hidden_dim=4, reg_hidden_dim=4, max_iter=5, random_state=0).fit(X, y)
    ex = m.explain(X)
    assert ex["step_scores"].shape == (16, 5) and ex["attention"].shape == (16, 5, 2)
    np.testing.assert_allclose(ex["step_scores"].sum(1), m.predict(X), rtol=1e-6)
    np.testing.assert_allclose(ex["attention"].sum(-1), 1.0, rtol=1e-9)
    paths = m.plot_explain(X[:3], ["a", "b", "c"], tmp_path)
    assert paths == plot_explain(m, X[:3], ["a", "b", "c"], tmp_path)
    np.testing.assert_allclose(m.predict_steps(X), ex["step_scores"])
    assert paths[0].exists() and paths[0].stat().st_size > 1000


def test_paper_lr_schedule_and_defaults():
    assert [aim_lr(e) for e in (0, 19, 20, 49, 50, 99, 100, 125)] == \
        pytest.approx([1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6, 1e-4, 1e-5])
    p = AIMRegressor(**AIMRegressor.paper_params).get_params()
    assert (p["max_iter"], p["normalize_X"]) == (9000, False)
    assert (p["hidden_dim"], p["reg_hidden_dim"], p["dropout"], p["theta"], p["batch_size"],
            p["weight_decay"], p["lr_schedule"], p["learning_rate"]) == (512, 128, 0.2, 0.4, 64, 0.5, "aim", 1e-4)
    m = AIMRegressor(dims=(1, 1, 1), batch_size=4, max_iter=1, learning_rate=1e-4)
    m.fit(np.zeros((8, 2, 3)), np.arange(8.0))
    assert m._epoch_steps == 2 and m._lr_at(2 * 20) == pytest.approx(1e-5)
    d = AIMRegressor(dims=(1, 1, 1), batch_size=4, max_iter=1).fit(np.zeros((8, 2, 3)), np.arange(8.0))
    assert d._lr_at(0) == pytest.approx(1e-3) and d._lr_at(2 * 20) == pytest.approx(1e-4)  # default base 1e-3
    assert (p["transform_init"], p["max_epochs"]) == ("random", None)
    # max_epochs counts the paper's epochs: 9 videos at batch 4 = 2 steps (the 1-video tail is skipped)
    m = AIMRegressor(dims=(1, 1, 1), hidden_dim=2, reg_hidden_dim=2, batch_size=4, max_epochs=3,
                     max_iter=1).fit(np.zeros((9, 2, 3)), np.arange(9.0))
    assert m.n_iter_ == 6 and len(m.loss_curve_) == 3
    with pytest.raises(ValueError, match="max_epochs"):
        AIMRegressor(max_epochs=0).fit(np.zeros((9, 2, 3)), np.arange(9.0))


def test_input_validation():
    X = np.zeros((6, 2, 7))
    with pytest.raises(ValueError, match="sum to"):
        AIMRegressor(dims=(2, 2, 2), max_iter=1).fit(X, np.arange(6.0))
    with pytest.raises(ValueError, match="interaction"):
        AIMRegressor(interaction="sum", max_iter=1).fit(X, np.arange(6.0))
    with pytest.raises(ValueError, match="Dp == Ds"):
        AIMRegressor(dims=(3, 2, 2), interaction="no_transform", max_iter=1).fit(X, np.arange(6.0))
    m = AIMRegressor(dims=(3, 2, 2), hidden_dim=2, reg_hidden_dim=2, max_iter=1).fit(X, np.arange(6.0))
    with pytest.raises(ValueError, match="features per step"):
        m.predict(np.zeros((2, 2, 6)))
    with pytest.raises(ValueError, match="multitask"):
        m.predict_subscores(X)


def _kp_person(F, rng, shift=0.0):
    base = rng.normal(scale=10, size=(17, 2)) + 100
    kp = np.zeros((F, 17, 3), np.float32)
    for f in range(F):
        kp[f, :, :2] = base + f * 0.5 + shift
        kp[f, :, 2] = 0.9
    kp[:, 11:13, 1] += 40      # hips below shoulders: torso length ~ 40 px
    return kp


def test_pose_step_kinematics_reference():
    from aqa.heads.aim import pose_step_kinematics
    kp = _kp_person(6, np.random.default_rng(0))
    kp[3] = np.nan                                             # one missing frame
    out = pose_step_kinematics(kp, np.arange(6), np.array([0, 3]), np.array([2, 5])).reshape(2, 17, 4)
    torso = (5, 6, 11, 12)
    f = kp[0, :, :2].astype(float)
    centre = f[list(torso)].mean(0)
    size = np.linalg.norm(f[[5, 6]].mean(0) - f[[11, 12]].mean(0))
    np.testing.assert_allclose(out[0, :, :2], (f - centre) / size, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[0, :, 2:], 0.0, atol=1e-6)     # pure translation: no relative motion
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("camera", [True, False])
def test_aim_inputs_from_cache(tmp_path, camera):
    from aqa.data.cache import CacheReader, CacheWriter
    from aqa.heads.aim import aim_inputs
    rng = np.random.default_rng(0)
    S, F, D = 3, 9, 5
    path = tmp_path / "c.h5"
    with CacheWriter(path, config={}, weights={}, untrained=False) as w:
        for k, two in enumerate([True, True, False]):
            cam = {"motion/camera": rng.normal(size=(S, 2)).astype(np.float32)} if camera else {}
            p = _kp_person(F, rng)
            kp = np.stack([p, _kp_person(F, rng, 3.0) if two else np.full_like(p, np.nan)], 1)
            w.write_video(f"v{k}", attrs={"fps": 25.0, "n_frames": F, "height": 240, "width": 320,
                                          "source_relpath": f"v{k}.mp4", "source_sha256": "0" * 64},
                          arrays={"frames/index": np.arange(F, dtype=np.int32),
                                  "pose/keypoints": kp.astype(np.float32),
                                  "pose/boxes": np.zeros((F, 2, 4), np.float32),
                                  "pose/box_scores": np.ones((F, 2), np.float32),
                                  "pose/roles": np.array([0, 1], np.int8),
                                  "features/kin_pose/whole": rng.normal(size=(S, D)).astype(np.float32),
                                  "features/kin_pose/joints": rng.normal(size=(S, 17, D)).astype(np.float32),
                                  "features/kin_pose/clip_start": np.arange(S, dtype=np.int32) * 3,
                                  "features/kin_pose/clip_end": np.arange(S, dtype=np.int32) * 3 + 2,
                                  **cam})
    if not camera:      # a pose-only cache (--flow none): one-person videos have no secondary stream
        with CacheReader(path) as r:
            assert aim_inputs(r, ["v0", "v1"], "kin_pose", secondary="pose").shape == (2, S, 3, 68)
            with pytest.raises(ValueError, match=r"'v0' \(3 of 3\) has none.*--flow none"):
                aim_inputs(r, ["v0", "v1", "v2"], "kin_pose")
        return
    with CacheReader(path) as r:
        X2 = aim_inputs(r, ["v0", "v1"], "kin_pose", secondary="pose")   # both two-person
        X3 = aim_inputs(r, ["v0", "v1", "v2"], "kin_pose")               # one lacks it: camera
        # "auto" decides once per cache: a subset of two-person videos (a training set) gets the
        # camera like the rest, never a different stream in the same slot than its test set
        np.testing.assert_array_equal(aim_inputs(r, ["v0", "v1"], "kin_pose"), X3[:2])
        cam = r.load_camera(["v0", "v1", "v2"])
        whole = r.load("kin_pose", ["v0", "v1"])
        with pytest.raises(ValueError, match="no secondary person"):
            aim_inputs(r, ["v2"], "kin_pose", secondary="pose")
    assert X2.shape == (2, S, 3, 68)
    assert np.any(X2[:, :, 1] != 0)
    np.testing.assert_allclose(X2[:, :, 2, :D], whole)
    np.testing.assert_allclose(X3[:, :, 1, :2], cam)
    assert np.all(X3[:, :, 1, 2:] == 0)
    m = AIMRegressor(hidden_dim=4, reg_hidden_dim=4, max_iter=2, random_state=0).fit(X3, np.arange(3.0))
    assert m.module_config_["dp"] == m.module_config_["ds"] == m.module_config_["dw"] == 68
    assert m.predict(X3).shape == (3,)
