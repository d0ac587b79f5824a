"""Output a person can follow: logging levels (-v/--quiet), native chatter silenced, progress lines
without a terminal, and a warning for every model that runs on random weights."""
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aqa.data import logs
from aqa.extract.cli import main as extract_cli


@pytest.fixture(scope="module")
def one_video(tmp_path_factory):
    from aqa.data.synthetic import render_dataset

    d = tmp_path_factory.mktemp("one")
    render_dataset(d, n=1, kind="single", seed=5, n_frames=32, size=(96, 72), progress=False)
    return sorted(d.glob("*.mp4"))[0]


@pytest.fixture(autouse=True)
def restore_logging():
    """setup() configures the process-wide `aqa` logger; each test starts and ends without it."""
    yield
    log = logging.getLogger("aqa")
    for h in list(log.handlers):
        log.removeHandler(h)
    log.setLevel(logging.NOTSET)
    log.propagate = True
    logs._state["third_party"] = False
    for name in logs.THIRD_PARTY_LOGGERS + logs.THIRD_PARTY_NOISY:
        logging.getLogger(name).setLevel(logging.NOTSET)


class _Pipe(io.StringIO):
    def isatty(self):
        return False


def test_progress_without_a_terminal_is_a_line_per_ten_percent_with_eta():
    out = _Pipe()
    with logs.progress_bar(total=40, desc="work", unit="item", file=out) as bar:
        for _ in range(40):
            bar.update(1)
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [ln.split()[1] for ln in lines] == [f"{p}%" for p in range(10, 101, 10)]
    assert lines[4].startswith("work:  50% 20/40 [") and "<" in lines[4] and "item/s" in lines[4]
    out = _Pipe()  # stopped early: its last state is written when it closes
    with logs.progress_bar(total=40, desc="cut", file=out) as bar:
        bar.update(7)
    assert len(out.getvalue().splitlines()) == 1
    assert out.getvalue().startswith("cut:  18% 7/40 [")  # 17.5 rounded
    out = _Pipe()  # no total: the count when it closes
    with logs.progress_bar(total=None, desc="dl", unit="B", file=out) as bar:
        bar.update(5)
    assert out.getvalue().startswith("dl: 5 B [")
    out = _Pipe()
    list(logs.progress_bar(range(5), file=out, disable=True))
    assert out.getvalue() == ""


def test_native_stderr_is_silenced_unless_verbose(capfd):
    """What native code writes to file descriptor 2 is held back (and shown if the block fails);
    Python's own stderr output goes through."""
    with logs.native_output_quieted():
        os.write(2, b"W0000 native chatter\n")
        print("python line", file=sys.stderr)
    err = capfd.readouterr().err
    assert "native chatter" not in err and "python line" in err
    with pytest.raises(RuntimeError), logs.native_output_quieted():
        os.write(2, b"E0000 native error detail\n")
        raise RuntimeError("boom")
    assert "native error detail" in capfd.readouterr().err
    logs.setup(verbose=1)
    with logs.native_output_quieted():
        os.write(2, b"W0000 shown with -v\n")
    assert "shown with -v" in capfd.readouterr().err


def test_quiet_and_verbose_levels():
    logs.setup(quiet=True)
    assert not logging.getLogger("aqa.extract.runner").isEnabledFor(logging.INFO)
    assert logging.getLogger("aqa.extract.runner").isEnabledFor(logging.WARNING)
    logs.setup()
    assert logging.getLogger("aqa.heads").isEnabledFor(logging.INFO)
    assert not logging.getLogger("aqa.heads").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("absl").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("torch.utils.cpp_extension").getEffectiveLevel() == logging.ERROR
    logs.setup(verbose=1)
    assert logging.getLogger("aqa.heads").isEnabledFor(logging.DEBUG)
    assert len(logging.getLogger("aqa").handlers) == 1  # set up again: replaced, not added
    import warnings

    for verbose, shown in ((0, 0), (1, 1)):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            logs.setup(verbose=verbose)
            warnings.warn_explicit("GetPrototype() is deprecated", UserWarning, "symbol_database.py",
                                   55, module="google.protobuf.symbol_database")
        assert len(seen) == shown
    res = CliRunner().invoke(extract_cli, ["run", "-v", "-q", ".", "--out", "x.h5"])
    assert res.exit_code == 2 and "exclude each other" in res.output


def test_cli_progress_is_lines_without_a_terminal(one_video, tmp_path):
    res = CliRunner().invoke(extract_cli, [str(one_video), "--out", str(tmp_path / "f.h5"),
                                           "--flow", "none", "--sampling", "c3d",
                                           "--sampling-opt", "length=8"])
    assert res.exit_code == 0, res.output
    assert "\r" not in res.output
    assert any(ln.startswith("extract: 100% 1/1 [") for ln in res.output.splitlines())
    res = CliRunner().invoke(extract_cli, [str(one_video), "--out", str(tmp_path / "g.h5"),
                                           "--flow", "none", "--quiet"])
    assert res.exit_code == 0 and "extract:" not in res.output and "left out" not in res.output


@pytest.mark.slow
def test_untrained_backbone_warns_at_cli(one_video, tmp_path, monkeypatch):
    monkeypatch.setenv("AQA_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    args = [str(one_video), "--out", str(tmp_path / "u.h5"), "--quiet", "--backbone", "i3d",
            "--streams", "rgb", "--flow", "none", "--no-weightfree", "--no-joints",
            "--sampling", "c3d", "--sampling-opt", "length=8", "--sampling-opt", "stop=8",
            "--untrained", "--device", "cpu"]
    with pytest.warns(UserWarning, match=r"i3d/rgb runs with RANDOM weights \(--untrained\)"):
        res = CliRunner().invoke(extract_cli, args)
    assert res.exit_code == 0, res.output


@pytest.mark.slow
def test_mediapipe_chatter_is_silenced_by_default_and_shown_with_v(one_video, tmp_path):
    pytest.importorskip("mediapipe")
    exe = Path(sys.executable).with_name("aqa-extract")
    env = {k: v for k, v in os.environ.items() if k not in logs.QUIET_ENV}
    base = [str(exe), str(one_video), "--pose", "blazepose", "--flow", "none", "--sampling",
            "c3d", "--sampling-opt", "length=8"]
    quiet = subprocess.run(base + ["--out", str(tmp_path / "a.h5")], capture_output=True,
                           text=True, timeout=300, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert "1 extracted" in quiet.stdout
    for chatter in ("XNNPACK", "absl::InitializeLog", "inference_feedback_manager", "GetPrototype"):
        assert chatter not in quiet.stderr
    loud = subprocess.run(base + ["--out", str(tmp_path / "b.h5"), "-v"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert loud.returncode == 0, loud.stderr
    assert "XNNPACK" in loud.stderr
