"""Augmented views in extraction (aqa-extract --view): the transforms, then end to end."""
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from aqa.data.cache import CacheReader
from aqa.data.integrity import verify
from aqa.data.views import View
from aqa.extract.cli import main as extract_cli
from aqa.extract.pose.base import COCO_KEYPOINTS
from aqa.extract.pose.selection import PoseTrack
from aqa.extract.config import ExtractConfig
from aqa.extract.runner import run_extraction
from aqa.extract.views import (FLIP_KEYPOINTS, MASK_MARGIN, VideoData, apply_view, bright,
                                chain_flow, drop, flip, histeq, shift, zoom)

FAST_FLOW = {"nscales": 2, "warps": 2, "outer_iterations": 2, "inner_iterations": 5}
FAST = dict(sampling="c3d", sampling_options={"length": 8, "stride": 8}, flow="tvl1-cpu",
            flow_options=FAST_FLOW)
H, W = 72, 96


def _fast_cli_args():
    return ["--quiet", "--sampling", "c3d", "--sampling-opt", "length=8", "--sampling-opt",
            "stride=8", "--flow", "tvl1-cpu",
            *sum((["--flow-opt", f"{k}={v}"] for k, v in FAST_FLOW.items()), [])]


def _data(n=6, seed=0, flow=True) -> VideoData:
    rng = np.random.default_rng(seed)
    kp = np.concatenate([rng.uniform(0, [W, H], (n, 1, 17, 2)), rng.uniform(0, 1, (n, 1, 17, 1))],
                        -1).astype(np.float32)
    kp[1, 0, 3] = np.nan                                        # a missing joint stays missing
    x0, y0 = rng.uniform(0, 40, (2, n, 1))
    boxes = np.stack([x0, y0, x0 + 30, y0 + 25], -1).astype(np.float32)
    track = PoseTrack(kp, boxes, rng.uniform(0, 1, (n, 1)).astype(np.float32), np.zeros(1, np.int8))
    fl = rng.normal(0, 2, (n - 1, H, W, 2)).astype(np.float32) if flow else None
    return VideoData(rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8),
                     np.arange(n, dtype=np.int64) * 2, track, fl)


def _copy(d: VideoData) -> VideoData:
    t = d.track
    return VideoData(d.frames.copy(), d.index.copy(),
                     PoseTrack(t.keypoints.copy(), t.boxes.copy(), t.box_scores.copy(),
                               t.roles.copy()), None if d.flow is None else d.flow.copy())


def _assert_same(a: VideoData, b: VideoData, exact=True):
    close = np.testing.assert_array_equal if exact else (
        lambda x, y: np.testing.assert_allclose(x, y, atol=1e-4))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.index, b.index)
    close(a.track.keypoints, b.track.keypoints)
    close(a.track.boxes, b.track.boxes)
    np.testing.assert_array_equal(a.track.box_scores, b.track.box_scores)
    np.testing.assert_array_equal(a.track.roles, b.track.roles)
    assert (a.flow is None) == (b.flow is None)
    if a.flow is not None:
        np.testing.assert_array_equal(a.flow, b.flow)


def test_flip_mirrors_everything_and_twice_is_the_identity():
    d = _data()
    before = _copy(d)
    f = flip(d)
    _assert_same(d, before)                                     # the input is left alone
    _assert_same(flip(f), d, exact=False)
    np.testing.assert_array_equal(f.frames, d.frames[:, :, ::-1])
    lw, rw = COCO_KEYPOINTS.index("left_wrist"), COCO_KEYPOINTS.index("right_wrist")
    assert FLIP_KEYPOINTS[lw] == rw and FLIP_KEYPOINTS[0] == 0  # the nose is its own mirror
    np.testing.assert_allclose(f.track.keypoints[:, 0, rw, 0], W - d.track.keypoints[:, 0, lw, 0])
    np.testing.assert_array_equal(f.track.keypoints[:, 0, rw, 1:], d.track.keypoints[:, 0, lw, 1:])
    assert np.isnan(f.track.keypoints[1, 0, FLIP_KEYPOINTS[3]]).all()
    b, fb = d.track.boxes, f.track.boxes
    np.testing.assert_allclose(fb[..., [0, 2]], W - b[..., [2, 0]])
    np.testing.assert_array_equal(fb[..., [1, 3]], b[..., [1, 3]])
    assert (fb[..., 2] > fb[..., 0]).all()
    np.testing.assert_array_equal(f.flow[..., 0], -d.flow[:, :, ::-1, 0])
    np.testing.assert_array_equal(f.flow[..., 1], d.flow[:, :, ::-1, 1])
    assert flip(_data(flow=False)).flow is None


def test_shift_starts_later_and_keeps_flow_aligned():
    d = _data(n=8)
    s = apply_view("shift:3", d)
    assert len(s.frames) == 5 and len(s.flow) == 4             # flow[i]: frame i -> i + 1
    np.testing.assert_array_equal(s.index, d.index[3:])
    np.testing.assert_array_equal(s.frames, d.frames[3:])
    np.testing.assert_array_equal(s.track.keypoints, d.track.keypoints[3:])
    np.testing.assert_array_equal(s.track.boxes, d.track.boxes[3:])
    np.testing.assert_array_equal(s.track.box_scores, d.track.box_scores[3:])
    np.testing.assert_array_equal(s.flow, d.flow[3:])
    assert len(shift(d, 6).frames) == 2
    with pytest.raises(ValueError, match="shift7: the video has 8 frames; starting 7 frames later "
                                         "leaves 1, fewer than 2"):
        apply_view(View("shift", 7), d)


