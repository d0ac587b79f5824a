"""JRG's modules against direct numpy computations of the paper's equations (1)-(8)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from aqa.heads import jrg as J  # noqa: E402
from aqa.heads.jrg import JRGRegressor, skeleton_mask  # noqa: E402

torch.set_num_threads(1)
TINY = dict(encoder_dim=8, hidden_dim=4, max_iter=40, learning_rate=1e-2, lr_schedule="constant",
            staged=False, normalize_X=False)      # the equations are checked on the raw inputs


def _data(n=24, S=3, Jn=17, D=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, S, 1 + Jn, D).astype(np.float32)
    y = X[:, :, 0, 0].sum(1) + X[:, :, 1:, 1].mean(2).sum(1) + 0.1 * rng.randn(n)
    return X, y


def _np_diff(F, Fo, A, w):
    Jn, M = F.shape
    D = np.zeros((Jn, M))
    for i in range(Jn):
        for j in range(Jn):
            for m in range(M):
                D[i, m] += A[i, j] * (F[i, m] - Fo[j, m]) * w[j]
    return D


def test_skeleton_mask_coco17():
    m = skeleton_mask("coco17", 17)
    assert m.shape == (17, 17) and np.array_equal(m, m.T)
    assert np.all(np.diag(m) == 1)
    assert m.sum() == 17 + 2 * 19
    assert m[11, 12] == 1 and m[0, 16] == 0        # hip-hip edge; nose and ankle irrelevant
    with pytest.raises(ValueError, match="17 joint"):
        skeleton_mask("coco17", 5)
    with pytest.raises(ValueError, match="out of range"):
        skeleton_mask([(0, 9)], 3)


def test_graph_init_nonnegative_masked():
    torch.manual_seed(0)
    mask = skeleton_mask("coco17", 17)
    mod = J.JRGModule(4, 4, 17, mask, 8, 4)
    for raw in (mod.As_raw, mod.Ap_raw):
        r = raw.detach().numpy()
        assert np.all(r[mask == 1] >= 0) and np.all(r[mask == 1] < 1)
        assert np.all(r[mask == 0] == 0)
        assert len(np.unique(r[mask == 1])) > 10            # random, not constant
    with torch.no_grad():
        mod.As_raw.fill_(-0.5)
        mod.As_raw[0, 0] = 2.0
        mod.As_raw[0, 16] = 3.0                             # irrelevant pair: masked out
    A = mod.As.detach().numpy()
    assert A[0, 0] == 2.0 and A[0, 16] == 0 and A.min() == 0


def test_eq1_eq2_commonality_and_mean_pool():
    rng = np.random.RandomState(1)
    F = rng.randn(2, 3, 5, 4)
    A = rng.rand(5, 5) * skeleton_mask("chain", 5)
    H1 = J.commonality(torch.tensor(F), torch.tensor(A)).numpy()
    for b in range(2):
        for t in range(3):
            np.testing.assert_allclose(H1[b, t], A @ F[b, t], rtol=1e-12)
            ones = np.ones(5)
            np.testing.assert_allclose(J.mean_pool(torch.tensor(H1))[b, t].numpy(), H1[b, t].T @ ones / 5)


def test_eq3_eq4_difference():
    rng = np.random.RandomState(2)
    F, Fo = rng.randn(5, 3), rng.randn(5, 3)
    A, w = rng.rand(5, 5), rng.randn(5)
    D = J.difference(torch.tensor(F), torch.tensor(Fo), torch.tensor(A), torch.tensor(w)).numpy()
    np.testing.assert_allclose(D, _np_diff(F, Fo, A, w), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(J.mean_pool(torch.tensor(D)).numpy(), D.T @ np.ones(5) / 5)


def test_eq6_feature_pooling_eq7_orthogonal():
    rng = np.random.RandomState(3)
    u = rng.rand(5, 2, 3, 6)
    a, b = rng.randn(5), rng.randn(5)
    v = J.feature_pooling(torch.tensor(u), torch.tensor(a), torch.tensor(b)).numpy()
    np.testing.assert_allclose(v, sum(a[i] * u[i] + b[i] for i in range(5)))
    ro = J.orthogonal_regularisation(torch.tensor(u), 0.8).item()
    ref = 0.0
    for i in range(5):
        for j in range(i + 1, 5):
            ref += 0.8 * np.mean([u[i, p, t] @ u[j, p, t] for p in range(2) for t in range(3)])
    assert ro == pytest.approx(ref, rel=1e-10)


def _np_forward(mod, X, joint=None):
    """Eqs. (1)-(8) in numpy with the module's weights; ``joint`` keeps one joint's row (Fig. 8)."""
    p = {k: v.detach().double().numpy() for k, v in mod.state_dict().items()}
    mask = p["mask"]
    As, Ap = np.maximum(p["As_raw"], 0) * mask, np.maximum(p["Ap_raw"], 0) * mask
    w = p["w"]
    n, S = X.shape[:2]
    out = np.zeros((n, S))
    for b in range(n):
        for t in range(S):
            q, F = X[b, t, 0], X[b, t, 1:]
            Fp = X[b, t - 1, 1:] if t > 0 else F
            H1, Ds, Dp = As @ F, _np_diff(F, F, As, w), _np_diff(F, Fp, Ap, w)
            pool = (lambda H: H.T @ np.ones(len(H)) / len(H)) if joint is None else (lambda H: H[joint])
            feats = {"q": q, "h0": pool(F), "h1": pool(H1), "ds": pool(Ds), "dp": pool(Dp)}
            v = 0
            for i, k in enumerate(J.FEATURES):
                u = np.maximum(p[f"encoders.{k}.0.weight"] @ feats[k] + p[f"encoders.{k}.0.bias"], 0)
                v = v + p["alpha"][i] * u + p["beta"][i]
            h = np.maximum(p["score.0.weight"] @ v + p["score.0.bias"], 0)
            out[b, t] = (p["score.2.weight"] @ h + p["score.2.bias"])[0]
    return out


def test_full_forward_matches_numpy_eqs_1_to_8():
    X, y = _data(n=6, S=3, Jn=17, D=4)
    est = JRGRegressor(**TINY, stats_anchor=False, random_state=0).fit(X, y)    # the paper's eqs alone
    ref_steps = _np_forward(est.module_, X.astype(np.float64))
    np.testing.assert_allclose(est.predict_steps(X), ref_steps * est.y_std_ + est.y_mean_ / 3, rtol=1e-8)
    np.testing.assert_allclose(est.predict(X), ref_steps.sum(1) * est.y_std_ + est.y_mean_, rtol=1e-8)
    pj = est.predict_joints(X)
    assert pj.shape == (6, 3, 17)
    for j in (0, 5, 16):
        np.testing.assert_allclose(pj[:, :, j], _np_forward(est.module_, X.astype(np.float64), joint=j)
                                   * est.y_std_ + est.y_mean_ / 3, rtol=1e-8)


def test_training_regularisers_in_loss():
    X, y = _data(n=6, S=2)
    est = JRGRegressor(**TINY, random_state=0).fit(X, y)
    m = est.module_
    out = est._forward(m, torch.as_tensor(X), {}, True)
    As, Ap = est.spatial_graph_, est.temporal_graph_
    ref = J.orthogonal_regularisation(out["u_hat"], 0.8).item() + 0.1 * ((As ** 2).sum() + (Ap ** 2).sum())
    assert out["reg"].item() == pytest.approx(ref, rel=1e-5)
    assert "reg" not in est._forward(m, torch.as_tensor(X), {}, False)


@pytest.mark.slow
def test_fit_learns_and_graphs_stay_masked_nonnegative():
    X, y = _data(n=60, S=3)
    est = JRGRegressor(**{**TINY, "max_iter": 150}, random_state=0).fit(X[:45], y[:45])
    assert est.n_iter_ == 150 and len(est.loss_curve_) == 150
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    from scipy.stats import spearmanr
    assert spearmanr(est.predict(X[45:]), y[45:])[0] > 0.5
    mask = skeleton_mask("coco17", 17)
    for A in (est.spatial_graph_, est.temporal_graph_):
        assert A.min() >= 0 and np.all(A[mask == 0] == 0) and A.shape == (17, 17)


@pytest.mark.slow
def test_deterministic_and_layout_equivalent():
    X, y = _data(n=12, S=2, D=3)
    a = JRGRegressor(**TINY, random_state=3).fit(X, y).predict(X)
    b = JRGRegressor(**TINY, random_state=3).fit(X, y).predict(X)
    c = JRGRegressor(**TINY, random_state=4).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    flat = JRGRegressor(**TINY, random_state=3, layout=(2, 18, 3)).fit(X.reshape(12, -1), y)
    np.testing.assert_allclose(flat.predict(X.reshape(12, -1)), a, rtol=1e-6)


def test_staged_training_freezes_loaded_weights():
    X, y = _data(n=16, S=2, D=3)
    snaps = {}

    class Spy(JRGRegressor):
        def _fit_loop(self, *args, desc="train", **kw):
            if desc == "stage 2 full":
                snaps["before"] = {k: v.clone() for k, v in self.module_.state_dict().items()}
            return super()._fit_loop(*args, desc=desc, **kw)

    est = Spy(**{**TINY, "branch_iter": 10, "staged": True}, whole_iter=4, final_iter=6, freeze_iter=6,
              random_state=0).fit(X, y)
    assert est.n_iter_ == 4 + 2 * 10 + 6               # whole-scene, difference, commonality, full
    assert est.stage_iterations_ == {"whole": 4, "difference": 10, "commonality": 10, "full": 6}
    after = est.module_.state_dict()
    for k in ("encoders.q.0.weight", "encoders.ds.0.weight", "encoders.h1.0.weight", "As_raw", "Ap_raw", "w"):
        assert torch.equal(after[k], snaps["before"][k]), k
    assert not torch.equal(after["score.0.weight"], snaps["before"]["score.0.weight"])
    assert not torch.equal(after["alpha"], snaps["before"]["alpha"])


@pytest.mark.parametrize("freeze", [False, True])
def test_staged_commonality_branch_can_keep_the_learned_spatial_graph(freeze):
    X, y = _data(n=16, S=2, D=3)
    snaps = {}

    class Spy(JRGRegressor):
        def _fit_loop(self, *args, desc="train", **kw):
            snaps[desc] = self.module_.As_raw.detach().clone()
            return super()._fit_loop(*args, desc=desc, **kw)

    Spy(**{**TINY, "branch_iter": 10, "staged": True}, whole_iter=3, final_iter=2, freeze_iter=0,
        freeze_commonality_graph=freeze, random_state=0).fit(X, y)
    moved = not torch.equal(snaps["stage 1 commonality"], snaps["stage 2 full"])
    assert moved is not freeze
    assert not torch.equal(snaps["stage 1 difference"], snaps["stage 1 commonality"])   # learned first


def test_bad_input_errors():
    X, y = _data(n=8, S=2, Jn=5)
    with pytest.raises(ValueError, match="coco17"):
        JRGRegressor(**TINY).fit(X, y)
    est = JRGRegressor(**TINY, skeleton="chain").fit(X, y)
    with pytest.raises(ValueError, match="joints"):
        est.predict(np.zeros((2, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"\(n, S, 1\+J, D\)"):
        JRGRegressor(**TINY).fit(X.reshape(8, -1), y)


@pytest.mark.slow
def test_staged_paper_preset_and_stage_iter_repeats_an_early_stopped_fit():
    p = JRGRegressor(**JRGRegressor.paper_params).get_params()
    assert p["staged"] and (p["whole_iter"], p["branch_iter"], p["final_iter"], p["freeze_iter"]) \
        == (1500, 4500, 3000, 500)
    assert (p["learning_rate"], p["lr_schedule"], p["normalize_X"]) == (1e-4, "cyclic", False)
    assert not JRGRegressor().staged
    X, y = _data(n=30, S=2, D=3)
    kw = {**TINY, "staged": True, "whole_iter": 12, "branch_iter": 30, "final_iter": 20, "freeze_iter": 4,
          "learning_rate": 1e-3}
    es = JRGRegressor(**kw, early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                      random_state=0).fit(X, y)
    refit = es.refit_params()
    lengths = refit["stage_iter"]
    assert refit["early_stopping"] is False and lengths == es.stage_iterations_
    assert 1 <= lengths["whole"] <= 12 and 1 <= lengths["difference"] <= 30 and 1 <= lengths["full"] <= 20
    again = JRGRegressor(**{**kw, **refit}, random_state=0).fit(X, y)
    assert again.stage_iterations_ == lengths and again.n_iter_ == sum(lengths.values())
    with pytest.raises(ValueError, match="stage_iter must map stages"):
        JRGRegressor(**{**kw, "stage_iter": {"wholes": 3}}).fit(X, y)
    with pytest.raises(ValueError, match="held out no validation rows"):
        JRGRegressor(**TINY).fit(X, y).refit_params()


def test_branch_iter_names_the_stage_1_branches_and_max_iter_still_sets_them_with_a_warning():
    import warnings
    X, y = _data(n=12, S=2, D=3)
    stages = {**TINY, "staged": True, "whole_iter": 2, "final_iter": 3, "freeze_iter": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = JRGRegressor(**{**stages, "branch_iter": 4, "max_iter": 7}, random_state=0).fit(X, y)
    assert est.stage_iterations_ == {"whole": 2, "difference": 4, "commonality": 4, "full": 3}
    with pytest.warns(DeprecationWarning, match="max_iter=5 sets the difference and commonality "
                                                "branches, as before; pass branch_iter=5"):
        est = JRGRegressor(**{**stages, "max_iter": 5}, random_state=0).fit(X, y)
    assert est.stage_iterations_ == {"whole": 2, "difference": 5, "commonality": 5, "full": 3}
