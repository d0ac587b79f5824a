"""CoRe + GART (Yu et al., ICCV 2021): eqs. 4-9 checked on small inputs against direct references."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aqa.heads.core import (CoReRegressor, GroupAwareRegressionTree, assign_groups,  # noqa: E402
                            decode_groups, gart_loss, group_bounds)

torch.set_num_threads(1)


def test_group_bounds_is_eq5():
    rng = np.random.default_rng(0)
    deltas = rng.normal(size=37)
    R = 8
    b = group_bounds(deltas, R)
    d = np.sort(deltas)
    T = len(d)
    for r in range(1, R + 1):
        assert b[r - 1, 0] == d[math.floor((T - 1) * (r - 1) / R)]
        assert b[r - 1, 1] == d[math.floor((T - 1) * r / R)]
    assert b[0, 0] == d.min() and b[-1, 1] == d.max()
    np.testing.assert_array_equal(b[1:, 0], b[:-1, 1])          # contiguous


def test_group_bounds_balance_training_pairs():
    """Quantile groups hold about equally many differences even for a skewed distribution
    (the paper's Fig. 4 argument), unlike a uniform split of the range."""
    d = np.random.default_rng(1).exponential(size=4000)
    b = group_bounds(d, 8)
    g, _ = assign_groups(d, b)
    counts = np.bincount(g, minlength=8)
    assert counts.min() > 0.8 * len(d) / 8 and counts.max() < 1.2 * len(d) / 8
    uniform = np.histogram(d, bins=8)[0]
    assert uniform.max() > 3 * uniform.min() + 1


def test_group_bounds_errors():
    with pytest.raises(ValueError, match="at least one"):
        group_bounds([], 4)
    with pytest.raises(ValueError, match="finite"):
        group_bounds([0.0, np.nan], 4)


def test_assign_and_decode_roundtrip_eq7():
    rng = np.random.default_rng(2)
    train = rng.normal(size=200)
    b = group_bounds(train, 16)
    x = rng.uniform(train.min(), train.max(), size=50)
    g, s = assign_groups(x, b)
    assert np.all((s >= 0) & (s <= 1))
    assert np.all((x >= b[g, 0] - 1e-12) & (x <= b[g, 1] + 1e-12))
    np.testing.assert_allclose(s, (x - b[g, 0]) / (b[g, 1] - b[g, 0]))
    leaf_prob = np.full((50, 16), 0.01)
    leaf_prob[np.arange(50), g] = 0.9
    sigma_hat = rng.random((50, 16))
    sigma_hat[np.arange(50), g] = s
    delta, r = decode_groups(leaf_prob, sigma_hat, b)
    np.testing.assert_array_equal(r, g)
    np.testing.assert_allclose(delta, x, atol=1e-12)
    # values outside the training range clip to the outer groups
    g2, s2 = assign_groups([train.min() - 5, train.max() + 5], b)
    assert list(g2) == [0, 15] and list(s2) == [0.0, 1.0]


def test_zero_width_groups_decode_exactly():
    d = np.r_[np.zeros(60), np.linspace(-1, 1, 40)]       # many tied differences
    b = group_bounds(d, 8)
    g, s = assign_groups([0.0], b)
    assert b[g[0], 0] <= 0.0 <= b[g[0], 1]
    delta, _ = decode_groups(np.eye(8)[g], np.c_[[s]].repeat(8, 1), b)
    assert delta[0] == pytest.approx(0.0, abs=1e-12)


def _manual_tree(tree, f):
    """Node-by-node reference of the tree's forward (Sec. 3.2 / Fig. 3)."""
    with torch.no_grad():
        h_root = tree.root(f)
        B = f.shape[0]
        feats = {(0, 0): h_root}            # input feature of node (level, index)
        probs = {(0, 0): torch.ones(B)}
        for k in range(tree.depth):
            for i in range(2 ** k):
                W, b = tree.node_feat[k].weight[i], tree.node_feat[k].bias[i]
                h = torch.relu(feats[(k, i)] @ W + b)
                u, c = tree.node_prob[k].weight[i], tree.node_prob[k].bias[i]
                p_left = torch.sigmoid(h @ u + c).squeeze(-1)
                feats[(k + 1, 2 * i)] = feats[(k + 1, 2 * i + 1)] = h
                probs[(k + 1, 2 * i)] = probs[(k, i)] * p_left
                probs[(k + 1, 2 * i + 1)] = probs[(k, i)] * (1 - p_left)
        R = 2 ** tree.depth
        leaf_p = torch.stack([probs[(tree.depth, r)] for r in range(R)], 1)
        sig = torch.stack([torch.sigmoid(torch.relu(feats[(tree.depth, r)] @ tree.leaf_feat.weight[r]
                                                    + tree.leaf_feat.bias[r]) @ tree.leaf_out.weight[r]
                                         + tree.leaf_out.bias[r]).squeeze(-1) for r in range(R)], 1)
        levels = [torch.stack([probs[(k, i)] for i in range(2 ** k)], 1) for k in range(1, tree.depth + 1)]
    return leaf_p, sig, levels


@pytest.mark.slow
def test_tree_matches_node_by_node_reference():
    torch.manual_seed(0)
    tree = GroupAwareRegressionTree(7, depth=3, hidden=5)
    f = torch.randn(4, 7)
    out = tree(f)
    leaf_p, sig, levels = _manual_tree(tree, f)
    torch.testing.assert_close(out["leaf_prob"], leaf_p)
    torch.testing.assert_close(out["sigma"], sig)
    for a, b in zip(out["level_prob"], levels):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(out["leaf_prob"].sum(1), torch.ones(4))
    # each node's probability is the sum of its children's
    for k in range(2):
        torch.testing.assert_close(out["level_prob"][k],
                                   out["level_prob"][k + 1].view(4, -1, 2).sum(-1))
    assert out["sigma"].min() >= 0 and out["sigma"].max() <= 1


def test_gart_loss_is_eq6():
    rng = np.random.default_rng(3)
    P = rng.dirichlet(np.ones(8), size=5)
    S = rng.random((5, 8))
    g = rng.integers(0, 8, size=5)
    s = rng.random(5)
    total, cls, reg = gart_loss(torch.tensor(P), torch.tensor(S), torch.tensor(g), torch.tensor(s))
    onehot = np.eye(8)[g]
    j_cls = -(onehot * np.log(P) + (1 - onehot) * np.log(1 - P)).sum(1).mean()
    j_reg = ((S[np.arange(5), g] - s) ** 2).mean()
    assert float(cls) == pytest.approx(j_cls)
    assert float(reg) == pytest.approx(j_reg)
    assert float(total) == pytest.approx(j_cls + j_reg)


# ------------------------------------------------------------------------------------------ estimator
def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3, 4))
    act = np.array(["dive", "vault"])[rng.integers(0, 2, n)]
    dd = rng.choice([2.0, 3.0], size=n)
    y = (5 + X.mean(1)[:, 0]) * dd
    return X, y, act, dd