def test_zoom_maps_the_crop_onto_the_frame():
    import cv2

    d = _data(n=3)
    t = d.track
    t.keypoints[0, 0, 0, :2] = [W / 2, H / 2]                  # frame centre
    t.keypoints[0, 0, 1, :2] = [W / 4, H / 4]                  # top-left corner of the zoom-2 crop
    t.keypoints[0, 0, 2, :2] = [3 * W / 4, 3 * H / 4]          # its bottom-right corner
    d.flow[:] = [1.0, -2.0]
    z = zoom(d, 2)
    kp = z.track.keypoints[0, 0]
    np.testing.assert_allclose(kp[:3, :2], [[W / 2, H / 2], [0, 0], [W, H]], atol=1e-4)
    np.testing.assert_array_equal(kp[:, 2], t.keypoints[0, 0, :, 2])  # scores unchanged
    np.testing.assert_allclose(z.track.boxes, (t.boxes - [W / 4, H / 4] * 2) * 2, atol=1e-4)
    np.testing.assert_allclose(z.flow, np.broadcast_to([2.0, -4.0], z.flow.shape), atol=1e-5)
    crop = cv2.resize(d.frames[1, H // 4:3 * H // 4, W // 4:3 * W // 4], (W, H),
                      interpolation=cv2.INTER_LINEAR)
    assert z.frames.shape == d.frames.shape and z.frames.dtype == np.uint8
    # the central region, resized; on the outermost pixels the zoom reads the real neighbours
    # that lie outside the crop where cv2.resize of the crop replicates its edge
    assert np.abs(z.frames[1].astype(int) - crop)[1:-1, 1:-1].max() <= 1
    z12 = apply_view("zoom:1.2", d)                            # a crop of fractional size
    np.testing.assert_allclose(z12.flow, np.broadcast_to([1.2, -2.4], z12.flow.shape), atol=1e-5)
    np.testing.assert_allclose(z12.track.keypoints[0, 0, 0, :2], [W / 2, H / 2], atol=1e-4)


def test_bright_scales_frames_only():
    d = _data()
    d.frames[0, 0, 0] = [200, 10, 0]
    for gain in (0.8, 1.5):
        b = bright(d, gain)
        expect = np.clip(np.rint(d.frames.astype(float) * gain), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(b.frames, expect)
        _assert_same(b, VideoData(expect, d.index, d.track, d.flow))
    assert bright(d, 1.5).frames[0, 0, 0].tolist() == [255, 15, 0]


def test_histeq_spreads_a_dim_video_over_the_whole_range_and_keeps_hue():
    d = _data()
    g = np.linspace(40, 90, W).astype(np.uint8)              # a dim grey ramp, one warm pixel
    frames = np.repeat(np.repeat(g[None, None, :, None], H, 1), 3, 3).repeat(len(d.frames), 0)
    frames[:, 0, 0] = [90, 60, 30]
    d = VideoData(frames, d.index, d.track, d.flow)
    e = apply_view("histeq", d)
    y = e.frames[0, 1:].astype(float).mean(-1)
    assert y.min() < 10 and y.max() > 245                    # stretched to the full range
    assert (np.diff(y[0]) >= -1).all()                        # order of intensities kept
    r, gr, b = e.frames[0, 0, 0].astype(int)
    assert r > gr > b                                         # the warm pixel stays warm
    _assert_same(e, VideoData(e.frames, d.index, d.track, d.flow))
    np.testing.assert_array_equal(histeq(e).frames[0, 1:], e.frames[0, 1:])   # idempotent


def test_mask_blacks_out_all_but_the_grown_person_boxes():
    d = _data()
    boxes = d.track.boxes.copy()
    boxes[2] = np.nan                                          # no person in frame 2
    d = VideoData(d.frames, d.index, replace(d.track, boxes=boxes), d.flow)
    m = apply_view("mask", d)
    x1, y1, x2, y2 = boxes[0, 0]
    mx, my = MASK_MARGIN * (x2 - x1), MASK_MARGIN * (y2 - y1)
    inside = np.zeros((H, W), bool)
    inside[max(0, int(np.floor(y1 - my))):int(np.ceil(y2 + my)),
           max(0, int(np.floor(x1 - mx))):int(np.ceil(x2 + mx))] = True
    np.testing.assert_array_equal(m.frames[0][inside], d.frames[0][inside])
    assert not m.frames[0][~inside].any() and (~inside).any()
    assert not m.frames[2].any()                               # nobody to keep
    np.testing.assert_array_equal(m.flow[0][inside], d.flow[0][inside])
    assert not m.flow[0][~inside].any() and not m.flow[2].any()
    np.testing.assert_array_equal(m.track.keypoints, d.track.keypoints)


def test_chain_flow_is_the_composition_of_the_pairs():
    gy, gx = np.mgrid[0:H, 0:W].astype(np.float32)
    uniform = np.broadcast_to(np.array([[1.0, -2.0]], np.float32), (2, H, W, 2)).copy()
    uniform[1] = [0.5, 3.0]
    np.testing.assert_allclose(chain_flow(uniform), np.broadcast_to([1.5, 1.0], (H, W, 2)),
                               atol=1e-5)
    np.testing.assert_array_equal(chain_flow(uniform[:1]), uniform[0])
    # a linear field f(x) = a x (a stretch about the origin): f_13(x) = a x + a (x + a x) where
    # x + a x stays in the frame (bilinear sampling of a linear field is exact up to cv2.remap's
    # 1/32-pixel sample positions: a / 64)
    a = 0.1
    lin = np.stack([a * gx, a * gy], -1)
    got = chain_flow(np.stack([lin, lin]))
    inside = ((1 + a) * gx <= W - 1) & ((1 + a) * gy <= H - 1)
    expect = np.stack([a * gx * (2 + a), a * gy * (2 + a)], -1)
    np.testing.assert_allclose(got[inside], expect[inside], atol=a / 64 + 1e-5)
    assert inside.mean() > 0.8


@pytest.mark.slow
def test_chained_tvl1_agrees_with_tvl1_across_the_gap_on_real_footage():
    """vtest.avi (people walking), 192x144, OpenCV's default TV-L1: chaining the flows 0->1 and
    1->2 gives nearly TV-L1's own 0->2 flow on the moving pixels (measured: 0.21 and 0.24 px median
    endpoint error on ~2 px motion), closer than summing the pairs, and warps frame 2 onto frame
    0 nearly as well as that flow does."""
    import cv2

    from aqa.extract.flow import get_flow_backend
    try:
        from tests.media import opencv_sample
    except ModuleNotFoundError:
        from media import opencv_sample

    cap = cv2.VideoCapture(str(opencv_sample("vtest.avi")))
    frames = []
    for _ in range(23):
        ok, f = cap.read()
        assert ok, "could not decode vtest.avi"
        frames.append(cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (192, 144),
                                 interpolation=cv2.INTER_AREA))
    backend = get_flow_backend("tvl1-cpu")
    gy, gx = np.mgrid[0:144, 0:192].astype(np.float32)

    def photometric(seq, f):
        back = cv2.remap(seq[2].astype(np.float32), gx + f[..., 0], gy + f[..., 1],
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return np.abs(back - seq[0]).mean()

    for start in (0, 20):
        seq = np.stack(frames[start:start + 3])
        pairs = backend.compute(seq[:-1], seq[1:])
        direct = backend.compute(seq[:1], seq[2:])[0]
        chained = chain_flow(pairs)
        moving = np.linalg.norm(direct, axis=-1) > 0.5
        assert moving.mean() > 0.01

        def epe(f):
            return np.median(np.linalg.norm(f - direct, axis=-1)[moving])

        assert epe(chained) < 0.35 and epe(chained) < epe(pairs.sum(0))
        zero = photometric(seq, np.zeros_like(direct))
        assert photometric(seq, chained) < 0.6 * zero            # measured 0.51, 0.41
        assert photometric(seq, chained) < 1.4 * photometric(seq, direct)  # 1.14, 1.25


@pytest.mark.slow
def test_chaining_beats_tvl1_across_the_gap_against_the_true_motion():
    """benchmarks/chain_flow.py's rendered scene (a building photo panning, turning and zooming,
    a sprite crossing it): its true flow warps frame 3 onto frame 0 (an error near the noise,
    the opposite flow does not), composing its true pair flows gives its 0->3 flow, and against
    that truth chaining TV-L1's pair flows is far closer than TV-L1 run across the gap
    (measured: 0.30 px against 2.08 px mean error on 6 px of motion)."""
    import cv2

    from aqa.extract.flow import get_flow_backend
    from scriptkit import load_benchmark
    try:
        from tests.media import opencv_sample
    except ModuleNotFoundError:
        from media import opencv_sample

    bench = load_benchmark("chain_flow", "chain_flow_benchmark")

    def gray(name):
        return cv2.cvtColor(cv2.imread(str(opencv_sample(name))), cv2.COLOR_BGR2GRAY)

    scene = bench.Scene(gray("building.jpg"), gray("messi5.jpg")[60:300, 180:500], 192, 144, 1.0)
    first, last = scene.frame(0), scene.frame(3)
    flow, visible, sprite = scene.truth(0, 3)
    assert visible.mean() > 0.8 and sprite.mean() > 0.05
    gy, gx = np.mgrid[0:144, 0:192].astype(np.float32)

    def warp_error(f):
        back = cv2.remap(last.astype(np.float32), gx + f[..., 0], gy + f[..., 1], cv2.INTER_LINEAR)
        return np.abs(back - first)[visible].mean()

    assert warp_error(flow) < 5 < 30 < warp_error(-flow)       # measured 3.6 and 60 grey levels
    true_pairs = np.stack([scene.truth(k, k + 1)[0] for k in range(3)])
    assert np.linalg.norm(chain_flow(true_pairs) - flow, axis=-1)[visible].mean() < 0.05
    row, = bench.truth_rows(get_flow_backend("tvl1-cpu"), scene, [3], [0])
    assert row["epe_chain"] < 0.5 and row["epe_chain"] < row["epe_sum"]
    assert row["epe_direct"] > 3 * row["epe_chain"]
    assert row["epe_direct_sprite"] > 3 * row["epe_chain_sprite"]


def test_drop_keeps_the_ends_and_chains_the_flow_over_each_gap():
    d = _data(n=20)
    d.flow[:] = np.arange(19, dtype=np.float32)[:, None, None, None]    # flow[i] = (i, i), uniform
    before = _copy(d)
    v = apply_view("drop:0.3", d, seed=7)
    _assert_same(d, before)                                     # the input is left alone
    assert len(v.frames) == 14 and len(v.flow) == 13            # round(0.3 * 20) = 6 dropped
    kept = np.searchsorted(d.index, v.index)
    assert kept[0] == 0 and kept[-1] == 19 and (np.diff(kept) >= 1).all()
    assert (np.diff(kept) > 1).any()
    np.testing.assert_array_equal(v.index, d.index[kept])
    np.testing.assert_array_equal(v.frames, d.frames[kept])
    np.testing.assert_array_equal(v.track.keypoints, d.track.keypoints[kept])
    np.testing.assert_array_equal(v.track.boxes, d.track.boxes[kept])
    np.testing.assert_array_equal(v.track.box_scores, d.track.box_scores[kept])
    for i, (a, b) in enumerate(zip(kept[:-1], kept[1:])):      # a uniform flow chains to its sum
        np.testing.assert_allclose(v.flow[i], sum(range(a, b)), atol=1e-4)
    # the same seed drops the same frames, another seed others; no flow, none made up
    np.testing.assert_array_equal(drop(d, 0.3, seed=7).index, v.index)
    assert any(not np.array_equal(drop(d, 0.3, seed=s).index, v.index) for s in range(8, 12))
    assert drop(_data(n=20, flow=False), 0.3).flow is None
    assert len(drop(_data(n=3), 0.4).frames) == 2               # the one inner frame
    with pytest.raises(ValueError, match="drop0.1: the video has 4 frames; dropping 0.1 of them "
                                         "drops none"):
        apply_view("drop:0.1", _data(n=4))
    with pytest.raises(ValueError, match="drops 4, leaving fewer than 2"):
        apply_view("drop:0.9", _data(n=4))


# ------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    from aqa.data.synthetic import render_dataset

    d = tmp_path_factory.mktemp("synth")
    render_dataset(d, n=2, kind="single", seed=3, n_frames=32, size=(W, H), progress=False)
    return d


def _kin_mirror(joints, whole):
    """What kin_pose features of a mirrored video must be (extract/weightfree.py): joint x
    components negated and left/right joints swapped; the centre's x velocity and the torso angle's
    sine negated; everything else the same."""
    from aqa.extract.weightfree import FAMILIES

    fam = FAMILIES["kin_pose"]
    j = joints[:, list(FLIP_KEYPOINTS)].copy()
    for name in ("pos", "vel", "acc"):
        j[..., fam.slices("joints")[name].start] *= -1
    w = whole.copy()
    ws = fam.slices("whole")
    w[:, ws["centre_vel"].start] *= -1
    w[:, ws["orient"].start + 1] *= -1
    return j, w


@pytest.mark.slow
def test_views_end_to_end_and_resume(synth_dir, tmp_path, monkeypatch):
    out = tmp_path / "f.h5"
    s = run_extraction([synth_dir], out, ExtractConfig(**FAST), device="cpu", progress=False,
                       views=["flip", "shift:2"])
    assert not s.failed, s.failed
    assert s.count("done") == 2 and s.count("done", views=True) == 4
    stages = s.stage_seconds()
    assert {"decode", "pose", "flow", "weightfree", "write", "views:view", "views:weightfree",
            "views:write"} <= set(stages)
    assert list(stages)[-1].startswith("views:")
    rep = verify(out)
    assert rep.ok, rep.problems
    assert rep.n_videos == 2 and rep.n_views == 4
    with CacheReader(out) as r:
        ids = r.video_ids()
        assert len(ids) == 2 and not any("@" in v for v in ids)
        assert r.views() == {"flip": ids, "shift2": ids}
        for vid in ids:
            src = r.group(vid)
            for name in ("flip", "shift2"):
                g = r.group(f"{vid}@{name}")
                assert g.attrs["view_of"] == vid and g.attrs["view"] == name
                assert g.attrs["config_sha256"] == src.attrs["config_sha256"]
                assert g.attrs["source_sha256"] == src.attrs["source_sha256"]
            width = src.attrs["width"]
            p, pf, ps = r.pose(vid), r.pose(f"{vid}@flip"), r.pose(f"{vid}@shift2")
            mirrored = p["keypoints"][:, :, list(FLIP_KEYPOINTS)].copy()
            mirrored[..., 0] = width - mirrored[..., 0]
            np.testing.assert_array_equal(pf["keypoints"], mirrored)
            np.testing.assert_array_equal(ps["keypoints"], p["keypoints"][2:])
            np.testing.assert_array_equal(r.group(f"{vid}@shift2")["frames/index"][()],
                                          src["frames/index"][()][2:])
            assert r.group(f"{vid}@shift2").attrs["n_frames"] == src.attrs["n_frames"] - 2
            kin = {k: r.group(k)["features/kin_pose/joints"][()] for k in (vid, f"{vid}@flip")}
            whole = {k: r.group(k)["features/kin_pose/whole"][()] for k in (vid, f"{vid}@flip")}
            assert not np.allclose(kin[vid], kin[f"{vid}@flip"])
            j, w = _kin_mirror(kin[vid], whole[vid])
            np.testing.assert_allclose(kin[f"{vid}@flip"], j, atol=1e-4)
            np.testing.assert_allclose(whole[f"{vid}@flip"], w, atol=1e-4)
            # flow histograms: an angle t becomes 180 - t, so bin k becomes bin n/2 - k
            hof = {k: (r.group(k)["features/hof_flow/whole"][()],
                       r.group(k)["features/hof_flow/joints"][()]) for k in (vid, f"{vid}@flip")}
            from aqa.extract.weightfree import DEFAULT_N_BINS as n
            perm = [(n // 2 - k) % n for k in range(n)]
            hw, hj = hof[vid][0].copy(), hof[vid][1][:, list(FLIP_KEYPOINTS)].copy()
            hw[:, :n], hj[..., :n] = hw[:, perm], hj[..., perm]
            assert not np.allclose(hof[vid][0], hof[f"{vid}@flip"][0])
            np.testing.assert_allclose(hof[f"{vid}@flip"][0], hw, atol=1e-5)
            # joint patches are whole-pixel crops around x and W - x: nearly the same pixels
            np.testing.assert_allclose(hof[f"{vid}@flip"][1], hj, atol=0.03)
            assert np.abs(hof[f"{vid}@flip"][1] - hj).mean() < 1e-3

    # complete: nothing is decoded again
    from aqa.extract.runner import Extractor

    monkeypatch.setattr(Extractor, "prepare", lambda *a, **k: pytest.fail("decoded again"))
    s = run_extraction([synth_dir], out, ExtractConfig(**FAST), device="cpu", progress=False,
                       views=[View("flip"), "shift:2"])
    assert {r.status for r in s.results} == {"skipped"} and len(s.results) == 6
    assert s.stage_seconds() == {}
    monkeypatch.undo()

    # a new view: only it is written
    res = CliRunner().invoke(extract_cli, [str(synth_dir), "--out", str(out), *_fast_cli_args(),
                                           "--view", "flip,shift:2", "--view", "bright:0.8,mask"])
    assert res.exit_code == 0, res.output
    assert ("0 extracted, 2 already complete, 0 failed; views: 4 written, 4 already complete, "
            "0 failed") in res.output
    assert "views:view" in res.output and "decode" in res.output
    with CacheReader(out) as r:
        assert set(r.views()) == {"bright0.8", "flip", "mask", "shift2"}
        vid = r.video_ids()[0]
        np.testing.assert_array_equal(r.pose(f"{vid}@bright0.8")["keypoints"],
                                      r.pose(vid)["keypoints"])
    assert verify(out).ok


@pytest.mark.slow
def test_drop_view_end_to_end_is_the_same_on_every_run(synth_dir, tmp_path):
    """Each video drops its own frames (the seed is its id's hash), the same ones in a second
    cache; the pose of a kept frame is the source's."""
    from aqa.extract.runner import view_seed

    caches = [tmp_path / "a.h5", tmp_path / "b.h5"]
    for out in caches:
        s = run_extraction([synth_dir], out, ExtractConfig(**FAST), device="cpu", progress=False,
                           views=["drop:0.25"])
        assert not s.failed and s.count("done", views=True) == 2
        assert verify(out).ok
    with CacheReader(caches[0]) as r, CacheReader(caches[1]) as r2:
        ids = r.video_ids()
        assert r.views() == {"drop0.25": ids}
        drops = []
        for vid in ids:
            src, g = r.group(vid), r.group(f"{vid}@drop0.25")
            n = src.attrs["n_frames"]
            assert g.attrs["n_frames"] == n - round(0.25 * n) and g.attrs["view"] == "drop0.25"
            idx, sidx = g["frames/index"][()], src["frames/index"][()]
            kept = np.searchsorted(sidx, idx)
            np.testing.assert_array_equal(sidx[kept], idx)
            assert kept[0] == 0 and kept[-1] == n - 1
            np.testing.assert_array_equal(r.pose(f"{vid}@drop0.25")["keypoints"],
                                          r.pose(vid)["keypoints"][kept])
            for name in ("frames/index", "features/hof_flow/whole", "features/kin_pose/joints"):
                np.testing.assert_array_equal(g[name][()], r2.group(f"{vid}@drop0.25")[name][()])
            drops.append(tuple(np.setdiff1d(np.arange(n), kept)))
        assert drops[0] != drops[1]                             # each video its own frames
    assert view_seed(ids[0]) != view_seed(ids[1]) and view_seed(ids[0]) == view_seed(ids[0])


@pytest.mark.slow
def test_new_views_of_a_complete_video_reuse_its_cached_poses(synth_dir, tmp_path, monkeypatch):
    """Adding a view to a finished cache decodes and computes flow again, but takes the selected
    poses from the cache (stage pose-cached): the view is the one a fresh run writes. A video whose
    file changed since is estimated afresh."""
    from aqa.extract.pose.files import FilePoseBackend

    vids = tmp_path / "v"
    shutil.copytree(synth_dir, vids)
    fresh, out = tmp_path / "fresh.h5", tmp_path / "f.h5"
    assert not run_extraction([vids], fresh, ExtractConfig(**FAST), device="cpu", progress=False,
                              views=["flip"]).failed
    assert not run_extraction([vids], out, ExtractConfig(**FAST), device="cpu",
                              progress=False).failed
    calls = []
    estimate = FilePoseBackend.estimate

    def counted(self, frames, video_path=None, **kw):
        calls.append(video_path.name)
        return estimate(self, frames, video_path=video_path, **kw)

    monkeypatch.setattr(FilePoseBackend, "estimate", counted)
    s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                       views=["flip"])
    assert not s.failed and s.count("done", views=True) == 2 and s.count("skipped") == 2
    assert calls == [] and "pose-cached" in s.stage_seconds() and "pose" not in s.stage_seconds()
    with CacheReader(out) as r, CacheReader(fresh) as f:
        ids = r.video_ids()
        for vid in ids:
            g, h = r.group(f"{vid}@flip"), f.group(f"{vid}@flip")
            for name in ("frames/index", "pose/keypoints", "pose/boxes", "features/kin_pose/joints",
                         "features/hof_flow/whole", "features/hof_flow/joints"):
                np.testing.assert_array_equal(g[name][()], h[name][()], err_msg=name)
    # a cache without the files' stamps (written before them): a file that gets new views is
    # hashed all the same, and one that changed is extracted again with all its views (none made
    # from the old poses); the unchanged one gets its stamp recorded
    import h5py

    from aqa.extract.discover import source_stamp
    from aqa.extract.video import VideoWarning

    a, b = sorted(vids.glob("*.mp4"))
    with h5py.File(out, "a") as f:
        for vid in ids:
            del f[f"videos/{vid}"].attrs["source_size"]
    shutil.copy(b, a)
    with pytest.warns(VideoWarning, match=rf"{a.name}: changed since it was extracted"):
        s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                           views=["flip", "shift:1"])
    assert s.changed == [a.stem] and s.removed == []
    assert [(r.video_id, r.status) for r in s.results] == [
        (a.stem, "done"), (f"{a.stem}@flip", "done"), (f"{a.stem}@shift1", "done"),
        (b.stem, "skipped"), (f"{b.stem}@flip", "skipped"), (f"{b.stem}@shift1", "done")]
    assert calls == [a.name]
    assert verify(out).ok
    with CacheReader(out) as r:
        assert r.video_attrs(a.stem)["source_sha256"] == r.video_attrs(b.stem)["source_sha256"]
        for vid, p in ((a.stem, a), (b.stem, b)):
            attrs = r.video_attrs(vid)
            assert (attrs["source_size"], attrs["source_mtime_ns"]) == source_stamp(p)
    # cached frame indices that are not the decoded ones: the poses are estimated again
    from aqa.data.cache import CacheWriter

    committed = CacheWriter.committed

    def off_by_one(self, video_id):
        attrs, arrays = committed(self, video_id)
        return attrs, {**arrays, "frames/index": arrays["frames/index"] + 1}

    monkeypatch.setattr(CacheWriter, "committed", off_by_one)
    s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                       views=["bright:0.8"])
    assert s.count("done", views=True) == 2 and sorted(calls) == sorted([a.name, a.name, b.name])


@pytest.mark.slow
def test_a_video_whose_file_changed_is_extracted_again(synth_dir, tmp_path, monkeypatch):
    """Same bytes with a new mtime: skipped, the new stamp recorded (not hashed again next run).
    New bytes: extracted again with a warning, its views of this run too, its other views removed
    (made from the old file)."""
    import os

    from aqa.extract import runner
    from aqa.extract.discover import file_sha256
    from aqa.extract.video import VideoWarning

    vids = tmp_path / "v"
    shutil.copytree(synth_dir, vids)
    out = tmp_path / "f.h5"
    assert not run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                              views=["flip", "shift:1"]).failed
    a, b = sorted(vids.glob("*.mp4"))
    os.utime(b, ns=(1, 1))                                     # touched, same bytes
    s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                       views=["flip", "shift:1"])
    assert {r.status for r in s.results} == {"skipped"} and s.changed == []
    with CacheReader(out) as r:
        assert r.video_attrs(b.stem)["source_mtime_ns"] == 1
    hashed = []
    monkeypatch.setattr(runner, "file_sha256", lambda p, *a: hashed.append(p) or file_sha256(p))
    s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                       views=["flip", "shift:1"])
    assert {r.status for r in s.results} == {"skipped"} and hashed == []
    shutil.copy(a, b)                                          # new bytes (a's, same length)
    with pytest.warns(VideoWarning, match=rf"{b.name}: changed since it was extracted \(its "
                                          r"sha256 differs\): extracted again; its views shift1 "
                                          r"were made from the old file and are removed"):
        s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                           views=["flip"])
    assert s.changed == [b.stem] and s.removed == [f"{b.stem}@shift1"]
    assert [(r.video_id, r.status) for r in s.results] == [
        (a.stem, "skipped"), (f"{a.stem}@flip", "skipped"), (b.stem, "done"),
        (f"{b.stem}@flip", "done")]
    rep = verify(out)
    assert rep.ok, rep.problems
    with CacheReader(out) as r:
        assert r.views() == {"flip": [a.stem, b.stem], "shift1": [a.stem]}
        for vid in (b.stem, f"{b.stem}@flip"):
            assert r.video_attrs(vid)["source_sha256"] == file_sha256(b) == file_sha256(a)
        np.testing.assert_array_equal(r.group(b.stem)["features/hof_flow/whole"][()],
                                      r.group(a.stem)["features/hof_flow/whole"][()])
    s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                       views=["flip"])
    assert {r.status for r in s.results} == {"skipped"} and s.changed == []


