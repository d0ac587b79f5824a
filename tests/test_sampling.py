"""aqa.extract.sampling: exact indices of the named protocols, coverage, monotonicity, short videos."""
from __future__ import annotations

import numpy as np
import pytest

from aqa.extract.sampling import DEFAULTS, PROTOCOLS, Sampling, SamplingError, sample


def test_core_on_103_frames_matches_the_paper():
    s = sample("core", 103)
    assert s.name == "core" and s.clips.shape == (10, 16)
    assert s.clip_start.tolist() == [0, 10, 20, 30, 40, 50, 60, 70, 80, 87]
    assert np.array_equal(s.clip_end, s.clip_start + 15)
    for row, st in zip(s.clips, s.clip_start):  # 16 continuous frames
        assert np.array_equal(row, np.arange(st, st + 16))
    assert s.options["n_padded"] == 0 and not s.padded.any()
    assert np.array_equal(s.frames, np.arange(103))  # the 10 windows cover all 103 frames


def test_core_longer_video_anchor_end_and_start_and_span():
    end = sample("core", 200)  # the 103 frames ending at the last frame (MTL-AQA loader)
    assert end.clip_start.tolist() == [97 + o for o in (0, 10, 20, 30, 40, 50, 60, 70, 80, 87)]
    assert end.clip_end[-1] == 199
    first = sample("core", 200, anchor="start")
    assert first.clip_start[0] == 0 and first.clip_end[-1] == 102
    # MTL-AQA: list positions end_frame-103 .. end_frame-1  <=>  stop=end_frame
    mtl = sample("core", 500, stop=321)
    assert mtl.frames.tolist() == list(range(321 - 103, 321))
    uni = sample("core", 1030, resample="uniform")
    assert np.array_equal(uni.frames, np.floor(np.linspace(0, 1029, 103)).astype(int))


def test_core_jigsaws_preset_ten_non_overlapping_snippets_of_160_even_frames():
    s = sample("core-jigsaws", 1600)
    assert s.clips.shape == (10, 16)
    flat = s.clips.reshape(-1)
    assert np.array_equal(flat, np.floor(np.linspace(0, 1599, 160)).astype(int))
    assert np.all(np.diff(flat) > 0)  # non-overlapping, increasing


def test_jrg_segments_and_uniform_frames():
    s = sample("jrg", 160)
    assert s.clips.shape == (10, 16)
    assert np.array_equal(s.clips.reshape(-1), np.arange(160))  # 16-frame segments: every frame once
    s = sample("jrg", 1000)
    for k, row in enumerate(s.clips):  # each row spans its segment [100k, 100k+99], evenly spaced
        assert row[0] == 100 * k and row[-1] == 100 * k + 99
        steps = np.diff(row)
        assert steps.min() >= 6 and steps.max() <= 7
    s = sample("jrg", 95, T=5, length=4)
    assert s.clips.shape == (5, 4)
    assert s.clips.tolist() == [[0, 6, 12, 18], [19, 25, 31, 37], [38, 44, 50, 56], [57, 63, 69, 75],
                                [76, 82, 88, 94]]


def test_c3d_clips_and_tail():
    s = sample("c3d", 50)
    assert s.clip_start.tolist() == [0, 16, 32] and s.clip_end.tolist() == [15, 31, 47]
    s = sample("c3d", 50, tail="pad")
    assert s.clip_start.tolist() == [0, 16, 32, 48]
    assert s.clips[-1].tolist() == [48, 49] + [49] * 14
    assert s.padded[-1].sum() == 14 and s.options["n_padded"] == 14
    s = sample("c3d", 64, stride=8)
    assert s.clip_start.tolist() == list(range(0, 49, 8))


def test_fragments_li_et_al_diving_and_vault():
    dive = sample("fragments", 151)  # 9 x 16 consecutive, 7 spare frames
    assert dive.clip_start.tolist() == list(range(0, 144, 16))
    assert np.array_equal(dive.clips.reshape(-1), np.arange(144))
    shifted = sample("fragments", 151, offset=7)
    assert shifted.clip_start[0] == 7 and shifted.clip_end[-1] == 150 and shifted.options["n_padded"] == 0
    vault = sample("fragments", 100, n_fragments=6)
    assert vault.clip_end[-1] == 95
    short = sample("fragments", 120)  # Li pad with zero frames to 151; we repeat the last and mark it
    assert short.options["n_padded"] == 144 - 120
    assert np.all(short.clips.reshape(-1)[120:] == 119) and short.padded.reshape(-1)[120:].all()
    even = sample("fragments", 1000, placement="even", n_fragments=5)
    assert even.clip_start.tolist() == [0, 246, 492, 738, 984] and even.clip_end[-1] == 999
    skate = sample("fragments", 5000, n_fragments=9, length=100, step=5)
    assert np.all(np.diff(skate.clips, axis=1) == 5) and skate.clip_end[-1] == 8 * 500 + 99 * 5


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("n", [1, 7, 16, 103, 151, 1000])
def test_invariants_for_every_protocol(protocol, n):
    s = sample(protocol, n)
    assert isinstance(s, Sampling) and s.name == protocol
    assert s.clips.ndim == 2 and s.clips.dtype.kind == "i"
    assert s.clips.min() >= 0 and s.clips.max() <= n - 1
    assert np.all(np.diff(s.clips, axis=1) >= 0)  # monotone inside a clip
    assert np.all(np.diff(s.clip_start) >= 0)  # clips in temporal order
    assert np.array_equal(s.clip_start, s.clips[:, 0]) and np.array_equal(s.clip_end, s.clips[:, -1])
    assert s.padded.shape == s.clips.shape and s.options["n_padded"] == int(s.padded.sum())
    assert np.all(s.clips[s.padded] == n - 1)  # padding repeats the last frame
    assert np.array_equal(s.frames[s.positions], s.clips)  # decode once, then index
    for k, v in DEFAULTS[protocol].items():
        assert s.options[k] == v


def test_span_restriction_keeps_absolute_indices():
    s = sample("jrg", 500, start=100, stop=260)
    assert s.clip_start[0] == 100 and s.clip_end[-1] == 259
    assert np.array_equal(s.clips.reshape(-1), np.arange(100, 260))


def test_errors():
    with pytest.raises(SamplingError, match="unknown sampling protocol 'tsn'.*jrg"):
        sample("tsn", 100)
    with pytest.raises(SamplingError, match="holds no frames"):
        sample("jrg", 0)
    with pytest.raises(SamplingError, match="holds no frames"):
        sample("c3d", 100, start=50, stop=50)
    with pytest.raises(SamplingError, match="past the end"):
        sample("c3d", 100, stop=101)
    with pytest.raises(SamplingError, match="'T' must be an integer"):
        sample("jrg", 100, T=0)
    with pytest.raises(SamplingError, match="bad options"):
        sample("c3d", 100, clip_len=8)
    with pytest.raises(SamplingError, match="window starts"):
        sample("core", 103, starts=[0, 90])
    with pytest.raises(SamplingError, match="anchor"):
        sample("core", 103, anchor="middle")
    with pytest.raises(ValueError):  # SamplingError is a ValueError
        sample("fragments", 100, placement="even", offset=3)
