"""Li, Chai & Chen's fragment network: unshared per-fragment layers, eq. 3 loss, occlusion probe."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aqa.heads.fragment import FragmentNet, FragmentRegressor  # noqa: E402
from aqa.heads.losses import half_mse, pairwise_ranking_loss  # noqa: E402

torch.set_num_threads(1)


def test_per_fragment_layers_are_unshared():
    torch.manual_seed(0)
    net = FragmentNet(3, 5, fragment_dim=4, hidden=(6, 3), dropout=0.0).eval()
    x = torch.randn(2, 3, 5)
    f = net.fragment_features(x)
    for k in range(3):
        ref = torch.relu(x[:, k] @ net.frag_weight[k] + net.frag_bias[k])
        torch.testing.assert_close(f[:, k], ref)
    assert not torch.equal(net.frag_weight[0], net.frag_weight[1])
    # changing fragment 1 changes only fragment 1's features
    x2 = x.clone()
    x2[:, 1] += 1.0
    f2 = net.fragment_features(x2)
    torch.testing.assert_close(f2[:, [0, 2]], f[:, [0, 2]])
    # concatenation -> FC -> FC -> output
    h = f.flatten(1)
    l1, l2, l3 = net.head[0], net.head[3], net.head[6]
    ref = l3(torch.relu(l2(torch.relu(l1(h))))).squeeze(-1)
    torch.testing.assert_close(net(x), ref)


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3, 4))
    return X, 50 + 8 * X[:, -1, 0] + rng.normal(size=n)


def test_loss_is_eq3_with_balanced_alpha_and_paper_margin():
    X, y = _data()
    m = FragmentRegressor(fragment_dim=4, hidden=(8, 4), max_iter=2, random_state=0).fit(X, y)
    assert m._ranking_margin_normalised() == pytest.approx(2.0 / m.y_std_)   # delta = 2 points
    s = torch.randn(10, requires_grad=True)
    g = torch.randn(10)
    loss = m._batch_loss(s, g, {}).detach()
    l1 = half_mse(s, g)
    l2 = pairwise_ranking_loss(s, g, 2.0 / m.y_std_)
    g1 = torch.autograd.grad(l1, s, retain_graph=True)[0].norm()
    g2 = torch.autograd.grad(l2, s, retain_graph=True)[0].norm()
    alpha = float(g1 / g2)
    l1, l2 = l1.detach(), l2.detach()
    assert float(loss) == pytest.approx(float(l1) + alpha * float(l2), rel=1e-5)
    # MSE only and a fixed weight
    m0 = FragmentRegressor(ranking_weight=0.0, max_iter=1).fit(X, y)
    assert float(m0._batch_loss(s, g, {}).detach()) == pytest.approx(float(l1))
    m1 = FragmentRegressor(ranking_weight=0.5, ranking_margin=0.3, max_iter=1).fit(X, y)
    assert float(m1._batch_loss(s, g, {}).detach()) == pytest.approx(
        float(l1) + 0.5 * float(pairwise_ranking_loss(s, g, 0.3, reduction="mean").detach()), rel=1e-6)


@pytest.mark.slow
def test_fragment_contributions_are_occlusion_differences(tmp_path):
    X, y = _data()
    m = FragmentRegressor(fragments="all", fragment_dim=4, hidden=(8, 4), max_iter=30,
                          random_state=0).fit(X, y)
    c = m.fragment_contributions(X[:5])
    assert c.shape == (5, 3)
    for k in range(3):
        Xk = X[:5].copy()
        Xk[:, k] = m.x_mean_[k]          # occluded: the training mean, zero once standardised
        np.testing.assert_allclose(c[:, k], m.predict(X[:5]) - m.predict(Xk), rtol=1e-5, atol=1e-6)
    from aqa.heads.fragment import plot_explain
    paths = plot_explain(m, X[:4], list("abcd"), tmp_path)
    assert paths[0].exists() and paths[0].stat().st_size > 1000


def test_paper_defaults_and_inputs():
    p = FragmentRegressor(**FragmentRegressor.paper_params).get_params()
    assert (p["max_iter"], p["normalize_X"]) == (3000, False)
    assert (p["learning_rate"], p["fragment_lr_ratio"], p["lr_schedule"], p["lr_step"], p["lr_decay"],
            p["ranking_weight"], p["ranking_margin"], p["dropout"], p["fragments"]) \
        == (1e-3, 0.1, "step", 600, 0.45, "balanced", None, 0.2, "all")
    X, y = _data()
    m = FragmentRegressor(n_fragments=3, fragment_dim=2, hidden=(4, 2), max_iter=2,
                          random_state=0).fit(X.reshape(len(X), -1), y)
    assert m.input_shape_ == (3, 4) and m.fragment_index_ == [0, 1, 2]   # Sec. 3's network
    assert m.module_config_["n_fragments"] == 3
    assert m.predict(X.reshape(len(X), -1)).shape == (len(X),)
    with pytest.raises(ValueError, match="not divisible"):
        FragmentRegressor(n_fragments=5, max_iter=1).fit(X.reshape(len(X), -1), y)
    with pytest.raises(ValueError, match="expecting 12 features"):
        m.predict(X[:, :2].reshape(len(X), -1))
    m3 = FragmentRegressor(fragment_dim=2, hidden=(4, 2), max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="fragments x features"):
        m3.predict(X[:, :, :2])
    with pytest.raises(ValueError, match="ranking_weight"):
        FragmentRegressor(ranking_weight="auto", max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="hidden"):
        FragmentRegressor(hidden=(4,), max_iter=1).fit(X, y)


def test_fragment_selection_and_the_papers_two_learning_rates():
    X, y = _data()
    last = FragmentRegressor(fragments="last", fragment_dim=2, hidden=(4, 2), max_iter=3,
                             random_state=0).fit(X, y)                 # Sec. 5.3's setting
    only = FragmentRegressor(fragments=[-1], fragment_dim=2, hidden=(4, 2), max_iter=3,
                             random_state=0).fit(X[:, 2:], y)
    np.testing.assert_allclose(last.predict(X), only.predict(X[:, 2:]))       # the others unused
    Xz = X.copy()
    Xz[:, :2] = 99.0
    np.testing.assert_allclose(last.predict(Xz), last.predict(X))
    two = FragmentRegressor(fragments=[0, 2], fragment_dim=2, hidden=(4, 2), max_iter=3,
                            random_state=0).fit(X, y)
    assert two.fragment_index_ == [0, 2] and two.fragment_contributions(X[:4]).shape == (4, 2)
    for bad, msg in (([3], "out of range"), ([0, -3], "twice"), ("first", "'all', 'last'"),
                     ([], "at least one")):
        with pytest.raises(ValueError, match=msg):
            FragmentRegressor(fragments=bad, max_iter=1).fit(X, y)
    # Sec. 5.2: the per-fragment layers (the extractors) learn at a tenth of the score layers' rate
    seen = []
    real = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append([(len(g["params"]), g["lr"]) for g in self.param_groups])
        return real(self, *a, **k)

    try:
        torch.optim.Adam.step = spy
        m = FragmentRegressor(fragments="all", fragment_dim=2, hidden=(4, 2), max_iter=2,
                              random_state=0).fit(X, y)
    finally:
        torch.optim.Adam.step = real
    assert seen[0] == [(2, pytest.approx(1e-4)), (6, pytest.approx(1e-3))]
    with pytest.raises(ValueError, match="fragment_lr_ratio"):
        FragmentRegressor(fragment_lr_ratio=0, max_iter=1).fit(X, y)