@pytest.mark.slow
def test_a_changed_video_keeps_no_view_of_its_old_file(synth_dir, tmp_path, monkeypatch):
    """A changed video whose extraction fails again is gone, its view too, not left complete from
    the old file for later runs to skip; a change its stamp missed (same size and mtime) is caught
    when views are added, and the video is redone with all its views."""
    import os

    from aqa.extract.discover import file_sha256
    from aqa.extract.runner import Extractor
    from aqa.extract.video import VideoWarning

    vids = tmp_path / "v"
    shutil.copytree(synth_dir, vids)
    out = tmp_path / "f.h5"
    assert not run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                              views=["flip"]).failed
    a, b = sorted(vids.glob("*.mp4"))
    process_view, features = Extractor.process_view, Extractor.features

    def no_flip_of_b(self, view, path, *args, **kw):
        if view.name == "flip" and path == b:
            raise RuntimeError("no flip today")
        return process_view(self, view, path, *args, **kw)

    def no_features_of_b(self, path, *args, **kw):
        if path == b and kw.get("warn"):                        # the source's, not a view's
            raise RuntimeError("no features today")
        return features(self, path, *args, **kw)

    monkeypatch.setattr(Extractor, "process_view", no_flip_of_b)
    monkeypatch.setattr(Extractor, "features", no_features_of_b)
    shutil.copy(a, b)                                          # new bytes, new mtime
    with pytest.warns(VideoWarning, match=rf"{b.name}: changed since it was extracted"):
        s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                           views=["flip"])
    assert s.changed == [b.stem] and s.removed == []
    assert [(r.video_id, r.status) for r in s.results] == [
        (a.stem, "skipped"), (f"{a.stem}@flip", "skipped"), (b.stem, "failed"),
        (f"{b.stem}@flip", "failed")]
    with CacheReader(out) as r:
        assert r.video_ids() == [a.stem] and r.views() == {"flip": [a.stem]}
    assert verify(out).ok
    failures = json.loads(Path(f"{out}.failures.json").read_text())
    assert "no features today" in json.dumps(failures) and "no flip today" in json.dumps(failures)
    monkeypatch.setattr(Extractor, "process_view", process_view)
    monkeypatch.setattr(Extractor, "features", features)
    s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                       views=["flip"])
    assert s.changed == [] and [(r.video_id, r.status) for r in s.results][2:] == [
        (b.stem, "done"), (f"{b.stem}@flip", "done")]
    # new bytes behind an unchanged stamp (same size, mtime set back): adding a view hashes the
    # file, so the old poses do not meet the new frames; the video is redone, its flip too
    a_bytes, st = a.read_bytes(), b.stat()
    b.write_bytes(a_bytes[:-64] + bytes(64))
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert b.stat().st_size == st.st_size
    with pytest.warns(VideoWarning, match=rf"{b.name}: changed since it was extracted"):
        s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                           views=["flip", "shift:1"])
    assert s.changed == [b.stem]
    assert [(r.video_id, r.status) for r in s.results][3:] == [
        (b.stem, "done"), (f"{b.stem}@flip", "done"), (f"{b.stem}@shift1", "done")]
    with CacheReader(out) as r:
        for vid in (b.stem, f"{b.stem}@flip", f"{b.stem}@shift1"):
            assert r.video_attrs(vid)["source_sha256"] == file_sha256(b)
    # a view whose source failed is left alone; when the file then changes, the view is
    # recognised as made from the old file and redone with the source
    monkeypatch.setattr(Extractor, "features", no_features_of_b)
    b.write_bytes(a_bytes)
    with pytest.warns(VideoWarning, match=rf"{b.name}: changed since it was extracted"):
        s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                           views=["flip"])
    assert [(r.video_id, r.status) for r in s.results][2:] == [
        (b.stem, "failed"), (f"{b.stem}@flip", "done")]
    monkeypatch.setattr(Extractor, "features", features)
    b.write_bytes(a_bytes[:-64] + bytes(64))
    with pytest.warns(VideoWarning, match=rf"{b.name}: changed since it was extracted"):
        s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                           views=["flip"])
    assert s.changed == [b.stem] and [(r.video_id, r.status) for r in s.results][2:] == [
        (b.stem, "done"), (f"{b.stem}@flip", "done")]
    rep = verify(out)
    assert rep.ok and not rep.warnings, (rep.problems, rep.warnings)
    with CacheReader(out) as r:
        assert r.video_attrs(f"{b.stem}@flip")["source_sha256"] == file_sha256(b)


