"""Fuzz of the HDF5 cache's readers: a small finished cache with bytes flipped, inverted, zeroed
or cut at seeded random places goes through `verify`, the reader (every array, the labels, the
provenance), a resuming writer and `repair`. Each must end in success or a CacheError (one line),
never another exception, a crash of the HDF5 library or a hang: the cases run in a process of
their own, which reports each case's outcome."""
from __future__ import annotations

import json
import subprocess
import sys

N_CASES = 80

CHILD = r"""
import json, random, shutil, sys, traceback, warnings
from pathlib import Path
import numpy as np
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[3])
from cachekit import learnable_cache
from aqa.data.cache import CacheError, CacheReader, CacheWriter
from aqa.data.integrity import repair, verify

work, n = Path(sys.argv[1]), int(sys.argv[2])
clean = learnable_cache(work / "clean.h5", n=4)
blob = clean.read_bytes()
config = {"sampling": "c3d", "pose": "file"}

def walk(path):
    with CacheReader(path) as r:
        r.provenance()
        r.labels()
        for vid in r.video_ids(views=True):
            r.pose(vid)
            r.video_attrs(vid)
        if r.video_ids():
            for fam in r.families():
                for part in ("whole", "joints", "clip_start"):
                    r.load(fam, part=part)
            r.load_camera()

def resume(path):
    with CacheWriter(path, config=config) as w:
        w.complete_ids()
        w.source_records()

tally = {}
for case in range(n):
    rng = random.Random(case)
    data = bytearray(blob)
    kind = ["bit", "invert64", "zero256", "truncate"][case % 4]
    off = rng.randrange(len(data))
    if kind == "bit":
        data[off] ^= 1 << rng.randrange(8)
    elif kind == "invert64":
        data[off:off + 64] = bytes(b ^ 0xFF for b in data[off:off + 64])
    elif kind == "zero256":
        data[off:off + 256] = bytes(len(data[off:off + 256]))
    else:
        data = data[:off]
    path = work / f"case{case}.h5"
    path.write_bytes(bytes(data))
    print(f"case {case} {kind} {off}", flush=True)
    for step, fn in (("verify", verify), ("read", walk), ("resume", resume),
                     ("repair", lambda p: repair(p, progress=False)), ("verify-after-repair", verify)):
        try:
            out = fn(path)
            if step == "verify-after-repair" and not out.ok:
                print(f"BAD {case} {kind} {off} {step}: {out.problems[:2]}", flush=True)
            tally[step + ":ok"] = tally.get(step + ":ok", 0) + 1
        except CacheError as e:
            msg = str(e)
            if "\n" in msg or not msg:
                print(f"BAD {case} {kind} {off} {step}: multi-line error {msg!r}", flush=True)
            tally[step + ":error"] = tally.get(step + ":error", 0) + 1
            if step == "repair":
                break
        except Exception as e:
            tb = traceback.format_exc().strip().splitlines()
            print(f"BAD {case} {kind} {off} {step}: {type(e).__name__}: {e} | {tb[-3:]}", flush=True)
            break
    path.unlink(missing_ok=True)
print("TALLY " + json.dumps(tally), flush=True)
"""


def test_corrupted_caches_end_in_success_or_one_line_errors(tmp_path):
    from pathlib import Path
    tests_dir = str(Path(__file__).parent)
    r = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(N_CASES), tests_dir],
                       capture_output=True, text=True, timeout=300)
    lines = r.stdout.splitlines()
    last = [ln for ln in lines if ln.startswith("case ")][-1:] or ["before the first case"]
    assert r.returncode == 0, f"the reader process died (rc {r.returncode}) at {last}: {r.stderr[-2000:]}"
    bad = [ln for ln in lines if ln.startswith("BAD ")]
    assert not bad, "\n".join(bad[:10])
    tally = json.loads(lines[-1].removeprefix("TALLY "))
    print(f"cache fuzz: {N_CASES} cases, {tally}")
    assert tally.get("verify:error", 0) + tally.get("verify:ok", 0) == N_CASES
    assert tally.get("repair:ok", 0) > N_CASES // 2   # most damage leaves something to rebuild
