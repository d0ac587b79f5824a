"""Helpers of the crash-safety tests (not a test module): a tiny extraction to interrupt, an
`aqa-extract` driver that pauses at a chosen HDF5 operation, and a logical snapshot of a cache."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

#: CLI options of a tiny, fast extraction (3 synthetic videos of 32 frames: about a second each)
EXTRACT_ARGS = ["--sampling", "c3d", "--sampling-opt", "length=8", "--sampling-opt", "stride=8",
                "--flow", "tvl1-cpu", "--flow-opt", "nscales=1", "--flow-opt", "warps=1",
                "--flow-opt", "outer_iterations=1", "--flow-opt", "inner_iterations=2",
                "--device", "cpu"]

# Runs `aqa-extract ARGS`; counts h5py's writing operations (each logged to $FAULT_LOG with the
# file it acts on) and, at the $FAULT_PAUSE_AT-th, touches $FAULT_MARKER and sleeps there, to be
# killed; logs "committed ID" once each video's commit has returned (the file is closed then).
# $FAULT_NO_SPACE_CHECK=1 turns the free-space check off, so that the writes (the space reserved
# for a commit, the labels) meet a real ENOSPC.
DRIVER = r"""
import os, sys, time, types
# no backbone is selected: keep torch (seconds to import) out of the driver
sys.modules["aqa.extract.backbones"] = types.SimpleNamespace(builder_options=None, build_backbone=None,
                                                             DEFAULT_WEIGHTS={})
import h5py
import aqa.data.cache as cache
from aqa.extract.cli import main
at, n = int(os.environ.get("FAULT_PAUSE_AT", "0")), [0]
log = open(os.environ["FAULT_LOG"], "a", buffering=1)
def hook(name, orig):
    def op(self, *a, **kw):
        n[0] += 1
        log.write(f"op {n[0]} {name} {os.path.basename(self.file.filename)} {a[0] if a else ''}\n")
        if n[0] == at:
            open(os.environ["FAULT_MARKER"], "w").close()
            time.sleep(120)
        return orig(self, *a, **kw)
    return op
for name in ("create_dataset", "create_group", "copy", "move", "__delitem__"):
    setattr(h5py.Group, name, hook(name, getattr(h5py.Group, name)))
h5py.File.flush = hook("flush", h5py.File.flush)
write_video = cache.CacheWriter.write_video
def logged(self, vid, *a, **kw):
    write_video(self, vid, *a, **kw)
    log.write(f"committed {vid}\n")
cache.CacheWriter.write_video = logged
if os.environ.get("FAULT_NO_SPACE_CHECK"):
    cache.CacheWriter._check_space = lambda self, need: None
sys.argv = ["aqa-extract", *sys.argv[1:]]
main()
"""


def extract_cmd(videos: Path, out: Path, labels: Path) -> list[str]:
    return [sys.executable, "-c", DRIVER, str(videos), "--out", str(out), "--labels", str(labels),
            *EXTRACT_ARGS]


def run_driver(videos, out, labels, log: Path, pause_at: int = 0, kill_after: float | None = None,
               env: dict | None = None) -> subprocess.CompletedProcess | str:
    """Run the driver; with ``pause_at``, kill -9 it once it pauses there (returns "killed"), with
    ``kill_after`` kill it after that many seconds (if still running); else its result."""
    marker = log.with_suffix(".marker")
    marker.unlink(missing_ok=True)
    full = {**os.environ, "FAULT_LOG": str(log), "FAULT_MARKER": str(marker),
            "FAULT_PAUSE_AT": str(pause_at), "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.Popen(extract_cmd(videos, out, labels), env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if pause_at or kill_after is not None:
        t0 = time.monotonic()
        while proc.poll() is None:
            if (pause_at and marker.exists()) or (kill_after is not None
                                                  and time.monotonic() - t0 > kill_after):
                proc.kill()
                proc.communicate()
                return "killed"
            time.sleep(0.01)
    out_, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out_, err)


def data_cli(*args) -> subprocess.CompletedProcess:
    """`aqa-data ARGS` in a process of its own (a crash of the HDF5 library cannot take the test)."""
    return subprocess.run([sys.executable, "-m", "aqa.data.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def committed(log: Path) -> set[str]:
    """Ids whose commit returned before the fault (none when the driver died before it logged)."""
    text = log.read_text() if log.exists() else ""
    return {ln.split()[1] for ln in text.splitlines() if ln.startswith("committed ")}


def ops(log: Path) -> list[tuple[int, str, str, str]]:
    """(number, operation, file name, argument) of every logged h5py operation."""
    out = []
    for ln in log.read_text().splitlines():
        if ln.startswith("op "):
            parts = ln.split(" ", 4) + [""]
            out.append((int(parts[1]), parts[2], parts[3], parts[4]))
    return out


def snapshot(path) -> dict:
    """What a cache holds, compared bit for bit: root attributes but its creation time and
    version, every video's attributes and arrays (dtype, shape, bytes), the labels table."""
    def value(v):
        return v.tobytes() if isinstance(v, np.ndarray) else v

    out: dict = {}
    with h5py.File(path, "r") as f:
        out["root"] = {k: value(v) for k, v in f.attrs.items()
                       if k not in ("created_utc", "aqa_version")}
        out["videos"] = {}
        for vid, g in f["videos"].items():
            arrays = {}
            g.visititems(lambda name, o: arrays.__setitem__(
                name, (o.dtype.str, o.shape, o[()].tobytes())) if isinstance(o, h5py.Dataset) else None)
            out["videos"][vid] = ({k: value(v) for k, v in g.attrs.items()}, arrays)
        out["labels"] = {k: f["labels"][k][()].tolist() for k in f["labels"]
                         if isinstance(f["labels"][k], h5py.Dataset)} if "labels" in f else None
    return out


def same(a: dict, b: dict) -> list[str]:
    """Where two snapshots differ (empty when identical)."""
    diff = [f"root {k}" for k in a["root"].keys() | b["root"].keys()
            if a["root"].get(k) != b["root"].get(k)]
    diff += [f"video {v}" for v in a["videos"].keys() | b["videos"].keys()
             if a["videos"].get(v) != b["videos"].get(v)]
    return diff + (["labels"] if a["labels"] != b["labels"] else [])


def no_traceback(*results) -> None:
    for r in results:
        text = r.stdout + r.stderr
        assert "Traceback" not in text and "Segmentation" not in text and r.returncode >= 0, text[-3000:]


def json_out(r: subprocess.CompletedProcess) -> dict:
    return json.loads(r.stdout)