@pytest.mark.slow
def test_a_video_id_with_an_at_sign_is_not_taken_for_a_view(synth_dir, tmp_path):
    """``clip@hq`` is a video of its own: when ``clip`` changes, it and its views stay. A video
    whose id is another's view id is refused before any work (the two would overwrite)."""
    from aqa.extract.video import VideoWarning

    a, b = sorted(synth_dir.glob("*.mp4"))
    vids = tmp_path / "v"
    vids.mkdir()
    for src, name in ((a, "clip"), (b, "clip@hq")):
        shutil.copy(src, vids / f"{name}.mp4")
        shutil.copy(src.with_suffix(".pose.json"), vids / f"{name}.pose.json")
    out = tmp_path / "f.h5"
    assert not run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                              views=["flip"]).failed
    shutil.copy(b, vids / "clip.mp4")
    with pytest.warns(VideoWarning, match=r"clip\.mp4: changed since it was extracted"):
        s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                           views=["flip"])
    assert s.changed == ["clip"] and s.removed == []
    assert [(r.video_id, r.status) for r in s.results] == [
        ("clip", "done"), ("clip@flip", "done"), ("clip@hq", "skipped"),
        ("clip@hq@flip", "skipped")]
    with CacheReader(out) as r:
        assert r.video_ids() == ["clip", "clip@hq"]
        assert r.views() == {"flip": ["clip", "clip@hq"]}
    shutil.copy(a, vids / "clip@flip.mp4")
    shutil.copy(a.with_suffix(".pose.json"), vids / "clip@flip.pose.json")
    with pytest.raises(ValueError, match=r"1 view id\(s\) are also the ids of input videos: "
                                         r"clip@flip; rename those videos"):
        run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                       views=["flip"])
    assert not run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=False,
                              views=["flip"], views_for=["clip@hq"]).failed


