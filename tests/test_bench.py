"""aqa-heads bench: per-action tables over seeds, folds protocol, provenance, reports."""
import json
import math

import numpy as np
import pytest

from aqa.heads.bench import rows_for_table, run_bench, to_markdown, write_report

from cachekit import learnable_cache as _learnable_cache


def test_bench_split_protocol_tables_and_reports(tmp_path):
    cache = _learnable_cache(tmp_path / "c.h5")
    res = run_bench(cache, heads=["c3d-svr", "mlp"], seeds=2, feature="kin_pose",
                    params={"mlp": {"max_iter": 100}},
                    benchmark="aqa7", progress=False)
    assert res.actions == ["diving", "gym_vault"] and not res.errors
    for head in ("c3d-svr", "mlp"):
        for action in res.actions:
            runs = res.runs[(head, action)]
            assert len(runs) == 2
        m, s = res.fisher_z(head)
        assert m > 0.6, (head, m)  # the score is a clean function of one feature
    table = rows_for_table(res)
    avg = [r for r in table if r["action"] == "fisher_z_avg" and r["head"] == "c3d-svr"][0]
    assert avg["published_spearman"] == pytest.approx(0.6937)
    dive = [r for r in table if r["action"] == "diving" and r["head"] == "c3d-svr"][0]
    assert dive["published_spearman"] == pytest.approx(0.7902)
    md = to_markdown(res)
    assert "action: diving" in md and "Fisher-z average" in md and "seeds: [0, 1]" in md
    assert "UNTRAINED" not in md
    paths = write_report(res, tmp_path / "rep")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths["json"].read_text())
    assert data["setup"]["feature"] == "kin_pose" and len(data["table"]) == 6
    assert paths["csv"].read_text().splitlines()[0].startswith("action,head,spearman")


def test_bench_folds_protocol_and_untrained_mark(tmp_path):
    cache = _learnable_cache(tmp_path / "c.h5", actions=("Suturing",), folds=True, untrained=True)
    res = run_bench(cache, heads=["c3d-svr"], seeds=[3], feature="kin_pose", protocol="folds",
                    benchmark="jigsaws", progress=False)
    (run,) = res.runs[("c3d-svr", "Suturing")]
    assert run["spearman"] > 0.6
    y, p = res.predictions[("c3d-svr", "Suturing")]
    assert len(y) == 40  # every video is tested exactly once across the 4 folds
    md = to_markdown(res)
    assert md.splitlines()[2].startswith("- WARNING: UNTRAINED")


def test_bench_errors(tmp_path):
    cache = _learnable_cache(tmp_path / "c.h5", n=8)
    with pytest.raises(KeyError, match="unknown head"):
        run_bench(cache, heads=["nope"], progress=False)
    with pytest.raises(ValueError, match="protocol"):
        run_bench(cache, heads=["mlp"], protocol="loo", progress=False)


def test_bench_cli(tmp_path):
    from click.testing import CliRunner

    from aqa.heads.cli import main as heads_cli

    cache = _learnable_cache(tmp_path / "c.h5")
    out = tmp_path / "rep"
    res = CliRunner().invoke(heads_cli, ["bench", str(cache), "--heads", "c3d-svr,i3d-svr", "--seeds", "2",
                                         "--feature", "kin_pose", "--benchmark", "aqa7", "--out", str(out),
                                         "-p", "i3d-svr.kernel=linear"])
    assert res.exit_code == 0, res.output
    assert "## action: gym_vault" in res.output and "0.6824" in res.output
    assert (out / "bench.md").exists() and (out / "pred_vs_true.png").exists()
    res = CliRunner().invoke(heads_cli, ["bench", str(cache), "-p", "kernel=linear"])
    assert res.exit_code == 1 and "HEAD.key=value" in res.output
