"""The HDF5 cache: atomic commits, resume rule, provenance, reader, verify, merge, CLI."""
import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from aqa.data.cache import CacheError, CacheReader, CacheWriter
from aqa.data.integrity import merge, verify
from aqa.data.cli import main as data_cli
from aqa.data.labels import LabelRow

from cachekit import VIDEO_ATTRS, hold_open as _hold, video_arrays


def _write(path, ids, config=None, untrained=False, weights=None):
    with CacheWriter(path, config=config or {"sampling": "jrg"}, untrained=untrained,
                     weights=weights) as w:
        for i, vid in enumerate(ids):
            w.write_video(vid, VIDEO_ATTRS, video_arrays(i))
    return path


def test_roundtrip_values_and_layout(tmp_path):
    p = _write(tmp_path / "c.h5", ["a", "b", "c"], weights={"i3d_rgb_imagenet": "ab" * 32})
    with CacheReader(p) as r:
        assert r.video_ids() == ["a", "b", "c"]
        assert r.families() == ["kin_pose"]
        w = r.load("kin_pose", ["b", "a"])
        assert w.shape == (2, 4, 6) and w.dtype == np.float32
        np.testing.assert_array_equal(w[1], video_arrays(0)["features/kin_pose/whole"])
        assert r.load("kin_pose", part="joints").shape == (3, 4, 17, 6)
        assert r.load_camera(["c"]).shape == (1, 4, 5)
        prov = r.provenance()
        assert prov["config"] == {"sampling": "jrg"} and prov["untrained"] is False
        assert prov["weights"] == {"i3d_rgb_imagenet": "ab" * 32}
    with h5py.File(p, "r") as f:
        ds = f["videos/a/features/kin_pose/joints"]
        assert ds.compression == "gzip" and ds.shuffle and ds.fletcher32 and ds.chunks
        assert f["videos/a"].attrs["status"] == "complete"
        assert "_incomplete" not in f or len(f["_incomplete"]) == 0


def test_joined_families_concatenate_features(tmp_path):
    p = tmp_path / "c.h5"
    with CacheWriter(p) as w:
        w.write_video("a", VIDEO_ATTRS, video_arrays(0, D=6, families=("kin_pose", "hof_flow")))
    with CacheReader(p) as r:
        both = r.load("kin_pose+hof_flow", part="joints")
        assert both.shape == (1, 4, 17, 12)
        np.testing.assert_array_equal(both[..., 6:], r.load("hof_flow", part="joints"))