@pytest.mark.slow
def test_an_impossible_view_fails_alone(synth_dir, tmp_path, monkeypatch):
    """32 frames: shift31 leaves 1 frame, no view; shift26 leaves 6, one padded 8-frame clip.
    The progress bar shows the entry and its stage."""
    from aqa.data import logs

    postfixes = []

    class Bar(logs.LineProgress):  # the bar without a terminal
        def set_postfix_str(self, s="", refresh=True):
            postfixes.append(s)
            return super().set_postfix_str(s, refresh)

    monkeypatch.setattr(logs, "LineProgress", Bar)
    vids = tmp_path / "v"
    vids.mkdir()
    src = sorted(synth_dir.glob("*.mp4"))[0]
    for f in (src, src.with_suffix(".pose.json")):
        shutil.copy(f, vids / f.name.replace(src.stem, "short"))
    out = tmp_path / "f.h5"
    s = run_extraction([vids], out, ExtractConfig(**FAST), device="cpu", progress=True,
                       views="flip,shift:26,shift:31")
    assert s.count("done") == 1 and s.count("done", views=True) == 2
    assert {"short: decode", "short: flow", "short: weightfree", "short@flip: view",
            "short@flip: weightfree", "short@shift31: view"} <= set(postfixes)
    (failed,) = s.failed
    assert (failed.video_id, failed.view, failed.stage) == ("short@shift31", "shift31", "view")
    manifest = json.loads((tmp_path / "f.h5.failures.json").read_text())
    (entry,) = manifest["failed"]
    assert entry["video_id"] == "short@shift31" and entry["view"] == "shift31"
    assert entry["error"] == ("ValueError: shift31: the video has 32 frames; starting 31 frames "
                              "later leaves 1, fewer than 2")
    with CacheReader(out) as r:
        assert r.video_ids() == ["short"] and r.views() == {"flip": ["short"], "shift26": ["short"]}
        assert r.group("short@shift26").attrs["n_padded"] == 2
    assert verify(out).ok
    res = CliRunner().invoke(extract_cli, [str(vids), "--out", str(out), *_fast_cli_args(),
                                           "--view", "flip,shift:26,shift:31"])
    assert res.exit_code == 1, res.output
    assert ("0 extracted, 1 already complete, 0 failed; views: 0 written, 2 already complete, "
            "1 failed") in res.output
    assert (f"  FAILED {vids / 'short.mp4'} (view shift31) [view] ValueError: shift31: the video "
            "has 32 frames") in res.output
    assert "error: 0 video(s) and 1 view(s) failed; see the manifest" in res.output

    # a span the sampling must cover (stop=32, an annotated segment) that a shift cuts short
    cfg = ExtractConfig(**{**FAST, "sampling_options": {"length": 8, "stride": 8, "stop": 32}})
    s = run_extraction([vids], tmp_path / "g.h5", cfg, device="cpu", progress=False,
                       views=["shift:1"])
    assert s.count("done") == 1
    (failed,) = s.failed
    assert failed.video_id == "short@shift1" and failed.stage == "sampling"
    assert failed.error == "SamplingError: stop=32 is past the end of the video (31 frames)"


