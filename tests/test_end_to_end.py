"""Synthetic videos -> aqa-extract -> aqa-heads train/evaluate/explain, all through the CLIs."""
import json

import pytest
from click.testing import CliRunner

from aqa.data.cli import main as data_cli
from aqa.extract.cli import main as extract_cli
from aqa.heads.cli import main as heads_cli


@pytest.mark.slow
def test_videos_to_scores_through_the_clis(tmp_path):
    run = CliRunner()
    vids = tmp_path / "videos"
    res = run.invoke(data_cli, ["synth", str(vids), "--n", "12", "--seed", "2", "--frames", "32",
                                "--size", "64x48"])
    assert res.exit_code == 0, res.output
    cache = tmp_path / "feats.h5"
    res = run.invoke(extract_cli, [str(vids), "--out", str(cache), "--labels", str(vids / "labels.csv"),
                                   "--sampling", "jrg", "--sampling-opt", "T=4", "--sampling-opt", "length=8",
                                   "--flow", "tvl1-cpu", "--flow-opt", "nscales=2", "--flow-opt", "warps=1",
                                   "--flow-opt", "outer_iterations=3",
                                   "--flow-opt", "inner_iterations=5", "--quiet"])
    assert res.exit_code == 0, res.output
    assert run.invoke(data_cli, ["verify", str(cache)]).exit_code == 0
    model = tmp_path / "jrg.pt"
    res = run.invoke(heads_cli, ["train", "jrg", str(cache), "--feature", "kin_pose", "--out", str(model),
                                 "--json", "-p", "max_iter=30", "-p", "whole_iter=20", "-p", "final_iter=30",
                                 "-p", "freeze_iter=5", "-p", "encoder_dim=16", "-p", "hidden_dim=8",
                                 "-p", "learning_rate=0.001", "-p", "lr_schedule='constant'"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n_test"] == 3 and out["n_train"] == 9
    assert -1 <= out["metrics"]["spearman"] <= 1 and out["metrics"]["mse"] > 0
    res = run.invoke(heads_cli, ["evaluate", str(model), str(cache), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["metrics"]["spearman"] == pytest.approx(out["metrics"]["spearman"])
    res = run.invoke(heads_cli, ["explain", str(model), str(cache), "--out", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    names = {p.name for p in (tmp_path / "plots").glob("*.png")}
    assert {"step_scores.png", "graph_spatial.png", "graph_temporal.png"} <= names
