"""aqa-heads bench: per-action tables over seeds, folds protocol, provenance, reports, model
selection on training rows only, published figures beside the comparable runs only."""
import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from aqa.data.labels import LabelRow
from aqa.heads import bench as bench_mod
from aqa.heads.bench import BenchResult, run_bench
from aqa.heads.report import rows_for_table, to_markdown, write_report
from aqa.heads.metrics import fisher_z_average, relative_l2

from cachekit import VIDEO_ATTRS, video_arrays
from cachekit import learnable_cache as _learnable_cache

PAPERS_DIR = Path(__file__).resolve().parents[2] / "shared" / "papers"
#: a citation key of aqa.heads.published.PAPERS -> the stem of that paper's text in PAPERS_DIR
PAPER_TEXTS = {"core": "core_group_aware_contrastive_regression_iccv2021",
               "jrg": "jrg_joint_relation_graphs_iccv2019",
               "aim": "aim_asymmetric_interaction_eccv2020",
               "li": "li_end_to_end_c3d_ranking_pcm2018"}


def _row(table, action, head):
    return [r for r in table if r["action"] == action and r["head"] == head][0]


@pytest.mark.slow
def test_bench_split_protocol_tables_and_reports(tmp_path):
    cache = _learnable_cache(tmp_path / "c.h5")
    res = run_bench(cache, heads=["c3d-svr", "mlp"], seeds=2, feature="kin_pose",
                    params={"mlp": {"max_iter": 100}},
                    benchmark="aqa7", progress=False)
    assert res.actions == ["diving", "gym_vault"] and not res.errors
    for head in ("c3d-svr", "mlp"):
        for action in res.actions:
            runs = res.runs[(head, action)]
            assert [r["seed"] for r in runs] == [0, 1]
        m, s = res.fisher_z(head)
        assert m > 0.6, (head, m)  # the score is a clean function of one feature
    table = rows_for_table(res)
    # mlp is JRG's Whole-Scene baseline: JRG Table 1's figures stand beside it
    assert _row(table, "fisher_z_avg", "mlp")["published_spearman"] == pytest.approx(0.7226)
    assert _row(table, "diving", "mlp")["published_spearman"] == pytest.approx(0.6339)
    # c3d-svr ran on kin_pose (the cache has no c3d_rgb): C3D-SVR's figure is not shown
    assert res.setup["published_withheld"].keys() == {"c3d-svr"}
    assert math.isnan(_row(table, "diving", "c3d-svr")["published_spearman"])
    md = to_markdown(res)
    assert "action: diving" in md and "Fisher-z average" in md and "seeds: [0, 1]" in md
    assert "Published figure withheld: c3d-svr ran on kin_pose" in md and "0.7902" not in md
    assert "UNTRAINED" not in md
    paths = write_report(res, tmp_path / "rep")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths["json"].read_text())
    assert data["setup"]["feature"] == "kin_pose" and len(data["table"]) == 6
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:3] == ["action", "head", "spearman"]
    assert "untrained" in rows[0] and {r["untrained"] for r in rows} == {"False"}


def _two_family_cache(path, n=40):
    """Like cachekit.learnable_cache, with a c3d_rgb family (weaker signal) beside kin_pose."""
    from aqa.data.cache import CacheWriter

    rng = np.random.default_rng(0)
    rows = []
    with CacheWriter(path, config={"sampling": "c3d", "pose": "file"}) as w:
        for i in range(n):
            a = video_arrays(i, S=4, D=6, families=("kin_pose", "c3d_rgb"))
            q = rng.uniform(0, 1)
            for fam in ("kin_pose", "c3d_rgb"):
                a[f"features/{fam}/whole"][:, 0] = q + rng.normal(0, 0.02, 4)
            action = ("diving", "gym_vault")[i % 2]
            w.write_video(f"v{i:02d}", VIDEO_ATTRS, a)
            rows.append(LabelRow(f"v{i:02d}", 10 + 80 * q, action, math.nan,
                                 "test" if i % 5 == 0 else "train"))
        w.write_labels(rows)
    return path


@pytest.mark.slow
def test_c3d_svr_runs_on_c3d_features_when_present(tmp_path):
    cache = _two_family_cache(tmp_path / "c.h5")
    res = run_bench(cache, heads=["c3d-svr", "i3d-svr"], seeds=1, feature="kin_pose",
                    benchmark="aqa7", progress=False)
    assert res.setup["head_features"] == {"c3d-svr": "c3d_rgb"}
    assert res.setup["published_withheld"] == {}
    table = rows_for_table(res)
    assert _row(table, "diving", "c3d-svr")["published_spearman"] == pytest.approx(0.7902)
    assert "features: kin_pose (c3d-svr: c3d_rgb)" in to_markdown(res)


