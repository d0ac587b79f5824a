"""Cutting full benchmark videos into per-dive frame folders (aqa.pipelines.cut)."""
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from aqa.extract.video import image_files, probe, read_frames
from aqa.pipelines.cli import main
from aqa.pipelines.cut import Dive, cut_dives, find_full_video, plan_dives

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
W, H, N_FRAMES = 64, 48, 150


def _frame(i: int) -> np.ndarray:
    """RGB frame i: red level 10 i mod 250 (neighbours differ by far more than JPEG noise), green i // 50."""
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = (10 * i) % 250
    img[..., 1] = 40 * (i // 50) + 20
    img[:, : W // 2, 2] = 200  # some structure
    return img


def _write_full_video(path: Path, n: int = N_FRAMES) -> Path:
    import cv2
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (W, H))
    for i in range(n):
        w.write(cv2.cvtColor(_frame(i), cv2.COLOR_RGB2BGR))
    w.release()
    return path


def _annotations(root: Path, ranges: dict) -> Path:
    """MTL-AQA annotation files (augmented dict + split 0) for dives {(video, clip): (start, end)}."""
    ann = root / "ann"
    ann.mkdir()
    if len(ranges) == 1:  # both splits must list a key: a second dive, of a video never provided
        ranges = {**ranges, (98, 1): (0, 10)}
    d = {k: {"primary_view": 0, "start_frame": s, "end_frame": e, "position": 2, "difficulty": 3.0,
             "armstand": 0, "rotation_type": 1, "ss_no": 5, "tw_no": 0, "final_score": 60.0 + k[1],
             "judge_scores": np.full(7, 6.5)} for k, (s, e) in ranges.items()}
    keys = sorted(ranges)
    for name, obj in (("augmented_final_annotations_dict.pkl", d), ("train_split_0.pkl", keys[::2]),
                      ("test_split_0.pkl", keys[1::2])):
        (ann / name).write_bytes(pickle.dumps(obj, protocol=3))
    return ann


def _cut_frames(folder: Path) -> np.ndarray:
    return read_frames(folder, backend="images")[0]


@pytest.mark.skipif(not (SHARED / "mtl_aqa").is_dir(), reason="../shared/datasets is absent")
def test_plan_of_the_real_mtl_aqa_annotations():
    from aqa.data.datasets import read_dataset
    rows = read_dataset("mtl_aqa", SHARED / "mtl_aqa", include_unsplit=True)
    plan = plan_dives(rows)
    assert list(plan) == [1, 2, 3, 4, 5, 6, 7, 9, 10, 13, 14, 17, 18, 22, 26]  # 15 full videos
    assert sum(map(len, plan.values())) == 1412
    assert plan[1][0] == Dive("01_01", 1, 7462 - 103, 7462)   # start 7377 is later than end - 103
    by_id = {r.video_id: r for r in rows}
    for dives in plan.values():
        for d in dives:
            s, e = by_id[d.video_id].sub_scores["start_frame"], by_id[d.video_id].sub_scores["end_frame"]
            assert d.end == e and d.first <= s and d.n_frames >= 103   # the whole dive, >= 103 frames
            assert d.first == s or d.n_frames == 103                   # extended only as far as needed


def test_cut_writes_each_dives_frames_and_resumes(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    _write_full_video(full / "01.avi")
    ranges = {(1, 1): (10, 40), (1, 2): (50, 120), (1, 3): (100, 149), (2, 1): (0, 30)}
    ann = _annotations(tmp_path, ranges)
    out = tmp_path / "videos"
    s = cut_dives("mtl_aqa", ann, full, out, min_frames=40, progress=False)
    assert sorted(s.done) == ["01_01", "01_02", "01_03"] and not s.failed
    assert s.missing_videos == [2] and s.missing_dives == ["02_01"]
    source = read_frames(full / "01.avi")[0]
    for vid, first, end in (("01_01", 0, 40), ("01_02", 50, 120), ("01_03", 100, 149)):
        got = _cut_frames(out / vid)       # (1,1): 10..39 extended back to 40 frames ending at 39
        assert len(got) == end - first, vid
        red, want = got[..., 0].mean(axis=(1, 2)), source[first:end, ..., 0].mean(axis=(1, 2))
        assert np.abs(red - want).max() < 2.5, vid                  # the same frames, JPEG-close,
        assert np.abs(red[1:] - want[:-1]).min() > 6, vid         # not their neighbours
    assert [p.name for p in image_files(out / "01_02")][:2] == ["000001.jpg", "000002.jpg"]
    assert not list(out.glob(".*partial*"))
    from aqa.data.datasets import read_dataset
    from aqa.pipelines.recipes import locate_videos
    found, missing = locate_videos("mtl_aqa", read_dataset("mtl_aqa", ann), out)  # what `run` reads
    assert [vid for vid, _ in found] == ["01_01", "01_02", "01_03"] and missing == ["02_01"]
    (out / "01_02" / "000003.jpg").unlink()                         # a finished folder is kept
    s = cut_dives("mtl_aqa", ann, full, out, min_frames=40, progress=False)
    assert sorted(s.skipped) == ["01_01", "01_02", "01_03"] and not s.done


@pytest.mark.slow
def test_cut_on_real_footage(tmp_path):
    """opencv-doc's vtest.avi (people walking, 768x576, 795 frames) as full video 07: each cut
    frame is its source frame (JPEG-close), closer to it than to the neighbouring frame."""
    import os
    from media import opencv_sample
    full = tmp_path / "full"
    full.mkdir()
    os.symlink(opencv_sample("vtest.avi"), full / "07.avi")
    ann = _annotations(tmp_path, {(7, 1): (100, 150), (7, 2): (700, 760)})
    s = cut_dives("mtl_aqa", ann, full, tmp_path / "out", min_frames=30, progress=False)
    assert s.done == ["07_01", "07_02"] and not s.failed
    for vid, first, end in (("07_01", 100, 150), ("07_02", 700, 760)):
        got = _cut_frames(tmp_path / "out" / vid)[:, ::4, ::4].astype(np.int16)
        ref = read_frames(full / "07.avi", np.arange(first, end))[0][:, ::4, ::4].astype(np.int16)
        assert len(got) == end - first
        same = np.abs(got - ref).mean(axis=(1, 2, 3))
        neighbour = np.abs(got[1:] - ref[:-1]).mean(axis=(1, 2, 3))
        assert same.max() < 1.6 and (same[1:] < neighbour).all(), (vid, same.max())


def test_a_frame_folder_source_is_linked_and_a_dive_past_the_end_fails(tmp_path):
    full = tmp_path / "full"
    (full / "03").mkdir(parents=True)
    import cv2
    for i in range(60):
        cv2.imwrite(str(full / "03" / f"{i + 1}.png"), cv2.cvtColor(_frame(i), cv2.COLOR_RGB2BGR))
    ann = _annotations(tmp_path, {(3, 1): (5, 20), (3, 2): (40, 70)})
    out = tmp_path / "videos"
    (out / ".03_01.partial").mkdir(parents=True)                    # left by an interrupted cut
    (out / ".03_01.partial" / "000099.jpg").write_bytes(b"junk")
    s = cut_dives("mtl_aqa", ann, full, out, min_frames=10, progress=False)
    assert s.done == ["03_01"] and list(s.failed) == ["03_02"]
    assert "ends before frame 69" in s.failed["03_02"]
    files = image_files(out / "03_01")
    assert [f.name for f in files] == [f"{k:06d}.png" for k in range(1, 16)]  # 5..19, no junk
    assert files[0].samefile(full / "03" / "6.png")                 # hard-linked, not re-encoded
    assert not (out / "03_02").exists() and not list(out.glob(".*partial*"))


def test_short_side_downscales(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    _write_full_video(full / "1.avi", n=40)                         # an unpadded number works too
    ann = _annotations(tmp_path, {(1, 1): (0, 30)})
    cut_dives("mtl_aqa", ann, full, tmp_path / "v", short_side=24, progress=False)
    info = probe(tmp_path / "v" / "01_01", exact=True)
    assert (info.height, info.width, info.n_frames) == (24, 32, 30)


def test_bad_input_is_refused(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    ann = _annotations(tmp_path, {(1, 1): (0, 30)})
    with pytest.raises(FileNotFoundError, match=r"none of the 2 full mtl_aqa videos .* e\.g\. .*01\.mp4"):
        cut_dives("mtl_aqa", ann, full, tmp_path / "v", progress=False)
    _write_full_video(full / "01.avi", n=5)
    _write_full_video(full / "01.mp4", n=5)
    with pytest.raises(ValueError, match="several candidates .*01.avi, 01.mp4"):
        find_full_video(full, 1)
    with pytest.raises(ValueError, match="cut works on mtl_aqa, unlv_dive"):
        cut_dives("aqa7", ann, full, tmp_path / "v")
    with pytest.raises(ValueError, match="min_frames must be a positive integer"):
        cut_dives("mtl_aqa", ann, full, tmp_path / "v", min_frames=0)
    (tmp_path / "b").mkdir()
    bad = _annotations(tmp_path / "b", {(1, 1): (30, 30)})
    with pytest.raises(ValueError, match="01_01: frame range start_frame=30, end_frame=30 is empty"):
        cut_dives("mtl_aqa", bad, full, tmp_path / "v")


def test_cli(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    _write_full_video(full / "01.avi", n=60)
    ann = _annotations(tmp_path, {(1, 1): (0, 30), (1, 2): (50, 80), (4, 1): (0, 10)})
    out = tmp_path / "videos"
    r = CliRunner().invoke(main, ["cut", "mtl_aqa", str(ann), str(full), "--out", str(out), "--quiet",
                                  "--min-frames", "20"])
    assert r.exit_code == 1, r.output
    assert "mtl_aqa: 1 dives cut, 0 already there, 1 failed" in r.output
    assert "1 full video(s) not in" in r.output and "(04)" in r.output
    assert "FAILED 01_02: " in r.output and "error: 1 dive(s) failed" in r.output
    r = CliRunner().invoke(main, ["cut", "jigsaws", str(ann), str(full), "--out", str(out)])
    assert r.exit_code == 2 and "'jigsaws' is not one of" in r.output