@pytest.mark.slow
def test_core_pair_feature_is_eq4_and_bounds_from_eligible_pairs():
    X, y, act, _ = _data()
    m = CoReRegressor(depth=2, hidden_dim=8, max_iter=3, n_exemplars=4, stats_anchor=False,   # the paper's
                      random_state=0).fit(X, y, groups=act)                                  # targets
    fin, fex = torch.randn(2, 4), torch.randn(2, 4)
    s = torch.tensor([0.5, -1.0])
    got = m._pair_features(fin, fex, s)
    raw = s * m.y_std_ + m.y_mean_
    torch.testing.assert_close(got, torch.cat([fex, fin, (raw / m.score_eps_)[:, None]], 1))
    assert m.score_eps_ == pytest.approx(np.abs(y).max())
    yn = (y - y.mean()) / y.std()
    diffs = np.concatenate([yn[i] - yn[(act == act[i]) & (np.arange(len(y)) != i)] for i in range(len(y))])
    np.testing.assert_allclose(m.bounds_, group_bounds(diffs, 4), atol=1e-5)   # y is float32


@pytest.mark.slow
def test_core_early_stopping_keeps_validation_rows_out_of_exemplars_and_bounds():
    X, y, act, _ = _data()
    kw = dict(depth=2, hidden_dim=8, max_iter=20, n_exemplars=40, stats_anchor=False, random_state=0)
    m = CoReRegressor(early_stopping=True, validation_fraction=0.25, **kw).fit(X, y, groups=act)
    va = m.validation_index_
    tr = np.setdiff1d(np.arange(len(y)), va)
    assert len(va) == 15 and len(m.validation_scores_) > 0
    assert not set(m.exemplar_index_) & set(va)
    np.testing.assert_array_equal(m.exemplar_index_, tr)        # M = 40: every training row
    yn = (y - y.mean()) / y.std()
    diffs = np.concatenate([yn[i] - yn[tr[(act[tr] == act[i]) & (tr != i)]] for i in tr])
    np.testing.assert_allclose(m.bounds_, group_bounds(diffs, 4), atol=1e-5)
    every = np.concatenate([yn[i] - yn[(act == act[i]) & (np.arange(len(y)) != i)] for i in range(len(y))])
    assert not np.allclose(m.bounds_, group_bounds(every, 4), atol=1e-3)
    assert len(CoReRegressor(**kw).fit(X, y, groups=act).validation_index_) == 0


