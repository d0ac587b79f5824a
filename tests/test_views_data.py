"""Augmented views in the data layer: the spec grammar and how the cache lists, finds and verifies them."""
import re

import h5py
import pytest
from click.testing import CliRunner

from aqa.data.cache import CacheError, CacheReader
from aqa.data.integrity import verify
from aqa.data.cli import main as data_main
from aqa.data.views import View, parse_view, parse_views, view_id

from cachekit import learnable_cache


def test_spec_grammar_names_and_ranges():
    views = parse_views(["flip, shift:1-3", "zoom:1.20", "bright0.8", "shift2", "flip", "histeq",
                         "mask", "drop:0.10", "drop0.25"])
    assert [v.name for v in views] == ["flip", "shift1", "shift2", "shift3", "zoom1.2", "bright0.8",
                                       "histeq", "mask", "drop0.1", "drop0.25"]
    assert parse_view("shift:4") == View("shift", 4.0) == parse_view("shift4")
    assert parse_view("zoom:2").name == "zoom2"
    assert view_id("dive_007", parse_view("zoom:1.5")) == "dive_007@zoom1.5"
    assert parse_views("") == [] and parse_views([]) == []
    # a canonical name parses back to the same view (the cache stores names, the CLI takes specs)
    for v in views:
        assert parse_view(v.name) == v
    # ... however small or finely given the amount: no exponent, no rounding to 6 digits
    fine = [View("bright", 1e-5), View("drop", 0.1234567), View("drop", 0.1234568),
            View("zoom", 1.0000001)]
    assert [v.name for v in fine] == ["bright0.00001", "drop0.1234567", "drop0.1234568",
                                      "zoom1.0000001"]
    assert [parse_view(v.name) for v in fine] == fine


