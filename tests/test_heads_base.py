"""TorchRegressor: training loop, schedules, early stopping, ranking hook, pickling and head files."""
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from aqa.heads.base import HeadFormatError, TorchRegressor, apply_layout, load_head, save_head  # noqa: E402
from aqa.heads.mlp import SceneMLPRegressor  # noqa: E402

torch.set_num_threads(1)
TINY = dict(encoder_dim=8, hidden_dim=4, max_iter=60, learning_rate=1e-2, lr_schedule="constant")


def _data(n=40, S=3, D=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, S, D).astype(np.float32)
    return X, X[:, :, 0].sum(1) + 0.05 * rng.randn(n)


def test_fit_records_and_predict_shape():
    X, y = _data()
    est = SceneMLPRegressor(**TINY, stats_anchor=False, random_state=0)
    assert est.fit(X, y) is est
    assert est.predict(X).shape == (40,)
    assert est.n_iter_ == 60 and len(est.loss_curve_) == 60      # one batch per epoch (n < 64)
    assert est.loss_curve_[-1] < 0.5 * est.loss_curve_[0]
    assert est.y_mean_ == pytest.approx(y.mean()) and est.y_std_ == pytest.approx(y.std())
    np.testing.assert_allclose(est.predict_steps(X).sum(1), est.predict(X), rtol=1e-10)
    assert est.input_shape_ == (3, 4)
    with pytest.raises(ValueError, match="X has 3 features per step, but SceneMLPRegressor was "
                                         "fitted with 4"):
        est.predict(X[..., :3])
    with pytest.raises(ValueError, match=r"SceneMLPRegressor expects X of shape \(n, S, D\) .*got "
                                         r"shape \(40, 3, 2, 2\)"):
        est.predict(X.reshape(40, 3, 2, 2))


def test_cyclic_and_step_schedules():
    est = SceneMLPRegressor(learning_rate=1e-4, lr_schedule="cyclic", lr_step=500, lr_decay=0.1, lr_cycles=3)
    got = [est._lr_at(s) for s in (0, 499, 500, 1000, 1499, 1500)]
    np.testing.assert_allclose(got, [1e-4, 1e-4, 1e-5, 1e-6, 1e-6, 1e-4])
    est.set_params(lr_schedule="step")
    np.testing.assert_allclose([est._lr_at(s) for s in (0, 500, 1500)], [1e-4, 1e-5, 1e-7])


def test_early_stopping_uses_training_data_only_and_stops():
    rng = np.random.RandomState(0)
    X = rng.randn(50, 2, 3).astype(np.float32)
    y = rng.randn(50)                                   # pure noise: validation stops improving
    est = SceneMLPRegressor(**{**TINY, "max_iter": 5000}, early_stopping=True, validation_fraction=0.2,
                            n_iter_no_change=5, random_state=0).fit(X, y)
    assert est.n_iter_ < 5000
    assert len(est.validation_scores_) == len(est.loss_curve_)
    assert est.best_loss_ == pytest.approx(min(est.validation_scores_))
    tr, va = est._split_validation(50, np.random.RandomState(1))
    assert len(va) == 10 and not set(tr) & set(va) and len(tr) + len(va) == 50


def test_ranking_hook():
    est = SceneMLPRegressor(ranking_margin=0.5)
    pred = torch.tensor([0.0, 1.0, 0.2])
    target = torch.tensor([1.0, 0.0, 2.0])
    ref = []
    for i in range(3):
        for j in range(3):
            if target[i] > target[j]:
                ref.append(max(0.0, 0.5 - float(pred[i] - pred[j])))
    assert est._ranking_loss(pred, target).item() == pytest.approx(np.mean(ref))
    est.set_params(ranking_weight=2.0)
    base = torch.nn.functional.mse_loss(pred, target).item()
    assert est._batch_loss(pred, target, {}).item() == pytest.approx(base + 2 * np.mean(ref))
    X, y = _data()
    a = SceneMLPRegressor(**TINY, random_state=0).fit(X, y).predict(X)
    b = SceneMLPRegressor(**TINY, random_state=0, ranking_weight=1.0, ranking_margin=0.1).fit(X, y).predict(X)
    assert not np.allclose(a, b)


def _balanced_ranking_reference(p, t, margin):
    """Li et al.'s eqs. 1-2 and 7 written out: MSE + alpha * sum_{i<j} relu(-(p_j - p_i) sgn + margin),
    alpha = |grad MSE| / |grad L2| w.r.t. the predictions."""
    n = len(p)
    base, g_base = np.mean((p - t) ** 2), 2 * (p - t) / n
    rank, g_rank = 0.0, np.zeros(n)
    for i in range(n):
        for j in range(i + 1, n):
            sgn = np.sign(t[j] - t[i])
            h = -(p[j] - p[i]) * sgn + margin
            if sgn != 0 and h > 0:
                rank += h
                g_rank[j] -= sgn
                g_rank[i] += sgn
    return base + np.linalg.norm(g_base) / np.linalg.norm(g_rank) * rank


