"""`make demo`'s job (aqa.pipelines.demo) at a tiny size: render -> extract -> verify -> bench."""
import json

import pytest


@pytest.mark.slow
def test_demo_runs_the_whole_story(tmp_path, capsys):
    from aqa.pipelines.demo import main

    out = tmp_path / "demo"
    assert main(["--out", str(out), "--n", "8", "--frames", "32", "--seeds", "1",
                 "--heads", "pose-dct-svr,mlp"]) == 0
    printed = capsys.readouterr().out
    assert "8 extracted, 0 already in the cache" in printed
    assert "[4/4] bench" in printed and "| pose-dct-svr |" in printed and "| mlp |" in printed
    assert len(list((out / "videos").glob("*.mp4"))) == 8 and (out / "feats.h5").exists()
    report = json.loads((out / "bench" / "bench.json").read_text())
    assert report["untrained_features"] is False and not report["errors"]
    heads = {row["head"] for row in report["table"]}
    assert heads == {"pose-dct-svr", "mlp"}
    assert (out / "bench" / "pred_vs_true.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (sheet,) = out.glob("poses_*.png")
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "poses on the frames of" in printed
    # re-running resumes: nothing is re-extracted
    assert main(["--out", str(out), "--n", "8", "--frames", "32", "--seeds", "1",
                 "--heads", "pose-dct-svr"]) == 0
    assert "0 extracted, 8 already in the cache" in capsys.readouterr().out
