"""Siamese DML scoring (Jain, Harit, Sharma): pairs, references, frozen phase 2, clip feedback."""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aqa.heads.anchor import predict_anchor  # noqa: E402
from aqa.heads.siamese import SiameseNet, SiameseRegressor, similarity_labels, trimmed  # noqa: E402

torch.set_num_threads(1)


def _data(n=30, seed=0, S=4, D=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, S, D))
    g = np.array(["fwd", "back", "inward"])[np.arange(n) % 3]
    y = 40 + 10 * rng.random(n) + 20 * (g == "back")
    return X, y, g


#: raw inputs (normalize_X off), so the tests can recompute the network's outputs and compare rows
#: of reference_X_ with X; test_heads_base checks the standardisation of every head
TINY = dict(lstm_dim=4, d1_dim=8, d2_dim=4, dml_max_iter=3, max_iter=3, random_state=0, normalize_X=False)


def test_similarity_labels_and_paper_threshold():
    np.testing.assert_array_equal(similarity_labels([10, 10, 10], [14.9, 15.0, 3.0], 5.0), [1, 0, 0])
    X, y, g = _data()
    # the paper's example: +-0.5 per judge x 3 judges x a difficulty of "3 +- 0.3" = 1.5 x 3.3 ~ 5
    dd = np.where(np.arange(len(y)) % 2, 2.7, 3.3)         # mean 3, std 0.3
    m = SiameseRegressor(**TINY).fit(X, y, groups=g, difficulty=dd)
    assert m.threshold_ == pytest.approx(1.5 * 3.3)
    with pytest.warns(UserWarning, match="no difficulty given"):
        assert SiameseRegressor(**TINY).fit(X, y).threshold_ == pytest.approx(1.5)
    assert SiameseRegressor(similarity_threshold=7.0, **TINY).fit(X, y).threshold_ == 7.0


def test_pair_sampler_is_balanced_and_labels_follow_threshold():
    X, y, g = _data(80)
    m = SiameseRegressor(similarity_threshold=2.0, **TINY).fit(X, y, groups=g)
    draw = m._pair_sampler(y, np.random.RandomState(0))
    i, j, lab = draw(2000)
    assert abs(lab.mean() - 0.5) < 0.05                   # similar pairs are rare, yet half the batch
    np.testing.assert_array_equal(lab, (np.abs(y[i] - y[j]) < 2.0).astype(np.float32))
    assert np.all(i != j)


@pytest.mark.parametrize("reference", ["expert", "worst", "constant"])
def test_references(reference):
    X, y, g = _data()
    y[3] = y[0] = y[g == "fwd"].max() + 1                  # two tied experts of type "fwd"
    m = SiameseRegressor(reference=reference, **TINY).fit(X, y, groups=g)
    for t in ("fwd", "back", "inward"):
        scores = m.reference_scores_[m.references_[t]]
        if reference == "expert":
            want = y[g == t].max()
        elif reference == "worst":
            want = y[g == t].min()
        else:                                              # expert of the first type (sorted: "back")
            want = y[g == "back"].max()
        np.testing.assert_allclose(scores, want, rtol=1e-6)   # y round-trips through float32
    if reference == "expert":
        assert len(m.references_["fwd"]) == 2


class _Spy(SiameseRegressor):
    def _train_dml(self, X, y, rng):
        super()._train_dml(X, y, rng)
        self.after_dml = copy.deepcopy(self.module_.state_dict())


def test_phase2_trains_only_the_regression_layer_and_averages_tied_references():
    X, y, g = _data()
    y[3] = y[0] = y[g == "fwd"].max() + 1
    m = _Spy(**TINY).fit(X, y, groups=g)
    final = m.module_.state_dict()
    for k, v in m.after_dml.items():
        if k.startswith("regression"):
            assert not torch.equal(v, final[k]), k
        else:
            assert torch.equal(v, final[k]), k             # LSTM, D1, D2, sigmoid layer frozen
    assert all(p.requires_grad for p in m.module_.parameters())
    # prediction = mean over the type's references of w'' . D2(O_ref (+) O_video) + b, on top of
    # the stats anchor (the network learns the anchor's residuals)
    net = m.module_
    xq = torch.tensor(X[:2], dtype=torch.float32)
    refs = torch.tensor(m.reference_X_[m.references_["fwd"]], dtype=torch.float32)
    with torch.no_grad():
        o_q, o_r = net.embed(xq), net.embed(refs)
        s = torch.stack([net.regression(net.pair_embedding(o_r[k:k + 1].expand(2, -1), o_q)).squeeze(-1)
                         for k in range(len(refs))]).mean(0)
    np.testing.assert_allclose(m.predict(X[:2], groups=["fwd", "fwd"]),
                               s.numpy() * m.y_std_ + m.y_mean_ + predict_anchor(m.anchor_, X[:2]),
                               rtol=1e-5)
    assert 0.0 <= m.dml_accuracy_ <= 1.0 and len(m.dml_loss_curve_) == 3
    # the training loss has one term per (reference, video) pair, not one per video's mean
    out = m._forward(net, xq, {"groups": np.array(["fwd", "fwd"], dtype=object)}, True)
    target = torch.tensor([0.3, -0.2])
    pairs = out["pair_pred"].reshape(2, len(refs))          # video-major: each video's references
    want = torch.mean((pairs - target[:, None]) ** 2)
    torch.testing.assert_close(m._batch_loss(out["pred"], target, out), want)
    pairs = {"pred": torch.tensor([2.0, 0.0]), "pair_pred": torch.tensor([1.0, 3.0, 0.0, 0.0]),
             "pair_owner": torch.tensor([0, 0, 1, 1])}
    loss = m._batch_loss(pairs["pred"], torch.tensor([2.0, 0.0]), pairs)
    assert float(loss) == pytest.approx((1 + 1 + 0 + 0) / 4)          # the mean's error would be 0