@pytest.mark.parametrize("spec, msg", [
    ("mirror", "expected flip, histeq, mask, shift:K"),
    ("flip:2", "expected flip, histeq, mask, shift:K"),
    ("histeq:2", "expected flip, histeq, mask, shift:K"),
    ("shift:0", "whole number of frames >= 1"),
    ("shift:1.5", "whole number of frames >= 1"),
    ("shift:4-2", "empty range"),
    ("zoom:1", "a factor in (1, 4]"),
    ("zoom:9", "a factor in (1, 4]"),
    ("bright:1", "not 1"),
    ("zoom:1-3", "only for shift"),
    ("drop:0", "a fraction in (0, 1)"),
    ("drop:1", "a fraction in (0, 1)"),
    ("drop", "expected flip, histeq, mask, shift:K"),
    ("drop:0.1-3", "only for shift"),
    ("drop:.", "view 'drop:.': could not convert"),
    ("zoom:1.2.3", "view 'zoom:1.2.3': could not convert"),
])
def test_bad_specs_say_what_is_expected(spec, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        parse_views(spec)


def test_parse_view_wants_exactly_one():
    with pytest.raises(ValueError, match="stands for 3 views"):
        parse_view("shift:1-3")


def test_reader_lists_sources_and_finds_views(tmp_path):
    path = learnable_cache(tmp_path / "c.h5", n=6, views=("flip", "shift2"))
    with CacheReader(path) as r:
        assert r.video_ids() == [f"v{i:02d}" for i in range(6)]
        assert len(r.video_ids(views=True)) == 18
        assert r.views() == {"flip": r.video_ids(), "shift2": r.video_ids()}
        assert r.view_ids(["v03", "v01"], "flip") == ["v03@flip", "v01@flip"]
        # the labels describe the sources; no view is a labelled video of its own
        assert {x.video_id for x in r.labels()} == set(r.video_ids())
    with h5py.File(path, "a") as f:
        del f["videos/v01@flip"]
    with CacheReader(path) as r:
        assert r.views()["flip"] == ["v00", "v02", "v03", "v04", "v05"]
        with pytest.raises(CacheError, match=r"1 of 2 videos have no 'flip' view \(e.g. v01\).*--view flip"):
            r.view_ids(["v00", "v01"], "flip")
        with pytest.raises(CacheError, match="no 'zoom1.2' view"):
            r.view_ids(["v00"], "zoom1.2")


def test_verify_counts_views_and_checks_their_ids(tmp_path):
    path = learnable_cache(tmp_path / "c.h5", n=4, views=("flip",))
    rep = verify(path)
    assert rep.ok, rep.problems
    assert (rep.n_videos, rep.n_views) == (4, 4)
    assert rep.as_dict()["n_views"] == 4
    assert not any("no label" in w for w in rep.warnings)       # views need no label rows
    out = CliRunner().invoke(data_main, ["verify", str(path)])
    assert out.exit_code == 0 and "videos=4 views=4 " in out.output

    with h5py.File(path, "a") as f:
        f["videos/v00@flip"].attrs["view"] = "mirror"            # not a view
        f["videos/v01@flip"].attrs["view"] = "shift2"            # stored under another view's id
        f["videos/v02@flip"].attrs["view_of"] = "v99"            # another video's id
        del f["videos/v03"]                                       # a view without its source
    rep = verify(path)
    assert not rep.ok
    assert any("videos/v00@flip: view attribute 'mirror' is not a view" in p for p in rep.problems)
    assert any("must be stored as 'v01@shift2'" in p for p in rep.problems)
    assert any("must be stored as 'v99@flip'" in p for p in rep.problems)
    assert any("videos/v03@flip: its source video 'v03' is not in the cache" in w
               for w in rep.warnings)
    with CacheReader(path) as r:                                  # nor a training row of it
        assert "v03" not in r.views().get("flip", [])


def test_verify_refuses_a_view_unlike_its_source(tmp_path):
    """A view made from another version of the file or with another config than its source, or
    named otherwise than canonically (readers look it up by that name), is a problem."""
    path = learnable_cache(tmp_path / "c.h5", n=3, views=("flip", "shift2"))
    with h5py.File(path, "a") as f:
        f["videos/v00@flip"].attrs["source_sha256"] = "9" * 64
        f["videos/v01@flip"].attrs["config_sha256"] = "1" * 64
        f["videos/v02@shift2"].attrs["view"] = "shift:2"
    rep = verify(path)
    assert not rep.ok
    assert any("videos/v00@flip: made from another version of the file than its source 'v00': "
               "re-run the extraction with --view flip" in p for p in rep.problems), rep.problems
    assert any("videos/v01@flip: extracted with another config than its source 'v01'" in p
               for p in rep.problems), rep.problems
    assert any("videos/v02@shift2: view attribute 'shift:2' is not the canonical name 'shift2'"
               in p for p in rep.problems), rep.problems
    assert not any("v02@flip" in p or "v00@shift2" in p for p in rep.problems)


def _part(path, entries):
    """A small cache of (id, source sha256, view name or None) entries, one config."""
    from aqa.data.cache import CacheWriter

    from cachekit import VIDEO_ATTRS, video_arrays

    with CacheWriter(path, config={"sampling": "c3d"}) as w:
        for i, (vid, sha, view) in enumerate(entries):
            extra = {"view_of": vid.split("@")[0], "view": view} if view else {}
            w.write_video(vid, {**VIDEO_ATTRS, "source_sha256": sha, **extra}, video_arrays(i))
    return path


def test_merge_drops_a_view_of_another_file_version_than_its_source(tmp_path):
    """One shard holds a view made from the old file (its source failed there), another the
    source re-extracted from the changed file: the merge keeps the source, drops the view with a
    warning and says so; a plain video and a view under one id are different videos."""
    from aqa.data.integrity import merge

    old, new = "a" * 64, "b" * 64
    p1 = _part(tmp_path / "p1.h5", [("v@flip", old, "flip"), ("w", old, None),
                                    ("w@flip", old, "flip")])
    p2 = _part(tmp_path / "p2.h5", [("v", new, None)])
    with pytest.warns(UserWarning, match=r"merge: dropped the view 'v@flip', made from another "
                                         r"version of the file than its source 'v'"):
        s = merge([p1, p2], tmp_path / "m.h5", progress=False)
    assert (s["videos"], s["stale_views_dropped"]) == (3, 1)
    rep = verify(tmp_path / "m.h5")
    assert rep.ok and not rep.warnings, (rep.problems, rep.warnings)
    with CacheReader(tmp_path / "m.h5") as r:
        assert r.video_ids(views=True) == ["v", "w", "w@flip"] and r.views() == {"flip": ["w"]}
    with pytest.warns(UserWarning, match="dropped the view 'v@flip'"):
        res = CliRunner().invoke(data_main, ["merge", str(p1), str(p2), "--out",
                                             str(tmp_path / "m1.h5")])
    assert res.exit_code == 0, res.output
    assert ("merged 3 videos from 2 file(s)" in res.output
            and "0 duplicate(s) skipped, 1 stale view(s) dropped, 0 labels" in res.output)
    p3 = _part(tmp_path / "p3.h5", [("w@flip", old, None)])
    with pytest.raises(CacheError, match=r"video 'w@flip' appears in two inputs with different"):
        merge([p1, p3], tmp_path / "m2.h5", progress=False)
