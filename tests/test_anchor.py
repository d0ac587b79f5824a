"""The stats anchor of the neural heads (``stats_anchor=True``): a stats-ridge inside the head whose
leave-one-out residuals the network learns."""
import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import LeaveOneOut, cross_val_predict

from aqa.heads.anchor import ANCHOR_DCT, check_anchor, fit_anchor, predict_anchor
from aqa.heads.baselines import TemporalStats, stats_ridge
from aqa.heads.base import load_head
from aqa.heads.core import CoReRegressor
from aqa.heads.mlp import SceneMLPRegressor


def _data(n=50, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 8, 5)).astype(np.float32)
    y = 3 * X[:, :, 0].std(axis=1) + X[:, :, 1].max(axis=1) + 0.1 * rng.normal(size=n)
    return X, y


def test_anchor_predicts_what_stats_ridge_predicts():
    X, y = _data()
    anchor, _ = fit_anchor(X[:40], y[:40], np.full(40, -1))
    ref = stats_ridge(n_dct=ANCHOR_DCT).fit(X[:40], y[:40])
    assert anchor["n_dct"] == ANCHOR_DCT == 4
    assert anchor["alpha"] == pytest.approx(ref.named_steps["ridge"].alpha_)
    np.testing.assert_allclose(predict_anchor(anchor, X[40:]), ref.predict(X[40:]), rtol=1e-7, atol=1e-7)