def _jrg(**kw):
    from aqa.heads.jrg import JRGRegressor
    stages = dict(staged=True, whole_iter=20, branch_iter=20, final_iter=30, freeze_iter=5)
    # (S, 1+J, D) over X's 12 columns; every stage of the staged training short
    return JRGRegressor(layout=(3, 2, 2), skeleton="self", **{**stages, **kw})


@pytest.mark.parametrize("make", [SceneMLPRegressor, _jrg], ids=["mlp", "jrg"])
def test_balanced_ranking_loss_on_every_neural_head(make):
    X, y = _data()
    y = 40 * y                                            # raw score units: delta = 2 points
    est = make(**TINY, ranking_weight="balanced", random_state=0).fit(X, y)
    assert est._ranking_margin_normalised() == pytest.approx(2.0 / est.y_std_)
    rng = np.random.RandomState(1)
    p, t = rng.randn(8), rng.randn(8)
    t[3] = t[5]                                           # a tie: left out of eq. 2
    pt = torch.tensor(p, requires_grad=True)
    got = est._batch_loss(pt, torch.tensor(t), {}).item()
    assert got == pytest.approx(_balanced_ranking_reference(p, t, 2.0 / est.y_std_), rel=1e-9)
    plain = make(**TINY, random_state=0).fit(X, y)
    assert not np.allclose(est.predict(X), plain.predict(X))
    for bad in ({"ranking_weight": "auto"}, {"ranking_weight": -1.0}, {"ranking_weight": None},
                {"ranking_margin": -0.5}, {"ranking_margin": "2"}):
        with pytest.raises(ValueError, match="ranking_(weight|margin) must be"):
            make(**TINY, **bad).fit(X, y)


def test_param_and_keyword_errors():
    X, y = _data(n=10)
    with pytest.raises(ValueError, match="lr_schedule"):
        SceneMLPRegressor(lr_schedule="cosine").fit(X, y)
    with pytest.raises(ValueError, match="max_iter"):
        SceneMLPRegressor(max_iter=0).fit(X, y)
    with pytest.raises(TypeError, match="groups"):
        SceneMLPRegressor(**TINY).fit(X, y, groups=np.zeros(10))
    with pytest.raises(ValueError, match="layout"):
        apply_layout(np.zeros((2, 7), np.float32), (2, -1))


def test_extras_are_sliced_per_batch():
    seen = []

    class WithGroups(SceneMLPRegressor):
        fit_extras = ("groups",)

        def _forward(self, module, X, extras, training):
            seen.append((len(X), len(extras["groups"])))
            return super()._forward(module, X, extras, training)

    X, y = _data(n=30)
    est = WithGroups(**{**TINY, "max_iter": 3, "batch_size": 8}).fit(X, y, groups=np.arange(30) % 3)
    est.predict(X, groups=np.zeros(30))
    assert all(a == b for a, b in seen) and {a for a, _ in seen} >= {8}
    with pytest.raises(ValueError, match="one entry per sample"):
        est.predict(X, groups=np.zeros(3))


