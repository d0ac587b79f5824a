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


def test_transform_starts_as_identity_for_same_domain():
    net = AIMNet(4, 4, 2, hidden=3)
    np.testing.assert_array_equal(_np(net.transform.weight), np.eye(4))
    assert not torch.any(net.transform.bias)
    assert AIMNet(4, 3, 2, hidden=3).transform.weight.shape == (4, 3)


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


def test_explain_steps_sum_to_prediction_and_plot(tmp_path):
    from aqa.heads.aim import plot_explain
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(16, 5, 7)), rng.normal(size=16) + 10
    m = AIMRegressor(dims=(2, 2, 3), hidden_dim=4, reg_hidden_dim=4, max_iter=5, random_state=0).fit(X, y)
    ex = m.explain(X)
    assert ex["step_scores"].shape == (16, 5) and ex["attention"].shape == (16, 5, 2)
    np.testing.assert_allclose(ex["step_scores"].sum(1), m.predict(X), rtol=1e-6)
    np.testing.assert_allclose(ex["attention"].sum(-1), 1.0, rtol=1e-9)
    paths = plot_explain(m, X[:3], tmp_path, ids=["a", "b", "c"])
    assert paths[0].exists() and paths[0].stat().st_size > 1000


def test_paper_lr_schedule_and_defaults():
    assert [aim_lr(e) for e in (0, 19, 20, 49, 50, 99, 100, 125)] == \
        pytest.approx([1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6, 1e-4, 1e-5])
    p = AIMRegressor().get_params()
    assert (p["hidden_dim"], p["reg_hidden_dim"], p["dropout"], p["theta"], p["batch_size"],
            p["weight_decay"], p["lr_schedule"]) == (512, 128, 0.2, 0.4, 64, 0.5, "aim")
    m = AIMRegressor(dims=(1, 1, 1), batch_size=4, max_iter=1)
    m.fit(np.zeros((8, 2, 3)), np.arange(8.0))
    assert m._steps_per_epoch == 2 and m._lr_at(2 * 20) == pytest.approx(1e-5)


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