class _Recorder:
    """Wraps registry.make so every estimator logs the video ids of the X it is fit/predicted on
    (identified by the feature rows themselves, independently of the bench's bookkeeping)."""

    def __init__(self, monkeypatch, fingerprints):
        from aqa.heads import registry
        self.calls = []
        self.fp = fingerprints
        make = registry.make

        def recording_make(name, **params):
            est = make(name, **params)
            fit, predict = est.fit, est.predict

            def rec_fit(X, y, **kw):
                self.calls.append((name, "fit", self._ids(name, X), dict(est.get_params(deep=False))))
                return fit(X, y, **kw)

            def rec_predict(X, **kw):
                self.calls.append((name, "predict", self._ids(name, X), None))
                return predict(X, **kw)

            est.fit, est.predict = rec_fit, rec_predict
            return est

        monkeypatch.setattr(registry, "make", recording_make)

    def _ids(self, name, X):
        return [self.fp[name][np.asarray(x, np.float32).tobytes()] for x in X]


def _fingerprints(cache, heads):
    """head -> {feature-row bytes: video id}: identifies each video from the X a head is given."""
    from aqa.data.cache import CacheReader
    from aqa.heads.dataset import build_inputs

    with CacheReader(cache) as r:
        labels = r.labels()
        ids = [x.video_id for x in labels]
        fp = {h: {np.asarray(x, np.float32).tobytes(): v
                  for x, v in zip(build_inputs(h, r, ids, "kin_pose"), ids)} for h in heads}
    assert all(len(v) == len(ids) for v in fp.values())  # the fingerprints identify every video
    return fp, labels


@pytest.mark.slow
def test_selection_never_sees_test_rows_and_is_reported(tmp_path, monkeypatch):
    cache = _learnable_cache(tmp_path / "c.h5", n=60, actions=("diving",))
    heads = ["c3d-svr", "mlp"]
    fp, labels = _fingerprints(cache, heads)
    test = {x.video_id for x in labels if x.split == "test"}
    train = {x.video_id for x in labels if x.split == "train"}
    rec = _Recorder(monkeypatch, fp)
    res = run_bench(cache, heads=heads, seeds=1, feature="kin_pose",
                    params={"mlp": {"max_iter": 200}}, progress=False)
    assert not res.errors
    for head in heads:
        calls = [c for c in rec.calls if c[0] == head]
        fits = [c for c in calls if c[1] == "fit"]
        assert fits and all(not (set(c[2]) & test) for c in fits), head
        preds = [c for c in calls if c[1] == "predict"]
        assert set(preds[-1][2]) == test                       # the final prediction, on the test rows
        assert all(set(c[2]) <= train for c in preds[:-1])     # every other one on training rows
    svr = [c for c in rec.calls if c[0] == "c3d-svr"]
    assert len([c for c in svr if c[1] == "fit"]) == 5         # 4 grid settings + the refit
    assert set(svr[-2][2]) == train                             # the refit sees all training rows
    # mlp: a selection fit early-stopping on 20% of the training rows, then a refit on all of them
    # for the chosen number of iterations
    select_fit, refit = [c for c in rec.calls if c[0] == "mlp" and c[1] == "fit"]
    assert select_fit[3]["early_stopping"] is True and select_fit[3]["validation_fraction"] == 0.2
    assert select_fit[3]["n_iter_no_change"] == 50             # a quarter of the 200-step budget
    assert refit[3]["early_stopping"] is False and set(refit[2]) == train

    sel = res.setup["selection"]
    (svr_rec,) = sel["c3d-svr"]["runs"]
    assert svr_rec["kind"] == "grid" and svr_rec["chosen"] in bench_mod.GRIDS["c3d-svr"]["C"]
    assert svr_rec["n_fit"] + svr_rec["n_val"] == len(train)
    (mlp_rec,) = sel["mlp"]["runs"]
    assert mlp_rec["kind"] == "early_stopping"
    assert 1 <= mlp_rec["best_iteration"] <= mlp_rec["steps_run"] <= 200
    assert refit[3]["max_iter"] == mlp_rec["refit_iterations"] == mlp_rec["best_iteration"]
    # the anchored mlp's network weight is fitted on the validation rows and repeated by the refit
    assert 0.0 <= mlp_rec["network_weight"] <= 1.0
    assert refit[3]["network_weight"] == mlp_rec["network_weight"]
    md = to_markdown(res)
    assert f"selection, c3d-svr: C chosen by Spearman" in md and f"{svr_rec['chosen']:g} (x1)" in md
    assert "selection, mlp: early stopping on 20% of the training rows" in md
    assert "then refit on all training rows for that many iterations" in md
    w = f"{mlp_rec['network_weight']:.2f}"
    assert f"the network's output weighs {w} (median; range {w}-{w}) on top of the stats anchor" in md
    assert "model selection on a validation split" not in md   # no blanket sentence