@pytest.mark.slow
def test_core_voting_is_eq8_9_and_exemplars_match_class_and_difficulty():
    X, y, act, dd = _data()
    m = CoReRegressor(depth=2, hidden_dim=8, max_iter=20, n_exemplars=3, stats_anchor=False, random_state=0)
    m.fit(X, y, groups=act, difficulty=dd)                   # eqs. 8-9 on the scores, without an anchor
    assert m.difficulty_used_ == "multiply"
    tp = m.tree_path(X[:10], groups=act[:10], difficulty=dd[:10])
    assert tp["leaf"].shape == (10, 3)
    assert [lp.shape for lp in tp["level_prob"]] == [(10, 3, 2), (10, 3, 4)]
    # every exemplar shares the input's class and difficulty
    ex = tp["exemplar_index"]
    assert np.all(act[ex] == act[:10, None]) and np.all(dd[ex] == dd[:10, None])
    # eq. 9: the quality prediction is the mean of exemplar score + delta; the score is quality x DD
    quality = (tp["exemplar_score"] + tp["delta"]).mean(1)
    np.testing.assert_allclose(tp["pred"], quality * dd[:10], rtol=1e-6)
    np.testing.assert_allclose(m.predict(X[:10], groups=act[:10], difficulty=dd[:10]), tp["pred"])
    # eq. 7: the chosen leaf is the most probable one
    np.testing.assert_array_equal(tp["leaf"], tp["level_prob"][-1].argmax(-1))


def test_core_nearest_difficulty_and_select_mode():
    X, y, act, dd = _data()
    m = CoReRegressor(depth=2, hidden_dim=8, max_iter=5, n_exemplars=3, difficulty_mode="select",
                      stats_anchor=False, random_state=0).fit(X, y, groups=act, difficulty=dd)
    tp = m.tree_path(X[:4], groups=act[:4], difficulty=np.full(4, 2.9))   # unseen DD -> nearest, 3.0
    assert np.all(dd[tp["exemplar_index"]] == 3.0)
    np.testing.assert_allclose(tp["pred"], (tp["exemplar_score"] + tp["delta"]).mean(1), rtol=1e-6)


def test_core_errors():
    X, y, act, dd = _data()
    m = CoReRegressor(depth=2, hidden_dim=8, max_iter=3, random_state=0).fit(X, y, groups=act, difficulty=dd)
    with pytest.raises(ValueError, match="difficulty"):
        m.predict(X, groups=act)
    with pytest.raises(ValueError, match="no exemplar of action"):
        m.predict(X[:2], groups=["ski", "ski"], difficulty=dd[:2])
    with pytest.raises(ValueError, match=r"feature\(s\) per video"):
        m.predict(X[:, :, :3], groups=act, difficulty=dd)
    with pytest.raises(ValueError, match="difficulty must be finite"):
        CoReRegressor(max_iter=2).fit(X, y, difficulty=np.zeros(len(y)))
    with pytest.raises(ValueError, match="difficulty_mode"):
        CoReRegressor(difficulty_mode="both").fit(X, y)


def test_core_plot_explain(tmp_path):
    from aqa.heads.core import plot_explain
    X, y, act, _ = _data()
    m = CoReRegressor(depth=2, hidden_dim=8, max_iter=3, random_state=0).fit(X, y, groups=act)
    paths = plot_explain(m, X[:3], ["v0", "v1", "v2"], tmp_path, groups=act[:3])
    assert paths[0].exists() and paths[0].stat().st_size > 1000


def test_core_missing_difficulty_and_groups_messages():
    X, y, act, _ = _data()
    m = CoReRegressor(depth=2, hidden_dim=8, max_iter=3, random_state=0)
    m.fit(X, y, groups=act, difficulty=np.full(len(y), np.nan))       # a dataset without DD
    assert m.difficulty_used_ == "none"
    assert m.predict(X[:3], groups=act[:3], difficulty=[None] * 3).shape == (3,)
    with pytest.raises(ValueError, match="pass groups="):
        m.predict(X[:3])