def test_training_residuals_are_leave_one_out_and_views_take_their_sources():
    X, y = _data(30)
    Xv = np.concatenate([X, X[:5] * 1.01])                       # 5 views of rows 0..4
    yv = np.concatenate([y, y[:5]])
    sources = np.concatenate([np.full(30, -1), np.arange(5)])
    anchor, loo = fit_anchor(Xv, yv, sources)
    Z = TemporalStats(n_dct=ANCHOR_DCT).fit(X).transform(X)
    Z = (Z - anchor["mean"]) / anchor["scale"]
    ref = cross_val_predict(Ridge(alpha=anchor["alpha"]), Z, y, cv=LeaveOneOut())
    np.testing.assert_allclose(loo[:30], ref, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(loo[30:], loo[:5])
    # leave-one-out, not in-sample: the in-sample fit is closer to y
    assert np.mean((loo[:30] - y) ** 2) > np.mean((predict_anchor(anchor, X) - y) ** 2)


def test_anchor_reads_the_order_of_the_steps_that_the_four_statistics_lose():
    """Each video beside its time reverse, scored by the opposite trend: mean, std, max and min
    cannot tell them apart, the anchor's DCT coefficients can (the slow shape of a column)."""
    rng = np.random.RandomState(1)
    t = np.linspace(-1, 1, 10)
    slope = rng.uniform(-1, 1, size=60)
    X = (slope[:, None, None] * t[None, :, None] + 0.3 * rng.normal(size=(60, 10, 3))).astype(np.float32)
    X, y = np.concatenate([X, X[:, ::-1]]), np.concatenate([slope, -slope])
    tr, te = np.r_[0:40, 60:100], np.r_[40:60, 100:120]
    anchor, _ = fit_anchor(X[tr], y[tr], np.full(len(tr), -1))
    assert np.corrcoef(predict_anchor(anchor, X[te]), y[te])[0, 1] > 0.9
    four = stats_ridge().fit(X[tr], y[tr]).predict(X[te])
    assert abs(np.corrcoef(four, y[te])[0, 1]) < 0.3
    # a head file saved before the anchor took DCT coefficients (no n_dct) still predicts
    old, _ = fit_anchor(X[tr, :1], y[tr], np.full(len(tr), -1))        # one step: no DCT
    assert old.pop("n_dct") == 0
    check_anchor(old)
    check_anchor(anchor)
    with pytest.raises(ValueError, match=r"\(4 \+ n_dct\) x n_columns"):
        check_anchor({**anchor, "n_dct": 2})
    np.testing.assert_allclose(predict_anchor(old, X[te, :1]), stats_ridge().fit(X[tr, :1], y[tr]).predict(
        X[te, :1]), rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="needs 5 steps"):
        predict_anchor(anchor, X[te, :3])


@pytest.mark.slow
def test_anchored_head_adds_its_network_to_the_anchor_and_survives_a_file(tmp_path):
    X, y = _data(60)
    est = SceneMLPRegressor(stats_anchor=True, max_iter=60, random_state=0).fit(X[:45], y[:45])
    net = est._predict_normalised(est._check_X(X[45:], reset=False), {}) * est.y_std_ + est.y_mean_
    np.testing.assert_allclose(est.predict(X[45:]), predict_anchor(est.anchor_, X[45:]) + net, rtol=1e-6)
    np.testing.assert_allclose(est.predict_steps(X[45:]).sum(axis=1), est.predict(X[45:]), rtol=1e-6)
    # the network learned the residual: its targets are centred on the anchor's LOO errors
    _, loo = fit_anchor(X[:45], y[:45], np.full(45, -1))
    assert est.y_mean_ == pytest.approx(np.mean(y[:45] - loo))
    back = load_head(est.save(tmp_path / "h.pt"))
    np.testing.assert_array_equal(back.predict(X[45:]), est.predict(X[45:]))
    off = SceneMLPRegressor(stats_anchor=False, max_iter=60, random_state=0).fit(X[:45], y[:45])
    assert off.anchor_ is None


def test_anchor_beats_the_bare_network_where_the_signal_is_in_temporal_statistics():
    X, y = _data(120, seed=1)
    kw = dict(max_iter=150, random_state=0, early_stopping=True)
    bare = SceneMLPRegressor(stats_anchor=False, **kw).fit(X[:80], y[:80]).score(X[80:], y[80:])
    anchored = SceneMLPRegressor(stats_anchor=True, **kw).fit(X[:80], y[:80]).score(X[80:], y[80:])
    assert anchored > 0.8 and anchored > bare + 0.2, (anchored, bare)


def test_under_a_multiplying_difficulty_the_anchor_scores_the_quality_and_bad_values_refused():
    X, y = _data(40)
    d = np.linspace(2.0, 3.5, 40)
    est = CoReRegressor(stats_anchor=True, depth=2, hidden_dim=8, n_exemplars=3, max_iter=5,
                        random_state=0).fit(X, y * d, difficulty=d)
    _, loo = fit_anchor(X, y, np.full(40, -1))            # fitted on the quality y = score / d
    assert est.y_mean_ == pytest.approx(np.mean(y - loo))
    net = est._predict_normalised(est._check_X(X, reset=False), {"difficulty": d}) * est.y_std_
    np.testing.assert_allclose(est.predict(X, difficulty=d),
                               (predict_anchor(est.anchor_, X) + est.y_mean_ + net) * d, rtol=1e-6)
    with pytest.raises(ValueError, match="stats_anchor must be True or False"):
        SceneMLPRegressor(stats_anchor="yes").fit(X, y)
    est = SceneMLPRegressor(stats_anchor=True, max_iter=5).fit(X, y)
    with pytest.raises(ValueError, match="columns per step"):
        predict_anchor(est.anchor_, X[:, :, :3])


def test_network_weight_is_fitted_on_the_validation_rows_and_repeated_by_a_refit():
    X, y = _data(80, seed=2)
    kw = dict(stats_anchor=True, max_iter=40, random_state=0, early_stopping=True,
              validation_fraction=0.25)
    est = SceneMLPRegressor(**kw).fit(X, y)
    va = est.validation_index_
    assert len(va) == 20 and 0.0 <= est.network_weight_ <= 1.0
    Xc = est._check_X(X, reset=False)
    pv = est._predict_normalised(Xc[va], {})
    yv = (y[va] - fit_anchor(X, y, np.full(80, -1))[1][va] - est.y_mean_) / est.y_std_
    want = np.clip(yv @ pv / (pv @ pv), 0, 1)
    assert est.network_weight_ == pytest.approx(want, rel=1e-5, abs=1e-7)
    assert est.refit_params()["network_weight"] == est.network_weight_
    np.testing.assert_allclose(est.predict(X), predict_anchor(est.anchor_, X) + est.y_mean_
                               + est.network_weight_ * est.y_std_ * est._predict_normalised(Xc, {}),
                               rtol=1e-6)
    zero = SceneMLPRegressor(**{**kw, "network_weight": 0.0}).fit(X, y)
    np.testing.assert_allclose(zero.predict(X), predict_anchor(zero.anchor_, X) + zero.y_mean_)
    assert SceneMLPRegressor(stats_anchor=False, max_iter=5).fit(X, y).network_weight_ == 1.0
    for bad in (1.5, -0.1, "half", True):
        with pytest.raises(ValueError, match="network_weight must be 'auto' or a float in"):
            SceneMLPRegressor(network_weight=bad, max_iter=5).fit(X, y)


@pytest.mark.parametrize("change", [
    {"anchor_": "not a dict"},
    {"anchor_": {"fill": [1.0], "mean": [0.0], "scale": [1.0], "coef": [1.0], "intercept": 0.0,
                 "alpha": 1.0, "n_columns": 5}},                      # arrays of the wrong length
    {"network_weight_": 5.0},
    {"network_weight_": "1"},
])
def test_a_head_file_with_a_damaged_anchor_is_refused_in_one_line(tmp_path, change):
    import json
    import torch
    from aqa.heads.base import HeadFormatError
    X, y = _data(30)
    path = SceneMLPRegressor(stats_anchor=True, max_iter=5, random_state=0).fit(X, y).save(tmp_path / "h.pt")
    payload = torch.load(path, weights_only=True)
    fitted = json.loads(payload["fitted_json"])
    fitted.update(change)
    payload["fitted_json"] = json.dumps(fitted)
    torch.save(payload, path)
    with pytest.raises(HeadFormatError, match="cannot be rebuilt") as e:
        load_head(path)
    assert "\n" not in str(e.value) and ("anchor" in str(e.value) or "network_weight_" in str(e.value))