@pytest.mark.parametrize("mode, fits, early", [("refit", 2, [True, False]),
                                               ("early-stopped", 1, [True]), ("budget", 1, [False])])
@pytest.mark.slow
def test_selection_modes(tmp_path, monkeypatch, mode, fits, early):
    cache = _learnable_cache(tmp_path / "c.h5", n=30, actions=("diving",))
    fp, _ = _fingerprints(cache, ["mlp"])
    rec = _Recorder(monkeypatch, fp)
    res = run_bench(cache, heads=["mlp"], seeds=1, feature="kin_pose", progress=False,
                    params={"mlp": {"max_iter": 60}}, selection=mode)
    calls = [c for c in rec.calls if c[1] == "fit"]
    assert [c[3]["early_stopping"] for c in calls] == early and len(calls) == fits
    assert res.setup["selection_mode"] == mode
    (r0,) = res.setup["selection"]["mlp"]["runs"]
    assert r0["kind"] == ("none" if mode == "budget" else "early_stopping")
    assert ("refit_iterations" in r0) == (mode == "refit")
    with pytest.raises(ValueError, match="selection must be one of"):
        run_bench(cache, heads=["mlp"], seeds=1, feature="kin_pose", progress=False, selection="test")


@pytest.mark.slow
def test_multi_stage_heads_refit_every_stage_for_its_early_stopped_length(tmp_path, monkeypatch):
    """A staged JRG is refit with each stage's best length; the Siamese head with its scoring
    phase's (its metric-learning phase has a fixed length)."""
    cache = _learnable_cache(tmp_path / "c.h5", n=40, actions=("diving",))
    fp, labels = _fingerprints(cache, ["jrg", "siamese"])
    train = {x.video_id for x in labels if x.split == "train"}
    rec = _Recorder(monkeypatch, fp)
    res = run_bench(cache, heads=["jrg", "siamese"], seeds=1, feature="kin_pose", progress=False,
                    params={"siamese": {"dml_max_iter": 20, "max_iter": 40, "lstm_dim": 8,
                                        "similarity_threshold": 2.0},
                            "jrg": {"encoder_dim": 8, "hidden_dim": 4, "staged": True, "whole_iter": 12, "branch_iter": 30,
                                    "final_iter": 20, "freeze_iter": 5, "learning_rate": 1e-3}})
    assert not res.errors
    jrg = res.setup["selection"]["jrg"]["runs"][0]
    stages = jrg["best_iteration"]
    assert set(stages) == {"whole", "difference", "commonality", "full"}
    assert 1 <= stages["whole"] <= 12 and 1 <= stages["full"] <= 20
    assert jrg["refit_iterations"] == stages == jrg["refit_params"]["stage_iter"]
    for head in ("jrg", "siamese"):
        select_fit, refit = [c for c in rec.calls if c[0] == head and c[1] == "fit"]
        assert select_fit[3]["early_stopping"] and not refit[3]["early_stopping"]
        assert set(refit[2]) == train
    refit_jrg = [c for c in rec.calls if c[0] == "jrg" and c[1] == "fit"][1][3]
    assert refit_jrg["stage_iter"] == stages
    sia = res.setup["selection"]["siamese"]["runs"][0]
    assert [c for c in rec.calls if c[0] == "siamese" and c[1] == "fit"][1][3]["max_iter"] \
        == sia["refit_iterations"] == sia["best_iteration"]
    md = to_markdown(res)
    assert "selection, jrg: early stopping" in md and "best iterations per stage" in md
    assert md.count("then refit on all training rows") == 2