@pytest.mark.slow
def test_sklearn_tools():
    X, y = _data(n=30, S=1)
    X2 = X.reshape(30, -1)
    scores = cross_val_score(SceneMLPRegressor(**TINY, random_state=0), X2, y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    gs = GridSearchCV(make_pipeline(FunctionTransformer(), SceneMLPRegressor(**TINY, random_state=0)),
                      {"scenemlpregressor__hidden_dim": [2, 4]}, cv=2).fit(X2, y)
    assert gs.best_params_["scenemlpregressor__hidden_dim"] in (2, 4)


def test_pickle_roundtrip_stores_cpu_state_only():
    X, y = _data()
    est = SceneMLPRegressor(**TINY, random_state=0).fit(X, y)
    state = est.__getstate__()
    assert "module_" not in state
    assert all(t.device.type == "cpu" for t in state["_module_state"].values())
    est2 = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(est2.predict(X), est.predict(X))
    assert est2.device_ == "cpu"


@pytest.mark.gpu
def test_gpu_trained_head_unpickles_on_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    X, y = _data()
    est = SceneMLPRegressor(**TINY, random_state=0, device="cuda").fit(X, y)
    blob = pickle.dumps(est)
    est2 = pickle.loads(blob)
    assert next(est2.module_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(est2.predict(X), est.predict(X), rtol=1e-5, atol=1e-5)


def test_save_load_roundtrip_and_refusals(tmp_path):
    X, y = _data()
    est = SceneMLPRegressor(**TINY, layout=(3, 4), random_state=0).fit(X.reshape(40, -1), y)
    p = est.save(tmp_path / "m.pt", provenance={"untrained": False, "weights": {"i3d": "abc"}},
                 config={"feature": "i3d_rgb"})
    est2 = SceneMLPRegressor.load(p)
    np.testing.assert_array_equal(est2.predict(X.reshape(40, -1)), est.predict(X.reshape(40, -1)))
    assert est2.layout == (3, 4) and est2.loss_curve_ == est.loss_curve_
    assert est2.provenance_["weights"] == {"i3d": "abc"} and est2.train_config_["feature"] == "i3d_rgb"
    # a file naming a class outside the head registry is refused before anything is imported
    payload = torch.load(p, weights_only=True)
    payload["class"] = "os:system"
    torch.save(payload, tmp_path / "evil.pt")
    with pytest.raises(HeadFormatError, match="not a registered head"):
        load_head(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(HeadFormatError, match="not an aqa head"):
        load_head(tmp_path / "junk.pt")
    # sklearn heads are skops files: they load without allow_pickle (tests/test_head_files.py)
    from aqa.heads.svr import c3d_svr
    svr = c3d_svr().fit(X, y)
    save_head(svr, tmp_path / "svr.pt")
    np.testing.assert_array_equal(load_head(tmp_path / "svr.pt").predict(X), svr.predict(X))


def test_base_requires_hooks():
    with pytest.raises(NotImplementedError, match="_module_config"):
        TorchRegressor(max_iter=1).fit(np.zeros((4, 2)), np.arange(4.0))


@pytest.mark.parametrize("name", ["jrg", "siamese"])
def test_multi_stage_heads_hold_out_one_validation_split(name, monkeypatch):
    """Every stage of a staged head early-stops on the same rows, and none of them trains on them."""
    from aqa.heads import base as base_mod
    from aqa.heads.registry import get, make

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3, 18, 4) if name == "jrg" else (30, 3, 6)).astype(np.float32)
    y = X.reshape(30, -1)[:, :3].sum(1) * 3 + 20
    params = dict(get(name).check_params, early_stopping=True, validation_fraction=0.2, random_state=0)
    if name == "jrg":
        params.update(layout=None, skeleton="coco17", staged=True, whole_iter=20, branch_iter=20,
                      final_iter=20, freeze_iter=5)
    est = make(name, **params)
    seen = []
    real = base_mod.TorchRegressor._fit_loop

    def spy(self, X_, y_, extras, rng_, **kw):
        seen.append(tuple(map(tuple, self._split_validation(len(y_), rng_))))
        return real(self, X_, y_, extras, rng_, **kw)

    monkeypatch.setattr(base_mod.TorchRegressor, "_fit_loop", spy)
    est.fit(X, y)
    assert len(seen) >= (3 if name == "jrg" else 1) and len(set(seen)) == 1
    tr, va = map(np.asarray, seen[0])
    assert len(va) == 6 and not set(tr) & set(va)
    np.testing.assert_array_equal(est.validation_index_, va)
    assert not hasattr(est, "_validation_split")


def test_best_iteration_is_the_step_of_the_restored_weights():
    from aqa.heads.base import steps_per_epoch

    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 2, 3)).astype(np.float32)
    y = X[:, 0, 0] * 4 + rng.normal(scale=0.5, size=50)
    m = SceneMLPRegressor(max_iter=120, batch_size=16, early_stopping=True, validation_fraction=0.2,
                          n_iter_no_change=200, random_state=0).fit(X, y)
    per_epoch = steps_per_epoch(50 - len(m.validation_index_), 16)
    assert len(m.validation_index_) == 10 and per_epoch == 3
    assert m.best_iteration_ == (int(np.argmin(m.validation_scores_)) + 1) * per_epoch
    assert SceneMLPRegressor(max_iter=5).fit(X, y).best_iteration_ is None


