"""`aqa-heads train/bench --preset` put a head's published settings one flag away (under -p), and
`aqa-heads`/`aqa-data` take -v/-q like `aqa-extract`."""
import logging

import pytest
from click.testing import CliRunner

from aqa.data.cli import main as data_main
from aqa.heads import cli as heads_cli
from aqa.heads.presets import preset_params


@pytest.fixture
def cache_file(tmp_path):
    p = tmp_path / "feats.h5"
    p.write_bytes(b"")   # the commands below are stopped before they read it
    return p


def test_train_preset_gives_the_papers_settings_under_p(cache_file, monkeypatch):
    seen = {}

    def fake_run(cache, labels, head, feature, seed, params, *a, **k):
        seen.update(params)
        raise ValueError("stopped here")

    monkeypatch.setattr(heads_cli, "run_train_eval", fake_run)
    r = CliRunner().invoke(heads_cli.main, ["train", "jrg", str(cache_file), "--preset", "paper",
                                            "-p", "learning_rate=0.5"])
    assert "stopped here" in r.output and r.exit_code != 0
    paper = preset_params("jrg", "paper")
    assert paper["staged"] is True and paper["learning_rate"] == 1e-4
    assert seen == {**paper, "learning_rate": 0.5}


def test_bench_preset_reaches_every_head_it_runs(cache_file, monkeypatch):
    import aqa.heads.bench as bench

    seen = {}

    def fake_bench(cache, **k):
        seen.update(k["params"])
        raise ValueError("stopped here")

    monkeypatch.setattr(bench, "run_bench", fake_bench)
    r = CliRunner().invoke(heads_cli.main, ["bench", str(cache_file), "--heads", "stats-ridge,aim,core",
                                            "--preset", "paper", "-p", "aim.max_iter=7"])
    assert "stopped here" in r.output
    assert set(seen) == {"aim", "core"}   # the baseline has no paper preset
    assert seen["aim"] == {**preset_params("aim", "paper"), "max_iter": 7}
    assert seen["core"] == preset_params("core", "paper")
    r = CliRunner().invoke(heads_cli.main, ["bench", str(cache_file), "--preset", "nope"])
    assert r.exit_code == 2 and "'nope' is not 'paper'" in r.output


@pytest.mark.parametrize("main,args", [(heads_cli.main, ["list"]), (data_main, ["labels", "--help"])])
def test_quiet_and_verbose_set_the_package_log_level(main, args):
    log = logging.getLogger("aqa")
    try:
        assert CliRunner().invoke(main, ["-q", *args]).exit_code == 0
        assert log.level == logging.WARNING
        assert CliRunner().invoke(main, ["-v", *args]).exit_code == 0
        assert log.level == logging.DEBUG
        r = CliRunner().invoke(main, ["-v", "-q", *args])
        assert r.exit_code == 2 and "exclude each other" in r.output
    finally:
        log.setLevel(logging.NOTSET)