def test_selection_overrides_and_small_training_sets_are_said(tmp_path):
    cache = _learnable_cache(tmp_path / "c.h5", n=12, actions=("diving",))   # 9 train rows
    res = run_bench(cache, heads=["c3d-svr", "mlp"], seeds=1, feature="kin_pose",
                    params={"mlp": {"max_iter": 20, "early_stopping": False}}, progress=False)
    sel = res.setup["selection"]
    (svr,) = sel["c3d-svr"]["runs"]
    assert svr["kind"] == "none" and "fewer than 10 training rows" in svr["reason"]
    (mlp,) = sel["mlp"]["runs"]
    assert mlp["kind"] == "none" and "set by the user" in mlp["reason"]
    md = to_markdown(res)
    assert "selection, c3d-svr: NO model selection in 1 fit(s) (9 training rows): fewer than 10" in md
    assert "selection, mlp: NO model selection in 1 fit(s): early_stopping=False set by the user" in md


def _result(benchmark, actions, heads, with_dd=False):
    runs = {(h, a): [{"seed": 0, "spearman": 0.5, "r_l2": 0.01, "mse": 1.0}] for h in heads for a in actions}
    return BenchResult(heads=heads, actions=actions, seeds=[0], runs=runs,
                       setup={"benchmark": benchmark, "with_difficulty": with_dd})


def test_published_with_difficulty_only_for_heads_that_take_it():
    for with_dd, core_fig in ((True, 0.9512), (False, 0.9341)):
        table = rows_for_table(_result("mtl_aqa", ["all"], ["core", "c3d-svr"], with_dd))
        assert _row(table, "all", "core")["published_spearman"] == pytest.approx(core_fig)
        # C3D-SVR takes no difficulty: the w/o DD figure either way
        assert _row(table, "all", "c3d-svr")["published_spearman"] == pytest.approx(0.7716)


def test_published_figure_of_the_one_action_present():
    table = rows_for_table(_result("jigsaws", ["Suturing"], ["jrg", "aim"]))
    assert _row(table, "Suturing", "jrg")["published_spearman"] == pytest.approx(0.36)
    assert _row(table, "Suturing", "aim")["published_spearman"] == pytest.approx(0.63)
    assert not any(r["action"] == "fisher_z_avg" for r in table)
    table = rows_for_table(_result("jigsaws", ["all"], ["jrg"]))      # --no-per-action: the average
    assert _row(table, "all", "jrg")["published_spearman"] == pytest.approx(0.57)
    table = rows_for_table(_result("aqa7", ["gym_vault"], ["jrg"]))
    assert _row(table, "gym_vault", "jrg")["published_spearman"] == pytest.approx(0.7358)
    assert _row(table, "gym_vault", "jrg")["published_differs"] == ""


def test_published_figures_of_another_protocol_are_marked():
    """JRG's and AIM's JIGSAWS runs used the robot kinematics, both views and other folds."""
    res = _result("jigsaws", ["Suturing"], ["jrg", "aim", "core"])
    res.setup.update(feature="kin_pose", protocol="folds", folds=["fold0"], cache="c.h5", n_videos=3)
    table = rows_for_table(res)
    assert "kinematics" in _row(table, "Suturing", "jrg")["published_differs"]
    assert "206 videos" in _row(table, "Suturing", "aim")["published_differs"]
    md = to_markdown(res)
    assert "| jrg |" in md and "0.3600 (other protocol)" in md and "0.6300 (other protocol)" in md
    assert "Published figure of jrg is from another protocol, not comparable: JRG's nodes" in md
    assert "Published figure of core" not in md


def test_r_l2_uses_each_actions_range_over_all_labelled_scores(tmp_path):
    from aqa.data.cache import CacheReader

    cache = _learnable_cache(tmp_path / "c.h5")
    with CacheReader(cache) as r:
        labels = r.labels()
    # a labelled video that is not in the cache still widens its action's range (CoRe eq. 11)
    labels = labels + [LabelRow("absent", 500.0, "diving", math.nan, "train")]
    res = run_bench(cache, labels=labels, heads=["c3d-svr"], seeds=1, feature="kin_pose", progress=False)
    lo_g = min(x.score for x in labels if x.action == "gym_vault")
    hi_g = max(x.score for x in labels if x.action == "gym_vault")
    lo_d = min(x.score for x in labels if x.action == "diving")
    assert res.setup["score_ranges"] == {"diving": [lo_d, 500.0], "gym_vault": [lo_g, hi_g]}
    for action, (lo, hi) in (("diving", (lo_d, 500.0)), ("gym_vault", (lo_g, hi_g))):
        y, p = res.predictions[("c3d-svr", action)]
        (run,) = res.runs[("c3d-svr", action)]
        assert run["r_l2"] == pytest.approx(relative_l2(y, p, lo, hi))
    y, p = res.predictions[("c3d-svr", "diving")]
    assert res.runs[("c3d-svr", "diving")][0]["r_l2"] < relative_l2(y, p)   # not the test rows' range


