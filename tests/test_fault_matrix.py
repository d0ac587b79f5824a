"""The cache under faults, with real processes: `kill -9` at 20 moments (among them inside a commit
and inside the labels rewrite), a full file system at 5 points (a 3 MB tmpfs), 64 bytes inverted
at 10 offsets of a finished cache. After each: `aqa-data verify` passes, or `aqa-data repair` does
and then verify; no video committed before the fault is lost unless repair names it; a resumed run
ends with a cache identical to an uninterrupted run's."""
from __future__ import annotations

import csv
import random
import shutil
import subprocess
from pathlib import Path

import warnings

import pytest

from faultkit import committed, no_traceback, ops, run_driver, same, snapshot

pytestmark = pytest.mark.slow
#: the config of faultkit.EXTRACT_ARGS
CONFIG = dict(sampling="c3d", sampling_options={"length": 8, "stride": 8}, flow="tvl1-cpu",
              flow_options={"nscales": 1, "warps": 1, "outer_iterations": 1, "inner_iterations": 2})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """3 tiny videos; a seed cache holding the first with stale labels (so a run rewrites the
    labels table); the reference: the seed completed by one uninterrupted run."""
    from aqa.data.synthetic import render_dataset

    d = tmp_path_factory.mktemp("faults")
    render_dataset(d / "v", n=3, kind="single", seed=5, n_frames=32, size=(64, 48), progress=False)
    rows = list(csv.DictReader(open(d / "v" / "labels.csv")))
    with open(d / "stale.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "score": str(float(r["score"]) + 1)} for r in rows)
    first = sorted((d / "v").glob("*.mp4"))[0]
    r = run_driver(first, d / "seed.h5", d / "stale.csv", d / "seed.log")
    assert r.returncode == 0, r.stderr[-2000:]
    shutil.copy(d / "seed.h5", d / "ref.h5")
    r = run_driver(d / "v", d / "ref.h5", d / "v" / "labels.csv", d / "ref.log")
    assert r.returncode == 0, r.stderr[-2000:]
    return d, snapshot(d / "ref.h5"), ops(d / "ref.log")


def _settle(d: Path, cache: Path, ref: dict, before: set[str], tally: dict, case: str) -> None:
    """verify (repair when broken), check no video of ``before`` is lost unless repair named it,
    resume, and compare with the reference (in this process: the faults ran in their own)."""
    from aqa.data.integrity import repair, verify
    from aqa.extract.config import ExtractConfig
    from aqa.extract.runner import run_extraction

    dropped: list[str] = []
    rep = verify(cache)
    if not rep.ok:
        assert not rep.busy, rep.busy
        dropped = [what for what, _ in repair(cache, progress=False)["dropped"]]
        rep = verify(cache)
        assert rep.ok, f"{case}: broken after repair: {rep.problems}"
        tally["repaired"] += 1
    else:
        tally["verified"] += 1
    now = snapshot(cache)
    for vid in before:
        if f"videos/{vid}" in dropped or "/videos" in dropped:
            continue
        assert now["videos"].get(vid) == ref["videos"][vid], f"{case}: committed video {vid} lost"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = run_extraction([d / "v"], cache, ExtractConfig(**CONFIG), labels=d / "v" / "labels.csv",
                           device="cpu", progress=False)
    assert not s.failed, f"{case}: resume failed: {s.failed}"
    diff = same(snapshot(cache), ref)
    assert not diff, f"{case}: differs from the reference: {diff}"


def test_fault_matrix(setup, tmp_path, capsys):
    d, ref, ref_ops = setup
    rng = random.Random(22)
    tally = {"kills": 0, "enospc": 0, "corruptions": 0, "verified": 0, "repaired": 0,
             "enospc_after_commits": []}
    seed_ids = set(snapshot(d / "seed.h5")["videos"])

    # -- kill -9: 14 at h5py operations chosen at random (4 of them inside the labels rewrite,
    # 4 inside a commit of the cache file), 6 at random times
    cache_ops = [o for o in ref_ops if o[2] == "ref.h5"]
    labels_ops = [o[0] for o in cache_ops if o[0] <= max(n for n, op, _, a in cache_ops
                                                         if op == "move" and a == "_labels_new")
                  and o[0] >= min(n for n, op, _, a in cache_ops if a == "_labels_new")]
    commit_ops = [o[0] for o in cache_ops if o[1] in ("copy", "move") and "_labels" not in o[3]]
    other_ops = [o[0] for o in ref_ops if o[0] not in labels_ops and o[0] not in commit_ops]
    points = (rng.sample(labels_ops, 4) + rng.sample(commit_ops, min(4, len(commit_ops)))
              + rng.sample(other_ops, 6))
    moments = [("op", p) for p in points] + [("time", rng.uniform(0.5, 4.0)) for _ in range(6)]
    for i, (kind, at) in enumerate(moments):
        cache, log = tmp_path / f"k{i}.h5", tmp_path / f"k{i}.log"
        shutil.copy(d / "seed.h5", cache)
        r = run_driver(d / "v", cache, d / "v" / "labels.csv", log,
                       pause_at=at if kind == "op" else 0,
                       kill_after=at if kind == "time" else None)
        if r != "killed":
            no_traceback(r)
        tally["kills"] += r == "killed"
        _settle(d, cache, ref, seed_ids | committed(log), tally, f"kill at {kind} {at}")
        for p in tmp_path.glob(f".k{i}.h5.*"):
            p.unlink()

    # -- 64 bytes inverted at 10 offsets of the finished cache
    size = (d / "ref.h5").stat().st_size
    for i, off in enumerate(sorted(rng.sample(range(2048, size - 64), 10))):
        cache = tmp_path / f"c{i}.h5"
        blob = bytearray((d / "ref.h5").read_bytes())
        blob[off:off + 64] = bytes(b ^ 0xFF for b in blob[off:off + 64])
        cache.write_bytes(bytes(blob))
        tally["corruptions"] += 1
        _settle(d, cache, ref, set(ref["videos"]), tally, f"corruption at {off}")

    # -- no space left: a 3 MB tmpfs filled to leave the room for 5 points of the run
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here (needs root): the ENOSPC part of the "
                    f"matrix did not run; tally so far {tally}")
    try:
        # free bytes left, by the bytes one video adds: the labels, the first and the second
        # commit refused by the free-space check, and (that check off) the first and the second
        # commit meeting a full disk when it reserves its bytes
        one = ((d / "ref.h5").stat().st_size - (d / "seed.h5").stat().st_size) / 2
        mib, reserve = 1 << 20, 270_000
        frees = [(200_000, False), (int(mib + 0.5 * one), False), (int(mib + 2.5 * one), False),
                 (int(reserve + 0.3 * one), True), (int(reserve + 1.5 * one), True)]
        for i, (free, unchecked) in enumerate(frees):
            cache, log = mnt / "f.h5", tmp_path / f"s{i}.log"
            shutil.copy(d / "seed.h5", cache)
            filler = mnt / "filler"
            avail = shutil.disk_usage(mnt).free
            filler.write_bytes(b"\0" * max(0, avail - free))
            r = run_driver(d / "v", cache, d / "v" / "labels.csv", log,
                           env={"FAULT_NO_SPACE_CHECK": "1"} if unchecked else None)
            no_traceback(r)
            assert r.returncode in (0, 2), r.stderr[-1500:]
            if r.returncode == 2:
                assert "no space left" in r.stderr.lower(), r.stderr[-1500:]
                tally["enospc"] += 1
                tally["enospc_after_commits"].append(len(committed(log)))
            filler.unlink()
            _settle(d, cache, ref, seed_ids | committed(log), tally, f"{free} bytes free")
            for p in mnt.iterdir():
                p.unlink()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
    with capsys.disabled():
        print(f"\nfault matrix: {tally}")
    assert tally["kills"] >= 15 and tally["corruptions"] == 10 and tally["enospc"] == 5