def test_cli_bad_view_is_a_usage_error_before_any_video(synth_dir, tmp_path):
    out = tmp_path / "f.h5"
    for spec, msg in (("flop", "view 'flop': expected flip, histeq, mask, shift:K"),
                      ("zoom:9", "view zoom: 9.0 is not a factor in (1, 4]"),
                      ("flip,bright:1", "view bright: 1.0 is not a gain in (0, 4], not 1")):
        res = CliRunner().invoke(extract_cli, [str(synth_dir), "--out", str(out), "--quiet",
                                               "--view", spec])
        assert res.exit_code == 2, res.output
        last = res.output.strip().splitlines()[-1]
        assert last.startswith("Error: Invalid value for --view: ") and msg in last, res.output
        assert not out.exists()
    res = CliRunner().invoke(extract_cli, ["run", "--help"])
    text = " ".join(res.output.split())
    assert "--view SPEC" in text and "aqa-heads train --views" in text and "flip" in text


@pytest.mark.slow
def test_view_split_extracts_views_of_training_videos_only(synth_dir, tmp_path):
    from aqa.data.labels import LabelRow, write_labels_csv

    ids = sorted(p.stem for p in synth_dir.glob("*.mp4"))
    labels = tmp_path / "labels.csv"
    write_labels_csv([LabelRow(ids[0], 50.0, "diving", float("nan"), "train"),
                      LabelRow(ids[1], 60.0, "diving", float("nan"), "test")], labels)
    out = tmp_path / "f.h5"
    base = [str(synth_dir), "--out", str(out), *_fast_cli_args(), "--labels", str(labels),
            "--view", "flip"]
    res = CliRunner().invoke(extract_cli, [*base, "--view-split", "train"])
    assert res.exit_code == 0, res.output
    assert "2 extracted, 0 already complete, 0 failed; views: 1 written" in res.output
    with CacheReader(out) as r:
        assert r.views() == {"flip": [ids[0]]}
    res = CliRunner().invoke(extract_cli, [*base, "--view-split", "val"])
    assert res.exit_code == 2 and "no row of" in res.output and "['test', 'train']" in res.output
    res = CliRunner().invoke(extract_cli, [str(synth_dir), "--out", str(out), "--view-split", "train"])
    assert res.exit_code == 2 and "--view-split needs --view and --labels" in res.output