@pytest.mark.slow
def test_failed_seed_is_recorded_per_run_and_keeps_fisher_z_aligned(tmp_path, monkeypatch):
    cache = _learnable_cache(tmp_path / "c.h5")

    def fake_fit_predict(head, reader, tr, te, feature, seed, params, log=None, selection_mode="refit",
                         views=()):
        action = te[0].action
        if action == "gym_vault" and seed == 1:
            raise RuntimeError("boom")
        y = np.array([x.score for x in te])
        noise = {"diving": 5.0, "gym_vault": 40.0}[action] * (1 + seed)
        return y + np.random.RandomState(seed).normal(0, noise, len(y)), {"kind": "none", "reason": "fake"}

    monkeypatch.setattr(bench_mod, "_fit_predict", fake_fit_predict)
    res = run_bench(cache, heads=["mlp"], seeds=3, feature="kin_pose", progress=False)
    assert res.errors == {("mlp", "gym_vault", 1): "RuntimeError: boom"}
    assert [r["seed"] for r in res.runs[("mlp", "diving")]] == [0, 1, 2]
    assert [r["seed"] for r in res.runs[("mlp", "gym_vault")]] == [0, 2]
    rho = {(a, r["seed"]): r["spearman"] for a in res.actions for r in res.runs[("mlp", a)]}
    per_seed = [fisher_z_average([rho[("diving", s)], rho[("gym_vault", s)]]) for s in (0, 2)]
    m, s = res.fisher_z("mlp")
    assert m == pytest.approx(np.mean(per_seed)) and s == pytest.approx(np.std(per_seed, ddof=1))
    assert res.fisher_z_seeds("mlp") == [0, 2]
    table = rows_for_table(res)
    assert _row(table, "gym_vault", "mlp")["error"] == "seed 1: RuntimeError: boom"
    assert _row(table, "diving", "mlp")["error"] == ""
    assert _row(table, "gym_vault", "mlp")["n_seeds"] == 2
    md = to_markdown(res)
    assert "(2 of 3 seeds)" in md and "- mlp gym_vault seed 1: RuntimeError: boom" in md
    data = json.loads(write_report(res, tmp_path / "rep")["json"].read_text())
    assert data["errors"] == [{"head": "mlp", "action": "gym_vault", "seed": 1, "error": "RuntimeError: boom"}]


@pytest.mark.slow
def test_bench_folds_protocol_and_untrained_mark(tmp_path):
    cache = _learnable_cache(tmp_path / "c.h5", actions=("Suturing",), folds=True, untrained=True)
    res = run_bench(cache, heads=["c3d-svr"], seeds=[3], feature="kin_pose", protocol="folds",
                    benchmark="jigsaws", progress=False)
    (run,) = res.runs[("c3d-svr", "Suturing")]
    assert run["spearman"] > 0.6
    y, p = res.predictions[("c3d-svr", "Suturing")]
    assert len(y) == 40  # every video is tested exactly once across the 4 folds
    assert [r["fold"] for r in res.setup["selection"]["c3d-svr"]["runs"]] == [f"fold{k}" for k in range(4)]
    md = to_markdown(res)
    assert md.splitlines()[2].startswith("- WARNING: UNTRAINED")
    assert "protocol: 4-fold cross-validation over the split values fold0, fold1, fold2, fold3" in md
    assert "train='train'" not in md
    paths = write_report(res, tmp_path / "rep")
    with open(paths["csv"]) as f:
        assert {r["untrained"] for r in csv.DictReader(f)} == {"True"}


def test_bench_errors(tmp_path):
    cache = _learnable_cache(tmp_path / "c.h5", n=8)
    with pytest.raises(ValueError, match=r"unknown head\(s\) \[.nope.\]"):
        run_bench(cache, heads=["nope"], progress=False)
    with pytest.raises(ValueError, match="protocol"):
        run_bench(cache, heads=["mlp"], protocol="loo", progress=False)