def test_reg_units_keep_a_papers_balance_between_loss_and_regularisers(monkeypatch):
    """On standardised targets the MSE is k^2 smaller than in the units a paper states its
    regularisers' weights in; the regularisers (reg terms and weight decay) shrink by the same k^2."""
    import torch
    from aqa.heads.aim import AIMRegressor
    from aqa.heads.jrg import JRGRegressor

    rng = np.random.default_rng(0)
    y = 40 + 15 * rng.random(20)
    X = rng.normal(size=(20, 12)).astype(np.float32)
    std, span = y.std(), np.ptp(y)
    fits = {u: SceneMLPRegressor(layout=(3, 4), encoder_dim=4, hidden_dim=2, max_iter=1, reg_units=u,
                                 stats_anchor=False, random_state=0).fit(X, y) for u in ("normalized", "raw", "percent")}
    assert fits["normalized"].reg_scale_ == 1.0                       # the old behaviour, exactly
    assert fits["raw"].reg_scale_ == pytest.approx(1 / std ** 2)
    assert fits["percent"].reg_scale_ == pytest.approx((span / (100 * std)) ** 2)
    l1 = SceneMLPRegressor(layout=(3, 4), max_iter=1, loss="l1", reg_units="raw", stats_anchor=False).fit(X, y)
    assert l1.reg_scale_ == pytest.approx(1 / std)
    raw = SceneMLPRegressor(layout=(3, 4), max_iter=1, normalize_y=False, reg_units="normalized",
                            stats_anchor=False).fit(X, y)
    assert raw.reg_scale_ == pytest.approx(std ** 2)                  # the raw loss is std^2 larger
    m = fits["percent"]
    pred, target, reg = torch.tensor([0.1, 0.4]), torch.tensor([0.0, 1.0]), torch.tensor(3.0)
    assert float(m._batch_loss(pred, target, {"reg": reg})) == pytest.approx(
        float(torch.mean((pred - target) ** 2)) + m.reg_scale_ * 3.0)
    # the papers' units by default, and Adam's weight decay is scaled like the reg terms
    assert JRGRegressor().reg_units == "percent" and AIMRegressor().reg_units == "raw"
    seen = []
    real = torch.optim.Adam.__init__

    def spy(self, params, lr, weight_decay=0, **kw):
        seen.append(weight_decay)
        real(self, params, lr=lr, weight_decay=weight_decay, **kw)

    monkeypatch.setattr(torch.optim.Adam, "__init__", spy)
    a = AIMRegressor(hidden_dim=4, reg_hidden_dim=4, max_iter=1, stats_anchor=False, random_state=0).fit(
        rng.normal(size=(20, 2, 6)).astype(np.float32), y)
    assert seen == [pytest.approx(0.5 / std ** 2)] and a.reg_scale_ == pytest.approx(1 / std ** 2)
    with pytest.raises(ValueError, match="reg_units must be one of"):
        SceneMLPRegressor(reg_units="percentage", max_iter=1).fit(X, y)


@pytest.mark.slow
def test_normalize_X_makes_a_fit_blind_to_each_columns_units(tmp_path):
    X, y = _data()
    a = np.array([1e3, 1e-2, 1.0, 300.0], np.float32)     # pixels, radians, pixels per second
    b = np.array([-50.0, 3.0, 0.0, 1e4], np.float32)
    Xu = (X * a + b).astype(np.float32)
    est = SceneMLPRegressor(**TINY, random_state=0).fit(X, y)
    other = SceneMLPRegressor(**TINY, random_state=0).fit(Xu, y)
    np.testing.assert_allclose(other.predict(Xu), est.predict(X), atol=1e-3 * y.std())
    np.testing.assert_allclose(other.x_scale_, X.std(0) * a, rtol=1e-4)
    assert est.x_mean_.shape == (3, 4)
    loaded = load_head(other.save(tmp_path / "h.pt"))
    np.testing.assert_allclose(loaded.predict(Xu), other.predict(Xu), rtol=1e-10)
    raw = SceneMLPRegressor(**TINY, normalize_X=False, random_state=0).fit(Xu, y)
    assert raw.x_mean_ is None and not np.allclose(raw.predict(Xu), other.predict(Xu), atol=1e-2)
    const = X.copy()
    const[:, :, 2] = 7.0                                  # a constant column is centred, not divided
    est = SceneMLPRegressor(**TINY, random_state=0).fit(const, y)
    assert np.all(est.x_scale_[:, 2] == 1.0) and np.all(np.isfinite(est.predict(const)))


def test_paper_preset_restores_the_papers_settings():
    from aqa.heads import registry
    from aqa.heads.presets import preset_params, presets_for
    for name in registry.names():
        cls = registry.estimator_class(name)
        if isinstance(cls, type) and issubclass(cls, TorchRegressor):
            paper = preset_params(name, "paper")
            assert paper["normalize_X"] is False, name
            assert set(paper) <= set(registry.head_parameters(name)), name
            registry.make(name, **paper)
    assert presets_for(["jrg", "c3d-svr"], "paper").keys() == {"jrg"}
    assert presets_for(["jrg"], None) == {}
    with pytest.raises(ValueError, match="unknown preset 'papers'; known presets: paper"):
        preset_params("jrg", "papers")
