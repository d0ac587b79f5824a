"""benchmarks/gpu_prepare.py: what it carries to an offline GPU machine is what the project pins and
what the tests read."""
from pathlib import Path

import numpy as np
import pytest
from scriptkit import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prep():
    return load_benchmark("gpu_prepare")


def test_the_wheel_is_the_pinned_opencv_that_runs_here(prep):
    import cv2

    req = prep.pinned_requirement(prep.CV_PACKAGE)
    name, version = req.split("==")
    assert name == "opencv-contrib-python-headless"
    assert version.startswith(cv2.__version__ + ".")  # 4.10.0.84 is cv2 4.10.0
    with pytest.raises(SystemExit, match="does not pin no-such-package"):
        prep.pinned_requirement("no-such-package")


def test_cut_video_keeps_the_first_frames_byte_for_byte(prep, tmp_path):
    import cv2

    from media import opencv_sample

    src = opencv_sample("vtest.avi")
    assert prep.cut_video(src, tmp_path / "cut.avi", 12) == 12
    assert not (tmp_path / "cut.avi.part").exists()
    assert (tmp_path / "cut.avi").stat().st_size < src.stat().st_size / 20
    a, b = cv2.VideoCapture(str(tmp_path / "cut.avi")), cv2.VideoCapture(str(src))
    n = 0
    while True:
        ok, fa = a.read()
        if not ok:
            break
        ok_b, fb = b.read()
        assert ok_b and np.array_equal(fa, fb), f"frame {n} differs"
        n += 1
    assert n == 12


def test_travelling_bytes_counts_the_carried_folders(prep, tmp_path):
    extra = tmp_path / "carried"
    (extra / "sub").mkdir(parents=True)
    (extra / "a.bin").write_bytes(b"x" * 1000)
    (extra / "sub" / "b.bin").write_bytes(b"y" * 234)
    base = prep.travelling_bytes([])
    assert base > (ROOT / "README.md").stat().st_size  # the tracked files count
    assert prep.travelling_bytes([extra]) == base + 1234
