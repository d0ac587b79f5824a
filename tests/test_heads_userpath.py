"""The user's path through aqa.heads: labels without a split column, X/y/groups in one call, a
Spearman scorer for scikit-learn's searches, predictions a person can read."""
import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from aqa.heads.cli import main

from cachekit import learnable_cache

SVR = ["c3d-svr", "--feature", "kin_pose"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return learnable_cache(tmp_path_factory.mktemp("userpath") / "feats.h5")


def _labels(cache):
    from aqa.data.cache import CacheReader
    with CacheReader(cache) as r:
        return r.labels()


def test_labels_without_split_column_train_on_every_row_and_say_so_once(cache, tmp_path):
    csv_path = tmp_path / "nosplit.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "score", "action"])
        for x in _labels(cache)[:30]:
            w.writerow([x.video_id, x.score, x.action])
    r = CliRunner().invoke(main, ["train", SVR[0], str(cache), *SVR[1:], "--labels", str(csv_path)])
    assert r.exit_code == 0, r.output
    notes = [line for line in r.output.splitlines() if "split" in line]
    assert notes == ["note: the labels have no split column: trained on all 30 labelled videos in "
                     "the cache, no test evaluation"], r.output
    assert "n_train: 30" in r.output and "n_test: 0" in r.output and "spearman" not in r.output


def test_split_errors_do_not_contradict_themselves(cache):
    from aqa.heads.dataset import select_rows
    rows = _labels(cache)
    ids = [x.video_id for x in rows]
    with pytest.raises(ValueError, match=r"no split value given \(''\)"):
        select_rows(rows, "", ids)
    with pytest.raises(ValueError, match=r"^no labelled video has split 'val' \(split values: "
                                         r"\['test', 'train'\]\)$"):
        select_rows(rows, "val", ids)
    with pytest.raises(ValueError, match=r"^none of the 8 labelled videos in split 'test' is in the cache"):
        select_rows(rows, "test", [i for i in ids if i not in {x.video_id for x in rows if x.split == "test"}])


def test_load_xy_gives_a_heads_inputs_scores_and_actions(cache):
    import aqa.heads
    from aqa.data.cache import CacheReader
    from aqa.heads.dataset import build_inputs

    X, y, groups = aqa.heads.load_xy(cache, "c3d-svr", split="train")
    train = [x for x in _labels(cache) if x.split == "train"]
    assert X.shape == (32, 4, 6 + 17 * 6) and len(y) == len(groups) == 32  # kin_pose: whole + joints
    np.testing.assert_array_equal(y, [x.score for x in train])
    assert list(groups) == [x.action for x in train]
    with CacheReader(cache) as r:
        np.testing.assert_array_equal(X, build_inputs("c3d-svr", r, [x.video_id for x in train], "kin_pose"))
    Xj, yj, _ = aqa.heads.load_xy(cache, "jrg")                  # every labelled video, JRG's nodes
    assert Xj.shape == (40, 4, 18, 6) and len(yj) == 40


def test_spearman_scorer_is_spearman_of_the_predictions(cache):
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVR as _SVR

    import aqa.heads
    from aqa.heads.metrics import spearman, spearman_scorer

    X, y, _ = aqa.heads.load_xy(cache, "c3d-svr", split="train")
    X = X.mean(axis=1)
    est = _SVR(C=10.0).fit(X, y)
    assert spearman_scorer(est, X, y) == pytest.approx(spearman(y, est.predict(X)))
    assert spearman_scorer(est, X, -y) == pytest.approx(-spearman(y, est.predict(X)))
    search = GridSearchCV(_SVR(), {"C": [0.01, 10.0]}, scoring=spearman_scorer, cv=3).fit(X, y)
    assert search.best_params_ == {"C": 10.0} and search.best_score_ > 0.8


def test_predict_writes_action_true_score_and_split(cache, tmp_path):
    model = tmp_path / "m.pkl"
    r = CliRunner().invoke(main, ["train", SVR[0], str(cache), *SVR[1:], "--out", str(model)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "preds.csv"
    r = CliRunner().invoke(main, ["predict", str(model), str(cache), "--trust-model", "--split", "test",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    with open(out, newline="") as f:
        got = list(csv.DictReader(f))
    test = {x.video_id: x for x in _labels(cache) if x.split == "test"}
    assert list(got[0]) == ["video_id", "pred_score", "action", "true_score", "split"]
    assert {g["video_id"] for g in got} == set(test)
    for g in got:
        x = test[g["video_id"]]
        assert (g["action"], float(g["true_score"]), g["split"]) == (x.action, pytest.approx(x.score), "test")


@pytest.mark.slow
def test_bench_keeps_finished_fits_resumes_them_and_writes_a_partial_table_on_ctrl_c(
        cache, tmp_path, monkeypatch):
    from aqa.heads import bench as bench_mod

    real, calls = bench_mod._fit_predict, []

    def counted(*a, **k):
        calls.append(a[0])
        if interrupt_at and len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(bench_mod, "_fit_predict", counted)
    rep = tmp_path / "rep"
    args = ["bench", str(cache), "--heads", "c3d-svr", "--seeds", "2", "--feature", "kin_pose",
            "--out", str(rep)]
    interrupt_at = 3                                       # 2 actions x 2 seeds: stop in the 3rd fit
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 130 and "interrupted (2 of 4 fits done)" in r.output, r.output
    assert "INTERRUPTED: a partial table (2 of 4 fits done)" in (rep / "bench.md").read_text()
    assert len(list((rep / "fits").glob("*.json"))) == 2
    interrupt_at, calls[:] = 0, []
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and len(calls) == 2, r.output
    md = (rep / "bench.md").read_text()
    assert "fits: 2 run now, 2 read back" in md and "INTERRUPTED" not in md
    assert "label columns each head trained on: c3d-svr: score" in md
    table = (rep / "bench.csv").read_text()
    calls[:] = []
    with pytest.warns(UserWarning, match=r"parameters given for head\(s\) \['mlp'\] that this bench "
                                         r"does not run are not used"):
        r = CliRunner().invoke(main, args + ["-p", "mlp.max_iter=5"])  # a head this bench does not run
    assert r.exit_code == 0 and not calls, r.output
    assert (rep / "bench.csv").read_text() == table
    r = CliRunner().invoke(main, args[:5] + ["3"] + args[6:])         # one more seed: only it runs
    assert r.exit_code == 0 and len(calls) == 2, r.output
    calls[:] = []
    r = CliRunner().invoke(main, args + ["-p", "c3d-svr.C=1.0"])      # other settings: fitted again
    assert r.exit_code == 0 and len(calls) == 4, r.output
    calls[:] = []
    r = CliRunner().invoke(main, args + ["--fresh"])
    assert r.exit_code == 0 and len(calls) == 4, r.output


def test_label_columns_name_what_each_head_trains_on(cache):
    from aqa.heads.bench import label_columns

    rows = _labels(cache)
    assert label_columns("c3d-svr", rows) == ["score"]
    assert label_columns("core", rows) == ["score", "action", "difficulty (empty)"]
    rows[0].difficulty = 2.5
    assert label_columns("core", rows) == ["score", "action", "difficulty"]
    assert label_columns("aim", rows) == ["score", "execution (empty)", "sync (empty)"]


@pytest.mark.slow
def test_explain_defaults_to_test_rows_and_states_predicted_and_true_scores(cache, tmp_path, monkeypatch):
    import aqa.heads.plots as plots
    from aqa.heads.train import load_model, predict_model

    model = tmp_path / "jrg.pt"
    r = CliRunner().invoke(main, ["train", "jrg", str(cache), "--feature", "kin_pose", "--out", str(model),
                                  "-p", "encoder_dim=8", "-p", "hidden_dim=8", "-p", "max_iter=5",
                                  "-p", "staged=false"])
    assert r.exit_code == 0, r.output
    texts = {}
    real_save = plots.save_figure

    def capture(fig, path):
        found = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
        texts[Path(path).name] = found
        return real_save(fig, path)

    monkeypatch.setattr(plots, "save_figure", capture)
    r = CliRunner().invoke(main, ["explain", str(model), str(cache), "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    labels = {x.video_id: x for x in _labels(cache)}
    test = [v for v in sorted(labels) if labels[v].split == "test"][:3]
    assert r.output.splitlines()[0] == f"explained: {', '.join(test)} (first of split 'test')"
    pred = {p["video_id"]: p["pred_score"]
            for p in predict_model(load_model(model), cache, split="test")["predictions"]}
    step = texts["step_scores.png"]
    for v in test:
        assert f"{v}: predicted {pred[v]:.1f}, true {labels[v].score:.1f}" in step, step
    assert any("sum to its predicted total" in t for t in step)
    joint = texts[f"joint_scores_{test[0]}.png"]
    assert any(f"predicted {pred[test[0]]:.1f}, true {labels[test[0]].score:.1f}" in t
               and "not the sum of the bars" in t for t in joint), joint
    assert any(t.startswith("at or above the median joint") for t in joint)
    assert "below the median joint" in joint
    r = CliRunner().invoke(main, ["explain", str(model), str(cache), "--out", str(tmp_path / "q"),
                                  "--split", "train"])
    train = [v for v in sorted(labels) if labels[v].split == "train"][:3]
    assert r.exit_code == 0
    assert r.output.splitlines()[0] == f"explained: {', '.join(train)} (first of split 'train')"


def test_a_head_trained_on_an_older_input_layout_is_refused_with_the_reason_and_the_retrain_command(
        cache, tmp_path, monkeypatch):
    """A model file saved when ``steps`` held the whole-scene feature only (layout 1, no
    ``input_layout`` recorded) meets this version's kin_pose joints: the error names both layouts
    and the command that retrains it, on every command that applies a head."""
    import aqa.heads.inputs as inputs
    model = tmp_path / "old.pt"
    with monkeypatch.context() as m:       # what the older version built and recorded
        m.setattr(inputs, "step_inputs", lambda r, ids, feature=None: inputs.step_columns(
            r, ids, feature or inputs.default_feature(r), ()))
        m.setitem(inputs.INPUT_LAYOUTS, "steps", {1: inputs.INPUT_LAYOUTS["steps"][1]})
        r = CliRunner().invoke(main, ["train", "mlp", str(cache), "--feature", "kin_pose",
                                      "-p", "max_iter=2", "--out", str(model)])
        assert r.exit_code == 0, r.output
    from aqa.heads.train import load_model
    assert load_model(model).train_config_["input_layout"] == 1
    for cmd in (["predict", str(model), str(cache)], ["evaluate", str(model), str(cache)],
                ["explain", str(model), str(cache), "--out", str(tmp_path / "plots")]):
        r = CliRunner().invoke(main, cmd)
        assert r.exit_code == 1, (cmd, r.output)
        assert "features per step" in r.output and "layout 1 of the 'steps' input" in r.output, r.output
        assert "this version builds layout 2" in r.output, r.output
        assert "aqa-heads train mlp CACHE --feature kin_pose --out MODEL" in r.output, r.output
    fresh = tmp_path / "new.pt"                 # trained now: recorded as the current layout, applies
    r = CliRunner().invoke(main, ["train", "mlp", str(cache), "--feature", "kin_pose", "-p", "max_iter=2",
                                  "--out", str(fresh)])
    assert r.exit_code == 0, r.output
    assert load_model(fresh).train_config_["input_layout"] == inputs.input_layout("steps") == 2
    assert CliRunner().invoke(main, ["predict", str(fresh), str(cache)]).exit_code == 0


def test_a_head_files_recorded_input_layout_of_any_type_leaves_the_error_as_it_was():
    """``input_layout`` comes from the head file: a value that is not a layout number (a crafted
    or damaged file) adds no hint and raises nothing else than the original error."""
    from types import SimpleNamespace

    from aqa.heads.train import layout_hint
    for recorded in ("1", None, [1], 1.5, True):
        est = SimpleNamespace(train_config_={"head": "mlp", "feature": "kin_pose", "input_layout": recorded})
        with pytest.raises(ValueError, match=r"^X has 108 features per step$"):
            with layout_hint(est):
                raise ValueError("X has 108 features per step")
    est = SimpleNamespace(train_config_={"head": "mlp", "feature": "kin_pose", "input_layout": 1})
    with pytest.raises(ValueError, match="layout 1 of the 'steps' input"):
        with layout_hint(est):
            raise ValueError("X has 108 features per step")
