"""aqa.extract.video: decoding synthetic and real videos, frame counting, corrupt input, index overflow."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from aqa.extract.video import (FrameIndexError, VideoDecodeError, VideoWarning, count_frames,  # noqa: E402
                               iter_frames, probe, read_frames)

N = 30
W, H = 64, 48


def _frame(i: int) -> np.ndarray:
    """BGR frame: grey level 8*i (luma only, robust to lossy coding) encodes the index; the right
    quarter is pure red (BGR (0, 0, 255)) to check the RGB channel order."""
    img = np.full((H, W, 3), (i * 8) % 256, np.uint8)
    img[:, 3 * W // 4:] = (0, 0, 255)
    return img


def _write(path, n=N, fourcc="mp4v", fps=25):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    if not w.isOpened():
        pytest.skip(f"OpenCV cannot write {fourcc} here")
    for i in range(n):
        w.write(_frame(i))
    w.release()
    return path


def _index_of(frames: np.ndarray) -> np.ndarray:
    """Recover the encoded frame index from the grey area (mean over a flat patch)."""
    return np.rint(frames[:, 8:-8, 4:W // 2].reshape(len(frames), -1).mean(1) / 8).astype(int)


def _is_rgb(frames: np.ndarray) -> bool:
    red = frames[:, 8:-8, -8:].reshape(-1, 3).mean(0)
    return red[0] > 200 and red[2] < 60


@pytest.fixture
def mp4(tmp_path):
    return _write(tmp_path / "clip.mp4")


@pytest.fixture
def avi(tmp_path):
    return _write(tmp_path / "clip.avi", fourcc="MJPG")


@pytest.mark.parametrize("fixture", ["mp4", "avi"])
def test_probe_and_read_all(fixture, request):
    path = request.getfixturevalue(fixture)
    info = probe(path)
    assert (info.n_frames, info.height, info.width) == (N, H, W)
    assert info.fps == pytest.approx(25.0)
    assert info.backend == "pyav"
    assert probe(path, exact=True).n_frames_source == "decoded"
    assert count_frames(path) == N
    frames, idx = read_frames(path)
    assert frames.shape == (N, H, W, 3) and frames.dtype == np.uint8
    assert idx.dtype == np.int32 and np.array_equal(idx, np.arange(N))
    assert np.array_equal(_index_of(frames), np.arange(N))  # frame order is right
    assert _is_rgb(frames)


def test_read_selected_indices_keep_request_order_and_duplicates(mp4):
    req = [7, 3, 3, 29, 0]
    frames, idx = read_frames(mp4, req)
    assert np.array_equal(idx, req)
    assert np.array_equal(_index_of(frames), req)
    streamed = list(iter_frames(mp4, req))
    assert [i for i, _ in streamed] == [0, 3, 7, 29]  # unique, increasing
    full, _ = read_frames(mp4)
    for i, img in streamed:
        assert np.array_equal(img, full[i])


def test_opencv_backend_matches_pyav(avi):
    a, ia = read_frames(avi, [0, 5, 12], backend="pyav")
    b, ib = read_frames(avi, [0, 5, 12], backend="opencv")
    assert np.array_equal(ia, ib)
    # two different MJPEG decoders: allow rounding differences only
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0
    info = probe(avi, backend="opencv")
    assert info.backend == "opencv" and info.n_frames == N


def test_overflow_clamps_with_warning_or_raises(mp4):
    with pytest.warns(UserWarning, match="past the last decodable frame 29"):
        frames, idx = read_frames(mp4, [28, 29, 30, 100])
    assert np.array_equal(idx, [28, 29, 29, 29])
    assert np.array_equal(frames[2], frames[1]) and np.array_equal(frames[3], frames[1])
    with pytest.raises(FrameIndexError, match="past the last decodable frame 29"):
        read_frames(mp4, [5, 40], on_overflow="error")
    with pytest.warns(UserWarning):  # every index past the end still returns the last frame
        frames, idx = read_frames(mp4, [50])
    assert np.array_equal(idx, [29]) and _index_of(frames)[0] == 29


def test_bad_requests(mp4):
    with pytest.raises(ValueError, match=">= 0"):
        read_frames(mp4, [-1, 2])
    with pytest.raises(ValueError, match="no frame indices"):
        read_frames(mp4, [])
    with pytest.raises(ValueError, match="on_overflow"):
        read_frames(mp4, [1], on_overflow="wrap")
    with pytest.raises(ValueError, match="unknown video backend"):
        read_frames(mp4, backend="ffmpeg")


def test_missing_empty_and_garbage_files(tmp_path):
    with pytest.raises(VideoDecodeError, match="no such file") as ei:
        read_frames(tmp_path / "nope.mp4")
    assert ei.value.path.endswith("nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty"):
        probe(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoDecodeError) as ei:
        read_frames(junk)
    assert "junk.mp4" in str(ei.value) and "pyav" in ei.value.reason and "opencv" in ei.value.reason
    with pytest.raises(VideoDecodeError):
        probe(junk)


def test_truncated_mp4_raises(mp4, tmp_path):
    data = mp4.read_bytes()
    bad = tmp_path / "trunc.mp4"
    bad.write_bytes(data[: len(data) // 2])  # cuts off the trailing moov atom
    with pytest.raises(VideoDecodeError, match="trunc.mp4"):
        read_frames(bad, [0])
    with pytest.raises(VideoDecodeError):
        probe(bad, exact=True)


def test_truncated_avi_metadata_lies_and_frames_are_counted(avi, tmp_path):
    data = avi.read_bytes()
    bad = tmp_path / "trunc.avi"
    bad.write_bytes(data[: len(data) // 2])  # the AVI header still claims 30 frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = probe(bad)
        n = info.n_frames
        assert info.n_frames_source == "decoded" and 0 < n < N
        assert count_frames(bad) == n
        frames, idx = read_frames(bad)
    assert len(frames) == n and np.array_equal(_index_of(frames), np.arange(n))
    with pytest.raises(FrameIndexError):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_frames(bad, [0, N - 1], on_overflow="error")


def cut_faststart_mp4(src, dst, n_frames: int):
    """``src`` remuxed into a faststart mp4 (the header with its frame count first, as a web
    download has it) and cut right after the packet of frame ``n_frames - 1``: a truncated file
    that decodes to ``n_frames`` frames without any decode error."""
    av = pytest.importorskip("av")
    full = dst.with_name(dst.stem + ".full.mp4")
    with av.open(str(src)) as inp, av.open(str(full), "w", options={"movflags": "faststart"}) as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for pkt in inp.demux(stream):
            if pkt.dts is not None:
                pkt.stream = copy
                out.mux(pkt)
    with av.open(str(full)) as c:
        ends = sorted(p.pos + p.size for p in c.demux(c.streams.video[0]) if p.size)
    dst.write_bytes(full.read_bytes()[:ends[n_frames - 1]])
    full.unlink()
    return dst


def test_cut_faststart_mp4_warns_declared_and_decoded_counts(mp4, tmp_path):
    whole = cut_faststart_mp4(mp4, tmp_path / "whole.mp4", N)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the complete file: no warning
        assert len(read_frames(whole)[0]) == N
    cut = cut_faststart_mp4(mp4, tmp_path / "cut.mp4", 10)
    assert probe(cut).n_frames == N  # the header still declares every frame
    with pytest.warns(VideoWarning) as rec:
        frames, idx = read_frames(cut)
    assert [str(w.message) for w in rec] == [
        f"{cut}: decoded only 10 of the {N} frames the container declares (a truncated file?)"]
    assert len(frames) == 10 and np.array_equal(_index_of(frames), np.arange(10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stopping before the end is no evidence of truncation
        read_frames(cut, [0, 5])


def test_image_directory(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):  # names that sort wrongly as plain strings (img_10 < img_2)
        cv2.imwrite(str(folder / f"img_{i}.png"), _frame(i))
    (folder / "notes.txt").write_text("not a frame")
    info = probe(folder)
    assert (info.n_frames, info.backend) == (12, "images")
    frames, idx = read_frames(folder, [11, 2, 10])
    assert np.array_equal(_index_of(frames), [11, 2, 10])
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(VideoDecodeError, match="no image files"):
        probe(tmp_path / "empty_dir")
    with pytest.raises(VideoDecodeError, match="directory"):
        read_frames(folder, backend="pyav")


def test_real_footage_vtest():
    from media import opencv_sample

    path = opencv_sample("vtest.avi")
    info = probe(path)
    assert (info.n_frames, info.height, info.width) == (795, 576, 768)
    assert info.fps == pytest.approx(10.0)
    frames, idx = read_frames(path, [0, 400, 794])
    assert frames.shape == (3, 576, 768, 3)
    # real footage: frames differ (people walk) but the scene is the same
    diff = np.abs(frames[0].astype(int) - frames[2].astype(int)).mean()
    assert 1.0 < diff < 60.0
    cv_frames, _ = read_frames(path, [400], backend="opencv")
    assert np.abs(cv_frames[0].astype(int) - frames[1].astype(int)).mean() < 2.0


def test_resized_size_downscales_only_and_validates():
    from aqa.extract.video import resized_size

    assert resized_size(1080, 1920, short_side=256) == (256, 455)
    assert resized_size(1920, 1080, short_side=256) == (455, 256)   # portrait: width is the short side
    assert resized_size(72, 96, short_side=256) == (72, 96)          # never upscales
    assert resized_size(48, 64, frame_height=96) == (96, 128)        # an explicit height may upscale
    assert resized_size(480, 640) == (480, 640)
    with pytest.raises(ValueError, match="not both"):
        resized_size(480, 640, frame_height=240, short_side=256)
    with pytest.raises(ValueError, match="positive integer"):
        resized_size(480, 640, short_side=-3)


def test_read_frames_resizes_as_it_decodes(mp4, tmp_path):
    full, idx = read_frames(mp4)
    small, idx2 = read_frames(mp4, short_side=24)                    # 64x48 -> 32x24
    assert small.shape == (N, 24, 32, 3) and np.array_equal(idx, idx2)
    assert np.array_equal(_index_of(full), np.arange(N))
    # content preserved: the area resize of each full frame, frame by frame
    ref = np.stack([cv2.resize(f, (32, 24), interpolation=cv2.INTER_AREA) for f in full])
    assert np.abs(small.astype(int) - ref).max() <= 1 and _is_rgb(np.repeat(np.repeat(small, 2, 1), 2, 2))
    assert read_frames(mp4, [3], short_side=256)[0].shape == (1, H, W, 3)  # larger than the frame: kept
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        over, _ = read_frames(mp4, [N + 5], frame_height=24)             # the clamped re-read is resized too
    assert over.shape == (1, 24, 32, 3)
