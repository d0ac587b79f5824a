"""The cache under faults, one case each: a full file system, damaged HDF5 structure, a corrupted
chunk, an interrupted labels rewrite, a second writer through a symlink, file names that are not
UTF-8; and `aqa-data repair`."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections import namedtuple
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from aqa.data import cache as cache_mod
from aqa.data.cache import (CacheDamagedError, CacheError, CacheFullError, CacheReader,
                            CacheWriter)
from aqa.data.integrity import repair, verify
from aqa.data.labels import LabelRow
from cachekit import VIDEO_ATTRS, learnable_cache, video_arrays

CONFIG = {"sampling": "c3d", "pose": "file"}
Usage = namedtuple("Usage", "total used free")


def _small(path: Path, ids=("a", "b", "c"), labels=True) -> Path:
    with CacheWriter(path, config=CONFIG) as w:
        for i, vid in enumerate(ids):
            w.write_video(vid, VIDEO_ATTRS, video_arrays(i))
        if labels:
            w.write_labels([LabelRow(v, 10.0 + i, "diving", np.nan, "train")
                            for i, v in enumerate(ids)])
    return path


def _invert(path: Path, offset: int, n: int = 64) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        blob = fh.read(n)
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in blob))


def _chunk_offset(path: Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        return f[name].id.get_chunk_info(0).byte_offset


def _header_offset(path: Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        return h5py.h5o.get_info(f[name].id).addr


# -- case 3: disk full ---------------------------------------------------------------------------
def test_a_commit_without_room_is_refused_before_the_cache_is_touched(tmp_path, monkeypatch):
    path = _small(tmp_path / "c.h5")
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda p: Usage(10 << 20, 10 << 20, 300_000))
    with CacheWriter(path, config=CONFIG) as w, pytest.raises(CacheFullError) as e:
        w.write_video("d", VIDEO_ATTRS, video_arrays(9))
    assert "no space left" in str(e.value) and "re-run the same command to resume" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5", "c.h5.lock"]
    assert verify(path).ok and verify(path).n_videos == 3
    with h5py.File(path, "r") as f:
        assert "_incomplete" not in f and sorted(f["videos"]) == ["a", "b", "c"]


def _tmpfs(path: Path, size: str = "1m") -> Path:
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here (needs root)")
    return path


def test_a_real_enospc_inside_hdf5_is_a_clear_error_and_leaves_a_usable_cache(tmp_path, monkeypatch):
    mnt = _tmpfs(tmp_path / "mnt", "1m")
    try:
        path = mnt / "c.h5"
        monkeypatch.setattr(CacheWriter, "_check_space", lambda self, need: None)  # meet ENOSPC
        big = {**video_arrays(0), "features/x/whole": np.random.default_rng(0).normal(
            size=(60, 1000)).astype(np.float32)}
        written = []
        with pytest.raises(CacheFullError, match="no space left"):
            with CacheWriter(path, config=CONFIG) as w:
                for i in range(20):
                    w.write_video(f"v{i}", VIDEO_ATTRS, big)
                    written.append(f"v{i}")
        assert written and len(written) < 20
        path = Path(shutil.move(path, tmp_path / "c.h5"))  # space freed (repair copies the file)
        if not verify(path).ok:   # the cache is usable again, by verify or else by repair
            repair(path, progress=False)
        rep = verify(path)
        assert rep.ok, rep.problems
        with CacheReader(path) as r:
            assert set(r.video_ids()) >= set(written[:-1])
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.fixture(scope="module")
def synth3(tmp_path_factory):
    from aqa.data.synthetic import render_dataset

    d = tmp_path_factory.mktemp("synth3")
    render_dataset(d, n=3, kind="single", seed=7, n_frames=32, size=(64, 48), progress=False)
    return d


FAST = dict(sampling="c3d", sampling_options={"length": 8, "stride": 8}, flow="tvl1-cpu",
            flow_options={"nscales": 1, "warps": 1, "outer_iterations": 1, "inner_iterations": 2})


def _extract(videos, out, **kw):
    from aqa.extract.config import ExtractConfig
    from aqa.extract.runner import run_extraction
    return run_extraction([videos], out, ExtractConfig(**FAST), device="cpu", progress=False, **kw)


@pytest.mark.slow
def test_the_run_stops_at_the_first_full_disk_and_resumes(synth3, tmp_path, monkeypatch):
    out = tmp_path / "f.h5"
    real = shutil.disk_usage
    commits = []
    monkeypatch.setattr(cache_mod.shutil, "disk_usage",
                        lambda p: real(p) if not commits else Usage(1 << 30, 1 << 30, 4096))
    write = CacheWriter.write_video
    monkeypatch.setattr(CacheWriter, "write_video",
                        lambda self, vid, *a: (write(self, vid, *a), commits.append(vid)))
    with pytest.raises(CacheFullError, match="re-run the same command to resume"):
        _extract(synth3, out)
    assert len(commits) == 1                       # stopped at the first refusal, not went on
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", real)
    s = _extract(synth3, out)
    assert s.count("skipped") == 1 and s.count("done") == 2 and verify(out).ok


def test_a_writer_on_a_file_whose_leftovers_cannot_be_removed_says_repair(tmp_path):
    path = _small(tmp_path / "c.h5", labels=False)
    with h5py.File(path, "a") as f:
        g = f.create_group("_incomplete/x")
        g.create_dataset("a", data=np.arange(10))
    _invert(path, _header_offset(path, "_incomplete"))
    with pytest.raises(CacheDamagedError, match="aqa-data repair"):
        with CacheWriter(path, config=CONFIG):
            pass
    assert not verify(path).ok
    summary = repair(path, progress=False)
    assert summary["videos"] == 3 and verify(path).ok
    with CacheWriter(path, config=CONFIG):  # usable again
        pass


# -- repair --------------------------------------------------------------------------------------
def test_repair_keeps_every_readable_video_labels_and_provenance_and_names_what_it_drops(tmp_path):
    from aqa.data.cli import main as data_cli

    path = _small(tmp_path / "c.h5")
    with h5py.File(path, "r") as f:
        keep = {v: f[f"videos/{v}/features/kin_pose/joints"][()] for v in ("a", "c")}
        root = dict(f.attrs)
    _invert(path, _chunk_offset(path, "videos/b/features/kin_pose/joints") + 40, 1)
    with h5py.File(path, "a") as f:   # an interrupted write too
        f.create_group("_incomplete/d").create_dataset("x", data=np.arange(3))
    r = CliRunner().invoke(data_cli, ["repair", str(path)])
    assert r.exit_code == 0, r.output
    assert "kept 2 videos, 3 labels; dropped 2" in r.output
    assert "dropped videos/b: features/kin_pose/joints unreadable" in r.output
    assert "dropped _incomplete/d" in r.output
    rep = verify(path)
    assert rep.ok and rep.n_videos == 2 and rep.n_labels == 3, rep.problems
    with h5py.File(path, "r") as f:
        for v, arr in keep.items():
            np.testing.assert_array_equal(f[f"videos/{v}/features/kin_pose/joints"][()], arr)
        assert {k: f.attrs[k] for k in root} == root
        assert f["videos/a/features/kin_pose/joints"].fletcher32   # checksums kept
    assert not [p for p in tmp_path.iterdir() if ".repairing" in p.name]


def test_repair_of_a_file_that_is_not_hdf5_is_one_line(tmp_path):
    from aqa.data.cli import main as data_cli

    path = tmp_path / "c.h5"
    path.write_bytes(b"not hdf5" * 100)
    r = CliRunner().invoke(data_cli, ["repair", str(path)])
    assert r.exit_code == 1 and r.output.startswith("error: ") and "cannot be opened as HDF5" in r.output


# -- case 4: damaged HDF5 structure --------------------------------------------------------------
def test_a_damaged_video_header_is_reported_not_a_traceback(tmp_path):
    path = learnable_cache(tmp_path / "c.h5", n=12)
    _invert(path, _header_offset(path, "videos/v03"))
    rep = verify(path)
    assert not rep.ok and any("videos/v03" in p for p in rep.problems), rep.problems
    with CacheReader(path) as r:
        assert "v03" not in r.video_ids() and len(r.video_ids()) == 11
        r.load("kin_pose")
    with CacheWriter(path, config={"sampling": "c3d", "pose": "file"}) as w:  # a resume
        assert "v03" not in w.complete_ids()
    summary = repair(path, progress=False)
    assert ("videos/v03" in [w for w, _ in summary["dropped"]] or summary["videos"] == 11)
    assert verify(path).ok


def test_a_damaged_labels_table_stops_train_with_one_line(tmp_path):
    from aqa.heads.cli import main as heads_cli

    path = learnable_cache(tmp_path / "c.h5", n=12)
    _invert(path, _header_offset(path, "labels/video_id"))
    assert any("labels table unreadable" in p for p in verify(path).problems)
    with CacheReader(path) as r, pytest.raises(CacheDamagedError, match="labels table"):
        r.labels()
    r = CliRunner().invoke(heads_cli, ["train", "pose-dct-svr", str(path), "--out",
                                       str(tmp_path / "m.skops")])
    assert r.exit_code != 0 and not isinstance(r.exception, (OSError, AttributeError)), r.output
    assert "labels table is unreadable" in r.output


# -- case 5: a corrupted chunk -------------------------------------------------------------------
def test_a_damaged_video_is_redone_by_the_next_run_with_a_warning(synth3, tmp_path):
    out = tmp_path / "f.h5"
    _extract(synth3, out)
    vid = "synth_single_s7_0001"
    with h5py.File(out, "r") as f:
        good = f[f"videos/{vid}/features/kin_pose/joints"][()]
    _invert(out, _chunk_offset(out, f"videos/{vid}/features/kin_pose/joints") + 100, 1)
    assert not verify(out).ok
    with pytest.warns(UserWarning, match=f"videos/{vid} is damaged"):
        s = _extract(synth3, out)
    assert [r.video_id for r in s.results if r.status == "done"] == [vid]
    assert verify(out).ok
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f[f"videos/{vid}/features/kin_pose/joints"][()], good)


def test_train_refuses_a_cache_with_an_unreadable_array_it_needs(tmp_path):
    from aqa.heads.cli import main as heads_cli

    path = learnable_cache(tmp_path / "c.h5", n=12)
    _invert(path, _chunk_offset(path, "videos/v02/pose/keypoints") + 50, 1)
    r = CliRunner().invoke(heads_cli, ["train", "pose-dct-svr", str(path), "--out",
                                       str(tmp_path / "m.skops")])
    assert r.exit_code != 0 and "videos/v02/pose/keypoints is unreadable" in r.output, r.output


# -- case 6: labels rewritten by write-new-then-swap ---------------------------------------------
def test_an_interrupted_labels_rewrite_keeps_the_old_table(tmp_path, monkeypatch):
    path = _small(tmp_path / "c.h5")
    with CacheReader(path) as r:
        old = r.labels()
    create = h5py.Group.create_dataset

    def dies_at_split(self, name, *a, **kw):
        if name == "split":
            raise KeyboardInterrupt   # the process stopped in the middle of the table
        return create(self, name, *a, **kw)
    monkeypatch.setattr(h5py.Group, "create_dataset", dies_at_split)
    with CacheWriter(path, config=CONFIG) as w, pytest.raises(KeyboardInterrupt):
        w.write_labels([LabelRow(v, 50.0, "diving", np.nan, "test") for v in "abc"])
    monkeypatch.undo()
    rep = verify(path)
    assert rep.ok and rep.n_labels == 3, rep.problems
    with CacheReader(path) as r:
        assert [x.score for x in r.labels()] == [x.score for x in old]
    with CacheWriter(path, config=CONFIG) as w:    # the next writer drops the half-written one
        w.write_labels([LabelRow(v, 50.0, "diving", np.nan, "test") for v in "abc"])
    with h5py.File(path, "r") as f:
        assert "_labels_new" not in f and list(f["labels/score"][()]) == [50.0] * 3


def test_a_labels_swap_interrupted_after_the_old_table_went_is_finished(tmp_path):
    path = _small(tmp_path / "c.h5")
    with h5py.File(path, "a") as f:   # the state between the swap's two steps
        f.move("labels", "_labels_new")
    with CacheReader(path) as r:
        assert len(r.labels()) == 3
    assert verify(path).ok
    with CacheWriter(path, config=CONFIG):
        pass
    with h5py.File(path, "r") as f:
        assert "labels" in f and "_labels_new" not in f


def test_unchanged_labels_are_not_rewritten(tmp_path, monkeypatch):
    path = _small(tmp_path / "c.h5")
    with CacheReader(path) as r:
        rows = r.labels()
    monkeypatch.setattr(cache_mod, "_write_labels", lambda *a: pytest.fail("labels rewritten"))
    with CacheWriter(path, config=CONFIG) as w:   # a resumed run with the same labels
        w.write_labels(rows)


# -- case 7: the lock is on the real path --------------------------------------------------------
def test_the_space_reserved_for_a_commit_is_given_back(tmp_path):
    path = _small(tmp_path / "c.h5")
    size = path.stat().st_size
    with CacheWriter(path, config=CONFIG):   # opens and closes the file: nothing to write
        pass
    assert path.stat().st_size == size
    path.write_bytes(b"not hdf5")
    with pytest.raises(CacheError):
        with CacheWriter(path, config=CONFIG):
            pass
    assert path.read_bytes() == b"not hdf5"
    blob = _small(tmp_path / "d.h5").read_bytes()
    path.write_bytes(blob[:3218])   # cut short: no reserve may make it look whole
    with pytest.raises(CacheError, match="truncated"):
        with CacheWriter(path, config=CONFIG):
            pass
    assert path.stat().st_size == 3218


def test_a_second_writer_through_a_symlink_is_refused(tmp_path):
    path = _small(tmp_path / "c.h5", labels=False)
    link = tmp_path / "link.h5"
    link.symlink_to(path)
    with CacheWriter(path, config=CONFIG):
        with pytest.raises(CacheError, match="being written by another process"):
            with CacheWriter(link, config=CONFIG):
                pass


# -- case 8: file names that are not UTF-8 -------------------------------------------------------
def test_a_file_name_that_is_not_utf8_is_stored_losslessly_and_not_redone(synth3, tmp_path):
    src = sorted(synth3.glob("*.mp4"))[0]
    videos = tmp_path / "v"
    videos.mkdir()
    raw = os.fsencode(videos) + b"/dive\xff"
    shutil.copy(src, raw + b".mp4")
    shutil.copy(src.with_suffix(".pose.json"), raw + b".pose.json")
    out = tmp_path / "f.h5"
    s = _extract(videos, out)
    assert s.count("done") == 1 and not s.failed, s.failed
    with h5py.File(out, "r") as f:
        g = f["videos/dive\\xff"]
        assert g.attrs["source_relpath"] == "dive\\xff.mp4"
        assert g.attrs["source_relpath_bytes"].tobytes() == b"dive\xff.mp4"
    assert verify(out).ok
    assert _extract(videos, out).count("skipped") == 1
