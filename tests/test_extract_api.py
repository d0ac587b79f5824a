"""aqa.extract.extract: the one-call Python API over ExtractConfig/run_extraction."""
import numpy as np
import pytest

import aqa.extract
from aqa.data.cache import CacheReader


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from aqa.data.synthetic import render_dataset

    d = tmp_path_factory.mktemp("api")
    render_dataset(d, n=2, kind="single", seed=6, n_frames=32, size=(96, 72), progress=False)
    return d


def test_extract_runs_the_docstring_example_on_synthetic_videos(videos, tmp_path):
    out = tmp_path / "feats.h5"
    run = aqa.extract.extract(videos, out=out, pose="file", flow="none",
                              labels=videos / "labels.csv", sampling="c3d",
                              sampling_options={"length": 8}, progress=False)
    assert run.out == str(out) and run.count("done") == 2 and not run.failed
    assert "flow" not in run.stage_seconds() and run.stage_seconds()["weightfree"] > 0
    with CacheReader(run.out) as cache:
        ids = cache.video_ids()
        X = cache.load("kin_pose", ids)
        score = {r.video_id: r.score for r in cache.labels()}
        y = [score[i] for i in ids]
        assert cache.provenance()["config"]["sampling_options"] == {"length": 8}
    assert X.shape[:2] == (2, 2) and np.isfinite(X).all() and len(y) == 2
    again = aqa.extract.extract([videos], out=out, pose="file", flow="none",
                                labels=videos / "labels.csv", sampling="c3d",
                                sampling_options={"length": 8}, progress=False)
    assert again.count("skipped") == 2 and again.count("done") == 0  # resumed: nothing redone


def test_extract_refuses_bad_options_and_warns_about_failures(videos, tmp_path):
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['stremas'\]"):
        aqa.extract.extract(videos, out=tmp_path / "x.h5", stremas=("rgb",))
    with pytest.raises(ValueError, match="flow stream reads flow"):
        aqa.extract.extract(videos, out=tmp_path / "x.h5", flow="none", backbone="i3d")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.mp4").write_bytes(b"not a video")
    with pytest.warns(UserWarning, match=r"1 video\(s\) failed, e.g. .*broken.mp4 \[decode\]"):
        run = aqa.extract.extract(bad, out=tmp_path / "b.h5", flow="none", progress=False)
    assert len(run.failed) == 1 and (tmp_path / "b.h5.failures.json").is_file()