def test_phase2_embeds_each_video_once_not_at_every_step(monkeypatch):
    """The frozen LSTM's embeddings are computed once for phase 2: its cost does not grow with
    ``max_iter`` (it used to re-embed every batch and the references at every step)."""
    X, y, g = _data()
    calls = []
    embed = SiameseNet.embed
    monkeypatch.setattr(SiameseNet, "embed", lambda self, x: calls.append(len(x)) or embed(self, x))
    counts = []
    for max_iter in (2, 40):
        calls.clear()
        SiameseRegressor(**{**TINY, "max_iter": max_iter}).fit(X, y, groups=g)
        counts.append(len(calls))
    assert counts[0] == counts[1]


def test_references_never_come_from_the_validation_rows():
    X, y, g = _data()
    y[np.flatnonzero(g == "fwd")[:2]] = y.max() + 5                  # two clear experts of "fwd"
    held_out_an_expert = False
    for seed in range(6):
        m = SiameseRegressor(**{**TINY, "similarity_threshold": 2.0, "random_state": seed},
                             early_stopping=True, validation_fraction=0.3).fit(X, y, groups=g)
        va = m.validation_index_
        fit_rows = np.setdiff1d(np.arange(len(y)), va)
        assert len(va)
        for t, refs in m.references_.items():
            want = y[fit_rows][g[fit_rows] == t].max()                 # the best of the fit rows
            np.testing.assert_allclose(m.reference_scores_[refs], want, rtol=1e-6)
        X32 = X.astype(np.float32)
        ref_rows = [int(np.flatnonzero(np.all(X32 == r, axis=(1, 2)))[0]) for r in m.reference_X_]
        assert not set(ref_rows) & set(va.tolist())
        held_out_an_expert |= bool(set(np.flatnonzero(y == y.max())) & set(va.tolist()))
    assert held_out_an_expert              # the case the rule is for did occur


def test_trimmed_sequences_and_clip_similarity(tmp_path):
    x = torch.arange(24, dtype=torch.float32).view(1, 4, 6)
    t = trimmed(x, 2)
    assert t.shape == (1, 3, 6)
    assert torch.all(t[:, :2] == 0) and torch.equal(t[:, 2], x[:, 2])
    X, y, g = _data()
    m = SiameseRegressor(**TINY).fit(X, y, groups=g)
    sim = m.clip_similarity(X[:5], g[:5])
    assert sim.shape == (5, 4) and np.all((sim > 0) & (sim < 1))
    ref = m.reference_X_[m.references_[g[1]][0]]
    with torch.no_grad():
        p = torch.sigmoid(m.module_.similarity_logit(trimmed(torch.tensor(X[1:2], dtype=torch.float32), 2),
                                                     trimmed(torch.tensor(ref[None], dtype=torch.float32), 2)))
    assert sim[1, 2] == pytest.approx(float(p), rel=1e-5)
    # phase-1 similarity of whole sequences is a probability per pair
    full = m.pair_similarity(X[:3], X[:3])
    assert full.shape == (3,) and np.all((full > 0) & (full < 1))
    from aqa.heads.siamese import plot_explain
    paths = m.plot_explain(X[:4], list("abcd"), tmp_path, groups=g[:4])
    assert paths[0].exists() and paths[0].stat().st_size > 1000


def test_siamesenet_shapes_follow_the_paper():
    net = SiameseNet(5)
    assert net.lstm.hidden_size == 256 and net.d1.out_features == 128 and net.d2.out_features == 64
    assert net.d1.in_features == 512


def test_errors():
    X, y, g = _data()
    m = SiameseRegressor(**TINY).fit(X, y, groups=g)
    with pytest.raises(ValueError, match="no reference video for action type"):
        m.predict(X[:1], groups=["pike"])
    with pytest.raises(ValueError, match="features per clip"):
        m.predict(X[:, :, :2], groups=g)
    with pytest.raises(ValueError, match="reference"):
        SiameseRegressor(reference="median", **{k: v for k, v in TINY.items()}).fit(X, y)
    with pytest.raises(ValueError, match="similarity_threshold"):
        SiameseRegressor(similarity_threshold=-1.0, **TINY).fit(X, y)


def test_missing_difficulty_and_groups_messages():
    X, y, g = _data()
    with pytest.warns(UserWarning, match="no difficulty given"):
        m = SiameseRegressor(**TINY).fit(X, y, groups=g, difficulty=np.full(len(y), np.nan))
    assert m.threshold_ == pytest.approx(1.5)
    with pytest.raises(ValueError, match="pass groups="):
        m.predict(X[:2])
