"""Flow only for the pairs the features read: a sparse sampling of a long video costs the pairs it
samples, and its features (and every view's) are those of the flow on all pairs."""
import h5py
import numpy as np
import pytest
import torch

from aqa.data.views import parse_view
from aqa.extract.flow import get_flow_backend
from aqa.extract.patches import pairs_read
from aqa.extract.pose.selection import PoseTrack
from aqa.extract.config import ExtractConfig
from aqa.extract.runner import Extractor, run_extraction
from aqa.extract.views import VideoData, apply_view, flow_pairs_needed, view_frames

FAST_FLOW = {"nscales": 2, "warps": 2, "outer_iterations": 2, "inner_iterations": 5}
VIEWS = ["flip", "shift:3", "zoom:1.25", "bright:1.5", "histeq", "mask", "drop:0.2"]


def test_pairs_read_are_the_clip_positions_less_padding():
    clips = np.array([[0, 1, 2], [5, 6, 9]])
    np.testing.assert_array_equal(pairs_read(clips, 10), [0, 1, 2, 5, 6, 8])  # the last frame: F-2
    padded = np.array([[False, False, False], [False, True, True]])
    np.testing.assert_array_equal(pairs_read(clips, 10, padded), [0, 1, 2, 5])
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        pairs_read(np.array([[3, 10]]), 10)


def test_compute_video_on_some_pairs_equals_all_pairs_there_and_zero_elsewhere():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (40, 52), dtype=np.uint8)
    frames = np.stack([np.roll(base, (i % 3, i), (0, 1)) for i in range(9)])
    be = get_flow_backend("tvl1-cpu", **FAST_FLOW)
    full = be.compute_video(frames, batch_size=3, progress=False)
    some = [6, 1, 2, 3, 6]                                   # unsorted, repeated, one run of three
    part = be.compute_video(frames, batch_size=2, progress=False, pairs=some)
    assert part.shape == full.shape
    np.testing.assert_array_equal(part[[1, 2, 3, 6]], full[[1, 2, 3, 6]])
    assert not part[[0, 4, 5, 7]].any()
    assert np.abs(full[[1, 2, 3, 6]]).mean() > 0.2           # it did move
    assert not be.compute_video(frames, progress=False, pairs=[]).any()
    with pytest.raises(ValueError, match=r"pairs must lie in \[0, 8\)"):
        be.compute_video(frames, progress=False, pairs=[8])


def _data(n, pairs=None, seed=0):
    rng = np.random.default_rng(seed)
    h, w = 24, 32
    kp = np.concatenate([rng.uniform(0, [w, h], (n, 1, 17, 2)), np.ones((n, 1, 17, 1))], -1)
    x0, y0 = rng.uniform(0, 10, (2, n, 1))
    boxes = np.stack([x0, y0, x0 + 12, y0 + 10], -1)
    track = PoseTrack(kp.astype(np.float32), boxes.astype(np.float32),
                      np.ones((n, 1), np.float32), np.zeros(1, np.int8))
    flow = rng.normal(0, 2, (n - 1, h, w, 2)).astype(np.float32)
    have = None
    if pairs is not None:
        have = np.isin(np.arange(n - 1), pairs)
        flow = flow * have[:, None, None, None]
    frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    return VideoData(frames, np.arange(n), track, flow, have)


@pytest.mark.parametrize("spec", VIEWS)
def test_a_view_of_some_pairs_is_the_view_of_all_pairs_on_the_pairs_it_has(spec):
    """Each view of a video whose flow was computed on some pairs has, on every pair those give
    it, the flow the view of the whole flow has; its other pairs are zero and marked missing;
    and the pairs flow_pairs_needed asks for are exactly what the view's wanted pairs need."""
    n, view = 20, parse_view(spec)
    keep = view_frames(view, n, seed=5)
    wanted = np.array([0, 1, len(keep) - 2])                 # pairs of the view a sampling reads
    need = flow_pairs_needed(keep, wanted)
    full = apply_view(view, _data(n), seed=5)
    part = apply_view(view, _data(n, pairs=need), seed=5)
    assert full.flow_pairs is None and part.flow_pairs.shape == (len(keep) - 1,)
    assert part.flow_pairs[wanted].all()
    np.testing.assert_array_equal(part.flow[wanted], full.flow[wanted])
    assert not part.flow[~part.flow_pairs].any()
    np.testing.assert_array_equal(part.frames, full.frames)
    fewer = apply_view(view, _data(n, pairs=need[1:]), seed=5)  # one source pair short
    assert not fewer.flow_pairs[wanted].all()


def test_view_frames_are_the_frames_the_views_keep():
    np.testing.assert_array_equal(view_frames(parse_view("shift:3"), 10), np.arange(3, 10))
    np.testing.assert_array_equal(view_frames(parse_view("flip"), 4), np.arange(4))
    keep = view_frames(parse_view("drop:0.2"), 20, seed=5)
    d = apply_view("drop:0.2", _data(20), seed=5)
    np.testing.assert_array_equal(d.index, keep)
    assert len(keep) == 16 and keep[0] == 0 and keep[-1] == 19
    np.testing.assert_array_equal(flow_pairs_needed(np.array([0, 1, 4, 5]), [1, 2]), [1, 2, 3, 4])
    with pytest.raises(ValueError, match="shift9: the video has 10 frames"):
        view_frames(parse_view("shift:9"), 10)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    from aqa.data.synthetic import render_dataset

    d = tmp_path_factory.mktemp("long")
    render_dataset(d, n=1, kind="single", seed=4, n_frames=48, size=(64, 48), progress=False)
    return d