@pytest.mark.slow
def test_bench_cli(tmp_path):
    from click.testing import CliRunner

    from aqa.heads.cli import main as heads_cli

    cache = _two_family_cache(tmp_path / "c.h5")
    out = tmp_path / "rep"
    res = CliRunner().invoke(heads_cli, ["bench", str(cache), "--heads", "c3d-svr,i3d-svr", "--seeds", "2",
                                         "--feature", "kin_pose", "--benchmark", "aqa7", "--out", str(out),
                                         "-p", "i3d-svr.kernel=linear"])
    assert res.exit_code == 0, res.output
    assert "## action: gym_vault" in res.output and "0.6824" in res.output
    assert (out / "bench.md").exists() and (out / "pred_vs_true.png").exists()
    res = CliRunner().invoke(heads_cli, ["bench", str(cache), "-p", "kernel=linear"])
    assert res.exit_code == 1 and "HEAD.key=value" in res.output


# ------------------------------------------------------------------ published figures vs papers
def _published_entries():
    from aqa.heads.published import PUBLISHED
    for bm, heads in PUBLISHED.items():
        for head, entry in heads.items():
            yield pytest.param(bm, head, entry, id=f"{bm}-{head}")


def _formats(v: float) -> list[str]:
    """How a correlation may be printed in a paper: 0.7630, 0.76, 76.30 (%), 76 (%)."""
    return [f"{v:.4f}", f"{v:.2f}", f"{100 * v:.2f}", f"{100 * v:.0f}"]


@pytest.mark.parametrize("bm,head,entry", list(_published_entries()))
def test_published_figures_appear_in_the_papers(bm, head, entry):
    from aqa.heads.published import PAPERS

    if not PAPERS_DIR.is_dir():
        pytest.skip(f"the seed papers' text is not at {PAPERS_DIR}")
    assert entry.get("paper") in PAPERS, f"{bm}/{head}: no 'paper' to check the figure against"
    path = PAPERS_DIR / f"{PAPER_TEXTS[entry['paper']]}.txt"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    lines = path.read_text(errors="replace").splitlines()
    values = [v for k, v in entry.items() if k not in ("source", "paper", "avg_with_dd", "differs")]

    def pattern(v):
        return "(" + "|".join(re.escape(f) for f in _formats(v)) + ")"

    # the entry's figures (in the order of its keys) are one row of a table, or one sentence
    row = r"(?<![\d.])" + r"(?![\d.]).*?(?<![\d.])".join(pattern(v) for v in values) + r"(?![\d.])"
    assert any(re.search(row, line) for line in lines), (bm, head, values, path.name)
    if "avg_with_dd" in entry:
        one = r"(?<![\d.])" + pattern(entry["avg_with_dd"]) + r"(?![\d.])"
        assert any(re.search(one, line) for line in lines), (bm, head, entry["avg_with_dd"])


def test_tables_say_how_many_test_videos_each_figure_stands_on(tmp_path):
    from aqa.data.cache import CacheReader
    cache = _learnable_cache(tmp_path / "c.h5", n=20, actions=("diving", "gym_vault"))
    res = run_bench(cache, heads=["c3d-svr"], seeds=1, feature="kin_pose", progress=False)
    table = rows_for_table(res)
    per = {a: _row(table, a, "c3d-svr")["n_test"] for a in res.actions}
    with CacheReader(cache) as r:
        labels = r.labels()
    assert per == {a: sum(x.action == a and x.split == "test" for x in labels) for a in res.actions}
    assert _row(table, "fisher_z_avg", "c3d-svr")["n_test"] == sum(per.values())
    md = to_markdown(res)
    assert "| published Spearman | test videos | fit s (CPU s) |" in md and f"| {per['diving']} |" in md


def test_tables_give_each_heads_seconds_per_seed(tmp_path):
    cache = _learnable_cache(tmp_path / "c.h5", n=20, actions=("diving", "gym_vault"))
    res = run_bench(cache, heads=["c3d-svr"], seeds=2, feature="kin_pose", progress=False)
    table = rows_for_table(res)
    runs = {a: res.runs[("c3d-svr", a)] for a in res.actions}
    for a in res.actions:
        row = _row(table, a, "c3d-svr")
        assert row["seconds"] == pytest.approx(np.mean([r["seconds"] for r in runs[a]]))
        assert 0 < row["cpu_seconds"] and 0 < row["seconds"] < 60
    both = _row(table, "fisher_z_avg", "c3d-svr")["seconds"]
    assert both == pytest.approx(sum(_row(table, a, "c3d-svr")["seconds"] for a in res.actions))
    md = to_markdown(res)
    row = _row(table, "diving", "c3d-svr")
    assert f"| {row['seconds']:.1f} ({row['cpu_seconds']:.1f}) |" in md
