"""`aqa-heads train` + `explain` for the CoRe, fragment and Siamese heads: each head's own plots, from the CLI."""
import pytest
from click.testing import CliRunner

from aqa.heads.cli import main as heads_cli

from cachekit import learnable_cache

TINY = {"core": ["depth=2", "hidden_dim=16", "n_exemplars=3", "max_iter=40"],
        "fragment": ["fragment_dim=8", "hidden=(16, 8)", "max_iter=40"],
        "siamese": ["lstm_dim=8", "d1_dim=16", "d2_dim=16", "dml_max_iter=20", "max_iter=40"]}


@pytest.mark.slow
@pytest.mark.parametrize("head", sorted(TINY))
def test_train_then_explain_writes_pngs(head, tmp_path):
    cache = learnable_cache(tmp_path / "c.h5", n=24)
    model = tmp_path / f"{head}.pt"
    args = ["train", head, str(cache), "--feature", "kin_pose", "--out", str(model)]
    for p in TINY[head]:
        args += ["-p", p]
    res = CliRunner().invoke(heads_cli, args)
    assert res.exit_code == 0, res.output
    out = tmp_path / "plots"
    res = CliRunner().invoke(heads_cli, ["explain", str(model), str(cache), "--out", str(out),
                                         "--video", "v00", "--video", "v01"])
    assert res.exit_code == 0, res.output
    pngs = sorted(out.glob("*.png"))
    assert pngs, res.output
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000