@pytest.mark.slow
def test_sparse_sampling_computes_only_its_pairs_and_gives_the_same_cache(long_video, tmp_path,
                                                                          monkeypatch):
    """Two 8-frame clips of a 48-frame video, with every view kind and an untrained I3D flow
    stream (whole frames and joint patches): the flow runs on the pairs the source and its views
    read (the source's 16, plus those a 3-frame shift and the gaps of a drop add: 27 of the 47),
    and every cached array of every entry equals the one from flow on all pairs."""
    cfg = ExtractConfig(sampling="c3d", sampling_options={"length": 8, "stride": 24},
                        flow="tvl1-cpu", flow_options=FAST_FLOW, backbones=("i3d",),
                        streams=("flow",),
                        # 16x16 inputs: I3D pools globally, so its feature reads every flow value
                        backbone_options={"crop_size": 16, "resize": 16, "clip_len": 8})
    asked = []
    compute_video = type(get_flow_backend("tvl1-cpu")).compute_video

    def counted(self, frames, *a, pairs=None, **kw):
        asked.append(len(frames) - 1 if pairs is None else len(pairs))
        return compute_video(self, frames, *a, pairs=pairs, **kw)

    monkeypatch.setattr(type(get_flow_backend("tvl1-cpu")), "compute_video", counted)
    caches = {}
    for every in (True, False):
        monkeypatch.setattr(Extractor, "all_flow_pairs", every)
        torch.manual_seed(0)                                   # the same untrained I3D
        caches[every] = tmp_path / f"{every}.h5"
        s = run_extraction([long_video], caches[every], cfg, device="cpu", untrained=True,
                           progress=False, views=VIEWS)
        assert not s.failed and s.count("done", views=True) == len(VIEWS), s.failed
    assert asked[0] == 47 and 16 < asked[1] < 47, asked
    arrays = _throughput_benchmark().cache_arrays
    every, some = arrays(caches[True]), arrays(caches[False])
    assert sorted(every) == sorted(some)
    assert sum(k.endswith("i3d_flow/joints") for k in some) == 1 + len(VIEWS)
    for name in every:
        np.testing.assert_array_equal(some[name], every[name], err_msg=name)


def test_features_refuse_flow_their_sampling_reads_but_was_not_computed(long_video):
    """A guard against a missed pair: the features stop with an error rather than read zeros."""
    ex = Extractor(ExtractConfig(sampling="c3d", sampling_options={"length": 8, "stride": 24},
                                 flow="tvl1-cpu", flow_options=FAST_FLOW), progress=False)
    path = sorted(long_video.glob("*.mp4"))[0]
    info, data = ex.prepare(path, {})
    assert data.flow_pairs.sum() == 16
    from dataclasses import replace

    holes = data.flow_pairs.copy()
    holes[np.flatnonzero(holes)[3]] = False
    with pytest.raises(RuntimeError, match="were not computed but the sampling reads them"):
        ex.features(path, info, replace(data, flow_pairs=holes), {})


@pytest.mark.slow
def test_throughput_benchmark_compares_read_and_all_pairs(long_video, capsys):
    """benchmarks/extract_throughput.py --all-flow-pairs runs both ways on the same videos and
    finds their caches the same."""
    import json

    bench = _throughput_benchmark()
    opts = [f"--flow-opt={k}={v}" for k, v in FAST_FLOW.items()]
    bench.main([str(long_video), "--device", "cpu", "--flow", "tvl1-cpu", "--sampling", "c3d",
                "--sampling-opt", "length=8", "--sampling-opt", "stride=24", "--views", "flip",
                "--all-flow-pairs", "--json", *opts])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["same_arrays"] is True and out["videos"] == 1
    assert set(out["runs"]) == {"read pairs", "all pairs"}
    assert all(run["flow"] > 0 for run in out["runs"].values())
    assert Extractor.all_flow_pairs is False                   # left as it was


def _throughput_benchmark():
    from scriptkit import load_benchmark
    return load_benchmark("extract_throughput")


def test_the_benchmarks_cache_comparison_takes_nan_for_nan_and_sees_a_difference(tmp_path):
    """A missing keypoint is NaN in both caches (the real-footage run found them 'different'
    before NaN counted as equal to NaN); one changed value, or one array more, is a difference."""
    same = _throughput_benchmark()._same_arrays

    def cache(name, value=1.5, extra=False):
        with h5py.File(tmp_path / name, "w") as f:
            g = f.create_group("videos/v")
            g["pose/keypoints"] = np.array([[np.nan, value], [2.0, np.nan]], np.float32)
            g["frames/index"] = np.arange(3, dtype=np.int32)
            g["label"] = np.array([b"dive"])
            if extra:
                g["features/x/whole"] = np.zeros((1, 2))
        return tmp_path / name

    a = cache("a.h5")
    assert same(a, cache("b.h5"))
    assert not same(a, cache("c.h5", value=1.25))
    assert not same(a, cache("d.h5", extra=True))


def test_flow_pairs_skip_what_is_too_short_and_leave_the_error_to_its_stage():
    """A one-frame video needs no pair (compute_video then says it needs 2 frames, as before),
    and a view the video is too short for adds none (it fails on its own later)."""
    ex = Extractor(ExtractConfig(sampling="c3d", sampling_options={"length": 8, "stride": 24},
                                 flow="tvl1-cpu"), progress=False)
    assert ex.flow_pairs(1).size == 0
    alone = ex.flow_pairs(48)
    np.testing.assert_array_equal(alone, np.r_[0:8, 24:32])
    np.testing.assert_array_equal(ex.flow_pairs(48, [None, parse_view("shift:47")]), alone)
    np.testing.assert_array_equal(ex.flow_pairs(48, [parse_view("shift:2")]), np.r_[2:10, 26:34])