def test_reader_errors(tmp_path):
    p = _write(tmp_path / "c.h5", ["a"])
    with CacheReader(p) as r:
        with pytest.raises(KeyError, match="no feature family 'i3d_rgb'"):
            r.load("i3d_rgb")
        with pytest.raises(KeyError, match="no complete video 'zz'"):
            r.load("kin_pose", ["zz"])
        with pytest.raises(ValueError, match="part must be"):
            r.load("kin_pose", part="nodes")
    with pytest.raises(CacheError, match="no such cache"):
        CacheReader(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(CacheError, match="not a readable HDF5"):
        CacheReader(tmp_path / "junk.h5")


def test_mixed_step_counts_are_reported(tmp_path):
    p = tmp_path / "c.h5"
    with CacheWriter(p) as w:
        w.write_video("a", VIDEO_ATTRS, video_arrays(0, S=4))
        w.write_video("b", VIDEO_ATTRS, video_arrays(1, S=5))
    with CacheReader(p) as r, pytest.raises(ValueError, match="different shapes"):
        r.load("kin_pose")


def test_resume_rule_skips_only_matching_config(tmp_path):
    p = _write(tmp_path / "c.h5", ["a", "b"], config={"sampling": "jrg"})
    with CacheWriter(p, config={"sampling": "jrg"}) as w:
        assert w.complete_ids() == {"a", "b"}
    with CacheWriter(p, config={"sampling": "core"}) as w:
        assert w.complete_ids() == set()  # other config: everything is redone
        w.write_video("a", VIDEO_ATTRS, video_arrays(7))
        assert w.complete_ids() == {"a"}
    with CacheReader(p) as r:  # the replaced video holds the new arrays
        np.testing.assert_array_equal(r.load("kin_pose", ["a"])[0],
                                      video_arrays(7)["features/kin_pose/whole"])


def _untrained(p):
    with CacheReader(p) as r:
        return r.provenance()["untrained"], {v: r.video_attrs(v).get("untrained") for v in r.video_ids()}


def test_untrained_mark_follows_the_videos_the_file_holds(tmp_path):
    p = _write(tmp_path / "c.h5", ["a"], untrained=True, weights={"w1": "1" * 64})
    _write(p, ["b"], untrained=False, weights={"w2": "2" * 64})
    assert _untrained(p) == (True, {"a": True, "b": False})  # a still holds untrained features
    assert verify(p).untrained
    with CacheWriter(p, config={"sampling": "jrg"}, untrained=True, weights={"w3": "3" * 64}):
        pass  # an untrained run that commits nothing leaves the file as it was
    assert _untrained(p) == (True, {"a": True, "b": False})
    with CacheReader(p) as r:
        assert r.provenance()["weights"] == {"w1": "1" * 64, "w2": "2" * 64}
    _write(p, ["a"], untrained=False)  # a trained re-extraction of a clears the mark
    assert _untrained(p) == (False, {"a": False, "b": False})
    rep = verify(p)
    assert rep.ok and not rep.untrained


def test_verify_flags_untrained_videos_under_a_trained_root(tmp_path):
    p = _write(tmp_path / "c.h5", ["a", "b"], untrained=True)
    with h5py.File(p, "a") as f:
        f.attrs["untrained"] = False
    assert any("untrained" in m and "'a'" in m for m in verify(p).problems)


def test_videos_without_their_own_mark_inherit_the_roots(tmp_path):
    """Caches written before per-video marks: a trained re-extraction of one video keeps the root
    marked while the others (unmarked, under an untrained root) may hold untrained features."""
    p = _write(tmp_path / "c.h5", ["a", "b"], untrained=True)
    with h5py.File(p, "a") as f:
        for v in ("a", "b"):
            del f[f"videos/{v}"].attrs["untrained"]
    _write(p, ["a"], untrained=False)
    assert _untrained(p)[0] is True
    _write(p, ["b"], untrained=False)
    assert _untrained(p) == (False, {"a": False, "b": False})


def test_one_writer_per_file(tmp_path):
    p = tmp_path / "c.h5"
    with CacheWriter(p):
        with pytest.raises(CacheError, match="another process"):
            with CacheWriter(p):
                pass


def test_missing_required_arrays_rejected(tmp_path):
    arrays = video_arrays(0)
    del arrays["pose/keypoints"]
    with CacheWriter(tmp_path / "c.h5") as w, pytest.raises(CacheError, match="pose/keypoints"):
        w.write_video("a", VIDEO_ATTRS, arrays)
    with CacheWriter(tmp_path / "c.h5") as w, pytest.raises(CacheError, match="invalid video id"):
        w.write_video("a/b", VIDEO_ATTRS, video_arrays(0))


def test_labels_table_roundtrip(tmp_path):
    rows = [LabelRow("a", 81.5, "diving", 3.2, "train", {"judge_1": 8.5, "execution": 0.9}),
            LabelRow("b", 40.0, "diving", math.nan, "test", {"judge_1": 7.0})]
    p = _write(tmp_path / "c.h5", ["a", "b"])
    with CacheWriter(p) as w:
        w.write_labels(rows)
    with CacheReader(p) as r:
        got = r.labels()
    assert [g.video_id for g in got] == ["a", "b"]
    assert got[0].sub_scores == {"judge_1": 8.5, "execution": 0.9}
    assert math.isnan(got[1].difficulty) and math.isnan(got[1].sub_scores["execution"])
    assert got[1].split == "test" and got[0].score == 81.5


KILLER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    from aqa.data import cache
    from cachekit import VIDEO_ATTRS, hold_open as _hold, video_arrays
    orig = cache.CacheWriter.write_video
    state = {{"n": 0}}
    real_create = None
    def write_video(self, vid, attrs, arrays):
        if vid == "v3":  # die in the middle of this video's write, after part of it is on disk
            import h5py
            f = h5py.File(self.path, "a")
            g = f.create_group("_incomplete/v3")
            g.create_dataset("frames/index", data=np.arange(5))
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return orig(self, vid, attrs, arrays)
    cache.CacheWriter.write_video = write_video
    with cache.CacheWriter({path!r}, config={{"k": 1}}) as w:
        for i in range(6):
            vid = f"v{{i}}"
            if vid in w.complete_ids():
                continue
            w.write_video(vid, VIDEO_ATTRS, video_arrays(i))
""")


def test_killed_writer_then_resume(tmp_path):
    p = tmp_path / "c.h5"
    tests_dir = os.path.dirname(__file__)
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(tests=tests_dir, path=str(p)))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    rep = verify(p)
    assert rep.ok, rep.problems  # readable and valid: three complete videos
    assert rep.n_videos == 3
    assert any("interrupted" in w for w in rep.warnings)
    with CacheReader(p) as r:
        assert r.video_ids() == ["v0", "v1", "v2"]
    # resume: the same loop, without the kill, redoes only what is missing
    with CacheWriter(p, config={"k": 1}) as w:
        done = w.complete_ids()
        assert done == {"v0", "v1", "v2"}
        for i in range(6):
            if f"v{i}" not in done:
                w.write_video(f"v{i}", VIDEO_ATTRS, video_arrays(i))
    rep = verify(p)
    assert rep.ok and rep.n_videos == 6 and not rep.warnings


def _flip_bytes_in_dataset(path, dset):
    with h5py.File(path, "r") as f:
        ds = f[dset]
        offset = ds.id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 10)
        b = fh.read(4)
        fh.seek(offset + 10)
        fh.write(bytes(x ^ 0xFF for x in b))


def test_verify_catches_corrupted_data(tmp_path):
    p = _write(tmp_path / "c.h5", ["a", "b"])
    assert verify(p).ok
    _flip_bytes_in_dataset(p, "videos/b/features/kin_pose/joints")
    rep = verify(p)
    assert not rep.ok
    assert any("videos/b/features/kin_pose/joints" in q for q in rep.problems)
    res = CliRunner().invoke(data_cli, ["verify", str(p)])
    assert res.exit_code == 1 and "PROBLEM" in res.output and "BROKEN" in res.output


def test_reader_refuses_what_verify_calls_broken(tmp_path):
    """Training must not run on a corrupted array, NaN features or a video of another config."""
    p = _write(tmp_path / "c.h5", ["a", "b", "c"])
    _flip_bytes_in_dataset(p, "videos/b/features/kin_pose/joints")
    with h5py.File(p, "a") as f:
        f["videos/c/features/kin_pose/whole"][1, 2] = np.inf
    with CacheReader(p) as r:
        assert r.load("kin_pose", ["a"], part="joints").shape == (1, 4, 17, 6)  # sound videos load
        with pytest.raises(CacheError, match=r"videos/b/features/kin_pose/joints is unreadable"):
            r.load("kin_pose", part="joints")
        with pytest.raises(CacheError, match=r"videos/c/features/kin_pose/whole contains NaN/inf"):
            r.load("kin_pose", ["a", "c"])
        np.testing.assert_array_equal(r.pose("c")["keypoints"], video_arrays(2)["pose/keypoints"])
    q = _write(tmp_path / "q.h5", ["a", "b"], config={"sampling": "jrg"})
    with CacheWriter(q, config={"sampling": "core"}) as w:  # re-run of a alone, another config
        w.write_video("a", VIDEO_ATTRS, video_arrays(7))
    with CacheReader(q) as r:
        assert r.load("kin_pose", ["a"]).shape == (1, 4, 6)
        for read in (lambda: r.load("kin_pose"), lambda: r.pose("b"), lambda: r.load_camera(["b"])):
            with pytest.raises(CacheError, match="video 'b' was extracted with config .* not the "
                                                 "file's root config"):
                read()


def test_verify_catches_structural_problems(tmp_path):
    p = _write(tmp_path / "c.h5", ["a", "b"])
    with h5py.File(p, "a") as f:
        del f["videos/a/pose/roles"]
        f["videos/b/features/kin_pose/whole"][0, 0] = np.nan
    rep = verify(p)
    assert any("pose/roles" in q and "missing" in q for q in rep.problems)
    assert any("NaN" in q for q in rep.problems)
    (tmp_path / "trunc.h5").write_bytes(p.read_bytes()[:2000])
    rep = verify(tmp_path / "trunc.h5")
    assert not rep.ok


def test_verify_cli_ok_and_json(tmp_path):
    p = _write(tmp_path / "c.h5", ["a"])
    res = CliRunner().invoke(data_cli, ["verify", str(p)])
    assert res.exit_code == 0, res.output
    assert "features/kin_pose" in res.output and "OK" in res.output
    res = CliRunner().invoke(data_cli, ["verify", "--json", str(p)])
    d = json.loads(res.output)
    assert d["ok"] and d["n_videos"] == 1 and d["families"]["kin_pose"]["joints"] == ["S", 17, 6]


def test_merge_shards(tmp_path):
    a = _write(tmp_path / "s0.h5", ["a", "b"], weights={"w1": "1" * 64})
    b = _write(tmp_path / "s1.h5", ["c"], untrained=True, weights={"w2": "2" * 64})
    with CacheWriter(a) as w:
        w.write_labels([LabelRow("a", 1.0), LabelRow("b", 2.0)])
    with CacheWriter(b) as w:
        w.write_labels([LabelRow("c", 3.0)])
    res = CliRunner().invoke(data_cli, ["merge", str(a), str(b), "--out", str(tmp_path / "m.h5")])
    assert res.exit_code == 0, res.output
    rep = verify(tmp_path / "m.h5")
    assert rep.ok and rep.n_videos == 3 and rep.untrained
    with CacheReader(tmp_path / "m.h5") as r:
        assert r.provenance()["weights"] == {"w1": "1" * 64, "w2": "2" * 64}
        assert sorted(x.video_id for x in r.labels()) == ["a", "b", "c"]
        np.testing.assert_array_equal(r.load("kin_pose", ["c"])[0],
                                      video_arrays(0)["features/kin_pose/whole"])


def test_merge_conflicts_are_errors(tmp_path):
    a = _write(tmp_path / "s0.h5", ["a"])
    b = _write(tmp_path / "s1.h5", ["a"], config={"sampling": "core"})
    with pytest.raises(CacheError, match="appears in two inputs"):
        merge([a, b], tmp_path / "m.h5", progress=False)
    with pytest.raises(CacheError, match="already exists"):
        merge([a], b, progress=False)
    # identical duplicate (same source and config) is skipped, not an error
    c = _write(tmp_path / "s2.h5", ["a"])
    s = merge([a, c], tmp_path / "m2.h5", progress=False)
    assert s["videos"] == 1 and s["duplicates_skipped"] == 1


def test_failed_merge_leaves_no_output_and_a_retry_works(tmp_path):
    a = _write(tmp_path / "s0.h5", ["a"])
    b = _write(tmp_path / "s1.h5", ["a"], config={"sampling": "core"})
    before = set(os.listdir(tmp_path))
    out = tmp_path / "m.h5"
    res = CliRunner().invoke(data_cli, ["merge", str(a), str(b), "--out", str(out)])
    assert res.exit_code == 1
    assert res.output.splitlines()[-1] == (f"error: merge: video 'a' appears in two inputs with "
                                           f"different content/config (second: {b})")
    assert set(os.listdir(tmp_path)) == before | {"m.h5.lock"}   # no m.h5, no temporary file
    assert CliRunner().invoke(data_cli, ["verify", str(out)]).exit_code == 1
    res = CliRunner().invoke(data_cli, ["merge", str(a), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert verify(out).ok and verify(out).n_videos == 1


def test_interrupted_merge_leaves_no_output(tmp_path, monkeypatch):
    from aqa.data import integrity

    a = _write(tmp_path / "s0.h5", ["a"])
    with CacheWriter(a) as w:
        w.write_labels([LabelRow("a", 1.0)])
    before = set(os.listdir(tmp_path))

    def interrupt(*args):  # Ctrl-C while the merged file is being written
        raise KeyboardInterrupt
    monkeypatch.setattr(integrity, "_write_labels", interrupt)
    with pytest.raises(KeyboardInterrupt):
        merge([a], tmp_path / "m.h5", progress=False)
    assert set(os.listdir(tmp_path)) == before | {"m.h5.lock"}


def test_merge_labels_nan_equal_but_conflicts_refused(tmp_path):
    a = _write(tmp_path / "s0.h5", ["a"])
    b = _write(tmp_path / "s1.h5", ["b"])
    rows = [LabelRow("a", 1.0, "diving", math.nan, "train", {"sync": math.nan}), LabelRow("b", 2.0)]
    for p in (a, b):  # every shard carries the whole table, NaNs included
        with CacheWriter(p) as w:
            w.write_labels(rows)
    assert merge([a, b], tmp_path / "m.h5", progress=False)["labels"] == 2
    with CacheWriter(b) as w:
        w.write_labels([LabelRow("a", 9.0, "diving", math.nan, "train", {"sync": math.nan})])
    with pytest.raises(CacheError, match="conflicting labels for 'a'"):
        merge([a, b], tmp_path / "m2.h5", progress=False)


@pytest.mark.slow
def test_writer_waits_for_a_reader_to_close(tmp_path):
    p = _write(tmp_path / "c.h5", ["a"])
    proc = _hold(p, "r", 1.0)  # a reader has the file open: HDF5 refuses "a" (errno 11) meanwhile
    try:
        with CacheWriter(p, config={"sampling": "jrg"}) as w:  # retries until the reader closes
            w.write_video("b", VIDEO_ATTRS, video_arrays(1))
    finally:
        proc.wait()
    assert verify(p).ok and verify(p).n_videos == 2


@pytest.mark.slow
def test_locked_file_is_a_clear_error_and_verify_says_busy(tmp_path, monkeypatch):
    from aqa.data import cache as cache_mod

    p = _write(tmp_path / "c.h5", ["a"])
    monkeypatch.setattr(cache_mod, "LOCK_TIMEOUT", 0.3)
    monkeypatch.setattr(cache_mod, "WRITE_LOCK_TIMEOUT", 0.6)
    proc = _hold(p, "a", 60)  # a writer holds it for longer than the retries last
    try:
        with pytest.raises(cache_mod.CacheLockedError, match=r"still locked after 0\.6 s"):
            CacheWriter(p).__enter__()  # a writer waits WRITE_LOCK_TIMEOUT, a reader LOCK_TIMEOUT
        with pytest.raises(CacheError, match="locked by another process"):
            CacheReader(p)
        rep = verify(p)
        assert rep.busy and "locked by another process" in rep.busy
        assert not rep.ok and not rep.problems  # busy, not broken
        res = CliRunner().invoke(data_cli, ["verify", str(p)])
        assert res.exit_code == 3 and "BUSY" in res.output and "BROKEN" not in res.output
    finally:
        proc.kill()
        proc.wait()
    assert verify(p).ok  # nothing was damaged


def test_verify_flags_videos_of_another_config_and_keeps_every_config(tmp_path):
    p = _write(tmp_path / "c.h5", ["a", "b"], config={"sampling": "jrg"})
    with CacheWriter(p, config={"sampling": "core"}) as w:  # re-run into the same file, other config
        w.write_video("a", VIDEO_ATTRS, video_arrays(7))
    rep = verify(p)
    (problem,) = rep.problems
    assert "1 video(s) (b)" in problem and '"sampling": "jrg"' in problem and "root config" in problem
    with h5py.File(p, "r") as f:  # nothing lost: both configs are on record
        configs = json.loads(f.attrs["configs_json"])
    assert sorted(c["sampling"] for c in configs.values()) == ["core", "jrg"]
    with CacheWriter(p, config={"sampling": "core"}) as w:  # redoing b makes the file consistent
        w.write_video("b", VIDEO_ATTRS, video_arrays(8))
    assert verify(p).ok


def test_a_run_that_commits_nothing_leaves_the_root_config(tmp_path):
    """Interrupted (or all-failing) before its first video, another config's run changes nothing."""
    p = _write(tmp_path / "c.h5", ["a", "b"], config={"sampling": "jrg"})
    with CacheWriter(p, config={"sampling": "core"}):
        pass
    with CacheReader(p) as r:
        assert r.provenance()["config"] == {"sampling": "jrg"}
    assert verify(p).ok


def test_writer_without_config_keeps_the_files_config(tmp_path):
    p = _write(tmp_path / "c.h5", ["a"], config={"sampling": "core"})
    with CacheWriter(p) as w:  # e.g. only adding labels
        w.write_labels([LabelRow("a", 1.0)])
        assert w.complete_ids() == {"a"}
    with CacheReader(p) as r:
        assert r.provenance()["config"] == {"sampling": "core"}
    assert verify(p).ok


def test_merged_file_of_two_configs_verifies(tmp_path):
    a = _write(tmp_path / "s0.h5", ["a"], config={"sampling": "jrg"})
    b = _write(tmp_path / "s1.h5", ["b"], config={"sampling": "core"})
    merge([a, b], tmp_path / "m.h5", progress=False)
    rep = verify(tmp_path / "m.h5")
    assert rep.ok, rep.problems
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert len(json.loads(f.attrs["configs_json"])) == 2
