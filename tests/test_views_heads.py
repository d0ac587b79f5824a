"""Augmented views as training rows: fit(augmented_of=), the validation split, the heads that refuse
them, and the train / bench paths that add them from the cache."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from click.testing import CliRunner  # noqa: E402

from aqa.data.cache import CacheReader  # noqa: E402
from aqa.heads import registry  # noqa: E402
from aqa.heads.augment import resolve_views, training_set  # noqa: E402
from aqa.heads.bench import run_bench  # noqa: E402
from aqa.heads.cli import main  # noqa: E402
from aqa.heads.report import provenance_lines  # noqa: E402
from aqa.heads.train import run_train_eval  # noqa: E402
from aqa.heads.core import CoReRegressor  # noqa: E402
from aqa.heads.mlp import SceneMLPRegressor  # noqa: E402
from aqa.heads.siamese import SiameseRegressor  # noqa: E402

from cachekit import learnable_cache  # noqa: E402

torch.set_num_threads(1)
MLP = dict(max_iter=100, random_state=0)


def _xy(n=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3, 4)).astype(np.float32)
    return X, 10 * X[:, :, 0].sum(1) + 50


def _with_views(X, y, of):
    """X, y with a noisy copy of each row in ``of`` appended, and the augmented_of array."""
    of = np.asarray(of)
    Xv = X[of] + np.random.default_rng(1).normal(0, 0.05, X[of].shape).astype(np.float32)
    aug = np.concatenate([np.full(len(X), -1), of])
    return np.concatenate([X, Xv]), np.concatenate([y, y[of]]), aug


def _split(est, aug, groups=None, views=True):
    est._augmented_of, est._validation_split = aug, None
    return est._split_validation(len(aug), np.random.RandomState(0), groups=groups, views=views)


def test_validation_holds_out_sources_with_all_their_views():
    n = 30
    aug = np.concatenate([np.full(n, -1), np.arange(n), np.arange(0, n, 2)])   # 2 views / some 1
    est = SceneMLPRegressor(early_stopping=True, validation_fraction=0.2)
    tr, va = _split(est, aug)
    assert len(va) == 6 and (aug[va] == -1).all()                 # a fifth of the sources
    assert not np.isin(aug[tr], va).any()                         # no view of a validation video
    views_of_train = np.flatnonzero(np.isin(aug, tr[aug[tr] == -1]))
    assert np.isin(views_of_train, tr).all()                      # every view of a training video
    assert set(tr) | set(va) | set(np.flatnonzero(np.isin(aug, va))) == set(range(len(aug)))
    # the same split for every stage; views=False is its source rows
    tr_src, va2 = est._split_validation(len(aug), None, views=False)
    np.testing.assert_array_equal(va2, va)
    np.testing.assert_array_equal(tr_src, tr[aug[tr] == -1])
    # without views, the draw is what it was before views existed (published numbers unchanged)
    tr0, va0 = _split(SceneMLPRegressor(early_stopping=True, validation_fraction=0.2), np.full(n, -1))
    perm = np.random.RandomState(0).permutation(n)
    np.testing.assert_array_equal(va0, np.sort(perm[:6]))
    np.testing.assert_array_equal(tr0, np.sort(perm[6:]))


def test_groups_keep_a_lone_validation_group_in_training_with_its_views():
    n = 10
    groups = np.array(["a"] * 9 + ["b"] + ["a"] * 9 + ["b"])
    aug = np.concatenate([np.full(n, -1), np.arange(n)])
    est = SceneMLPRegressor(early_stopping=True, validation_fraction=0.5)
    tr, va = _split(est, aug, groups=groups)
    assert 9 in tr and 19 in tr and 9 not in va                   # "b" has one video: it trains
    assert not np.isin(aug[tr], va).any()


def test_all_sources_fit_equals_a_plain_fit():
    X, y = _xy()
    a = SceneMLPRegressor(**MLP).fit(X, y)
    b = SceneMLPRegressor(**MLP).fit(X, y, augmented_of=np.full(len(y), -1))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert b.n_augmented_ == 0


def test_views_are_trained_on_but_normalise_and_validate_as_sources():
    X, y = _xy(30)
    top = np.argsort(y)[-10:]                                     # views of the best videos only
    Xa, ya, aug = _with_views(X, y, np.concatenate([top, top]))
    m = SceneMLPRegressor(**MLP, early_stopping=True, validation_fraction=0.2).fit(Xa, ya,
                                                                                  augmented_of=aug)
    assert m.n_augmented_ == 20
    from aqa.heads.anchor import fit_anchor
    _, loo = fit_anchor(X, y, np.full(len(y), -1))     # the stats anchor is fitted on the sources
    r = y - loo                                          # the network's targets, views' = sources'
    ra = np.concatenate([r, r[top], r[top]])
    assert m.y_mean_ == pytest.approx(r.mean()) and m.y_mean_ != pytest.approx(ra.mean())
    assert m.y_std_ == pytest.approx(r.std())
    assert (aug[m.validation_index_] == -1).all() and len(m.validation_index_) == 6
    plain = SceneMLPRegressor(**MLP, early_stopping=True, validation_fraction=0.2).fit(X, y)
    assert not np.allclose(m.predict(X), plain.predict(X))      # the views changed the training


@pytest.mark.parametrize("aug, msg", [
    (np.full(5, -1), "must be 6 integers"),
    (np.full(6, -1.0), "must be 6 integers"),
    (np.array([-1, -1, -1, -1, 0, 4]), "index of a source row"),    # a view of a view
    (np.array([-1, -1, -1, -1, -1, 9]), "index of a source row"),
    (np.array([-1, -1, -1, -1, -1, -3]), "index of a source row"),
    (np.array([-1, -1, -1, -1, -1, 1]), "target differs"),
    (np.array([-1, 0, 0, 0, 0, 0]), "at least 2 source rows"),
])
def test_bad_augmented_of_is_refused(aug, msg):
    X = np.zeros((6, 2, 3), np.float32)
    y = np.array([1.0, 2, 3, 4, 5, 1]) if "target" in msg else np.ones(6)
    if "index" in msg and aug[-1] == 4:
        y = np.array([1.0, 2, 3, 4, 1, 1])                        # targets agree; the chain is the fault
    with pytest.raises(ValueError, match=msg):
        SceneMLPRegressor(**MLP).fit(X, y, augmented_of=aug)


def test_core_refuses_views_and_says_why():
    X, y = _xy(8)
    with pytest.raises(TypeError, match="its own exemplar"):
        CoReRegressor(max_iter=2).fit(X, y, augmented_of=np.full(8, -1))
    assert not registry.accepts_views("core") and registry.accepts_views("jrg")
    assert not registry.accepts_views("c3d-svr")


def test_siamese_references_are_source_videos():
    rng = np.random.default_rng(0)
    n = 12
    X = rng.normal(size=(n, 3, 2))
    g = np.array(["fwd", "back"])[np.arange(n) % 2]
    y = 40 + 10 * rng.random(n)
    best = int(np.flatnonzero(g == "fwd")[np.argmax(y[g == "fwd"])])
    Xa = np.concatenate([X, X[[best]] + 100.0])                  # a view far from its source
    aug = np.concatenate([np.full(n, -1), [best]])
    with pytest.warns(UserWarning, match="no difficulty given"):
        m = SiameseRegressor(lstm_dim=4, d1_dim=8, d2_dim=4, dml_max_iter=3, max_iter=3,
                             random_state=0, normalize_X=False).fit(Xa, np.concatenate([y, y[[best]]]),
                                                 groups=np.concatenate([g, ["fwd"]]), augmented_of=aug)
    ref = m.reference_X_[m.references_["fwd"]]
    assert len(ref) == 1                                          # not tied with its own view
    np.testing.assert_allclose(ref[0], X[best])
    assert m.n_augmented_ == 1


# ----------------------------------------------------------------- from the cache: train, bench
@pytest.fixture(scope="module")
def vcache(tmp_path_factory):
    return learnable_cache(tmp_path_factory.mktemp("views") / "c.h5", views=("flip", "shift2"))


@pytest.mark.slow
def test_training_set_appends_each_view_after_the_sources(vcache):
    with CacheReader(vcache) as r:
        rows = [x for x in r.labels() if x.split == "train"][:5]
        X0, y0, fit0, kw0 = training_set("mlp", r, rows, "kin_pose", [])
        X, y, fit_rows, kw = training_set("mlp", r, rows, "kin_pose", ["flip", "shift2"])
        Xflip, *_ = training_set("mlp", r, [x for x in rows], "kin_pose", [])
    assert kw0 == {} and fit0 == rows and len(X0) == 5
    assert len(X) == 15 and fit_rows == rows * 3
    np.testing.assert_array_equal(kw["augmented_of"], [-1] * 5 + list(range(5)) * 2)
    np.testing.assert_array_equal(y, np.tile(y0, 3))
    np.testing.assert_array_equal(X[:5], X0)
    assert not np.array_equal(X[5:10], X0)                       # the views' own features
    assert np.allclose(X[5:10], X0, atol=0.1)


def test_resolve_views_paper_specs_and_refusals(vcache):
    with CacheReader(vcache) as r:
        assert resolve_views(r, "jrg", "paper") == ["flip"]
        assert resolve_views(r, "fragment", "paper") == ["shift2"]
        assert resolve_views(r, "mlp", "paper") == []             # its baseline paper has none
        with pytest.warns(UserWarning, match=r"siamese: its paper trains on bright/drop/histeq/mask/zoom views .* "
                                             r"has none.*--view zoom:1.2 --view bright:0.8"):
            assert resolve_views(r, "siamese", "paper") == []     # no zoom/bright in this cache
        assert resolve_views(r, "mlp", "shift:2,flip") == ["shift2", "flip"]
        assert resolve_views(r, "mlp", None) == resolve_views(r, "mlp", "none") == []
        with pytest.raises(ValueError, match=r"no 'zoom1.2' view.*`aqa-extract \.\.\. --view zoom1.2`"):
            resolve_views(r, "mlp", "zoom:1.2")
        with pytest.raises(ValueError, match="'c3d-svr' does not train on augmented views"):
            resolve_views(r, "c3d-svr", "flip")
        with pytest.raises(ValueError, match="'core' does not train on augmented views.*exemplar"):
            resolve_views(r, "core", "flip")
        assert resolve_views(r, "core", "paper") == []


@pytest.mark.slow
def test_run_train_eval_adds_views_to_training_rows_only(vcache, tmp_path):
    res = run_train_eval(vcache, head="mlp", feature="kin_pose", params=dict(MLP), views="flip",
                         out=tmp_path / "m.pt")
    with CacheReader(vcache) as r:
        test_ids = {x.video_id for x in r.labels() if x.split == "test"}
    assert res["views"] == ["flip"] and res["n_train_views"] == res["n_train"] == 32
    assert res["estimator"].n_augmented_ == 32
    assert set(res["predictions"]) == test_ids                   # scored on source test videos
    assert res["metrics"]["spearman"] > 0.8
    from aqa.heads.base import load_head
    assert load_head(tmp_path / "m.pt").train_config_["views"] == ["flip"]


def test_train_cli_views_option(vcache):
    run = CliRunner().invoke(main, ["train", "mlp", str(vcache), "--feature", "kin_pose", "--views",
                                    "flip,shift:2", "-p", "max_iter=20", "--json"])
    assert run.exit_code == 0, run.output
    out = json.loads(run.output)
    assert out["views"] == "flip,shift2 (+64 training rows)"
    bad = CliRunner().invoke(main, ["train", "c3d-svr", str(vcache), "--views", "flip"])
    assert bad.exit_code != 0 and "does not train on augmented views" in bad.output
    bad = CliRunner().invoke(main, ["train", "mlp", str(vcache), "--views", "mirror"])
    assert bad.exit_code != 0 and "expected flip, histeq, mask, shift:K" in bad.output


def test_bench_trains_on_views_and_reports_them(vcache):
    seen = []
    res = run_bench(vcache, heads=["c3d-svr", "mlp"], seeds=1, feature="kin_pose", progress=False,
                    params={"mlp": {"max_iter": 40}}, views="flip",
                    fit_log=lambda stage, rows: seen.append((stage, [x.video_id for x in rows])))
    assert not res.errors
    assert res.setup["views"] == {"mlp": ["flip"]}                # SVR stays on its sources
    assert any("mlp: flip" in line and "never to validation or test" in line
               for line in provenance_lines(res))
    with CacheReader(vcache) as r:
        test_ids = {x.video_id for x in r.labels() if x.split == "test"}
    fits = [set(ids) for stage, ids in seen if stage == "fit"]
    assert fits and all(not (ids & test_ids) for ids in fits)
    sels = res.setup["selection"]["mlp"]["runs"]
    assert all(s["views"] == ["flip"] for s in sels)
    with pytest.raises(ValueError, match="views given for head"):
        run_bench(vcache, heads=["mlp"], seeds=1, feature="kin_pose", progress=False,
                  views={"jrg": "flip"})


@pytest.mark.slow
def test_bench_cli_views_option(vcache, tmp_path):
    run = CliRunner().invoke(main, ["bench", str(vcache), "--heads", "mlp,c3d-svr", "--seeds", "1",
                                    "--feature", "kin_pose", "-p", "mlp.max_iter=20", "--views",
                                    "paper", "--out", str(tmp_path / "b")])
    assert run.exit_code == 0, run.output
    md = "".join(p.read_text() for p in (tmp_path / "b").glob("*.md"))
    assert "selection, mlp" in md and "augmented views" not in md                          # mlp's paper has none, nor SVR's
    run = CliRunner().invoke(main, ["bench", str(vcache), "--heads", "mlp", "--seeds", "1",
                                    "--feature", "kin_pose", "-p", "mlp.max_iter=20", "--views",
                                    "shift:2", "--out", str(tmp_path / "c")])
    assert run.exit_code == 0, run.output
    md = "".join(p.read_text() for p in (tmp_path / "c").glob("*.md"))
    assert "augmented views added to the training rows (never to validation or test rows): " \
           "mlp: shift2" in md


def test_a_view_of_another_shape_is_a_clear_error(tmp_path):
    import h5py

    path = learnable_cache(tmp_path / "c.h5", n=10, views=("shift5",))
    with h5py.File(path, "a") as f:                  # a shift that left the video one clip fewer
        g = f["videos/v01@shift5/features/kin_pose"]
        for part in ("whole", "joints", "clip_start", "clip_end"):
            a = g[part][()]
            del g[part]
            g[part] = a[:-1]
    with CacheReader(path) as r:
        rows = [x for x in r.labels() if x.split == "train"]
        with pytest.raises(ValueError, match=r"videos have different shapes .*v01@shift5"):
            training_set("mlp", r, rows, "kin_pose", ["shift5"])


@pytest.mark.slow
def test_report_says_when_a_published_figure_had_augmentation_this_run_lacked(vcache):
    from aqa.heads.report import to_markdown

    kw = dict(heads=["jrg", "mlp"], seeds=1, feature="kin_pose", progress=False, benchmark="aqa7",
              params={"jrg": {"staged": False, "max_iter": 20, "encoder_dim": 8, "hidden_dim": 4},
                      "mlp": {"max_iter": 20}})
    md = to_markdown(run_bench(vcache, **kw))
    assert "0.7630" in md                                         # JRG's published diving figure
    assert ("Published figure of jrg was trained with its paper's flip augmentation, which this "
            "run did not use") in md
    assert "Published figure of mlp was trained" not in md        # its paper has no views
    md = to_markdown(run_bench(vcache, views="paper", **kw))
    assert "was trained with its paper's" not in md and "jrg: flip" in md
