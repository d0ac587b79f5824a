"""The fuzz suite's machinery: seeded mutations of readable files, and a worker process that runs a
batch of inputs through the project's readers and reports one outcome per input.

The worker runs in a subprocess (``python fuzzkit.py CASES.jsonl``) so that a segfault or a hang
ends the worker, not the test run: the parent sees which input was running (the first one with no
outcome line), runs it again alone to confirm, and names it. Every outcome is one JSON line:
``{"i": 3, "status": "ok" | "error" | "bad", "type": ..., "msg": ...}``; ``bad`` is an exception
of a type the reader must never raise, a message on several lines, or a hang. A reader that runs
several steps (``cache``) adds ``"steps": {step: "ok" | "error"}``.
"""
from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HANG_S = 20          # one input taking longer than this is a hang
MAX_MSG = 600        # a "clear one-line error" is one line and not a screenful


# ----------------------------------------------------------------------------- readers (worker side)
def _readers():
    """reader name -> (function of the input path, the error types it may end in)."""
    from aqa.data.datasets import read_dataset
    from aqa.data.labels import read_labels_csv
    from aqa.data.safepickle import safe_load
    from aqa.extract.pose.base import PoseFileError
    from aqa.extract.pose.files import load_pose_file

    def dataset(name):
        return lambda p: read_dataset(name, p), (ValueError,)

    readers = {"pickle": (safe_load, (ValueError,)), "labels_csv": (read_labels_csv, (ValueError,)),
               "pose": (load_pose_file, (PoseFileError,))}
    for name in ("aqa7", "mtl_aqa", "unlv_dive", "jigsaws", "finediving"):
        readers[f"dataset:{name}"] = dataset(name)
    return readers


def _torch_readers():
    import torch

    from aqa.extract.backbones.base import StateDictMismatchError, load_checkpoint, load_mapped_state_dict
    from aqa.heads.base import HeadFormatError, load_head
    from aqa.heads.sklearnfile import SklearnFileError

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)
            self.bn = torch.nn.BatchNorm1d(2)

    def checkpoint(fmt):
        def read(p):
            sd = load_checkpoint(p, fmt)
            load_mapped_state_dict(Tiny(), sd, {k: k for k in Tiny().state_dict()}, "tiny")
        return read, (StateDictMismatchError,)

    return {"head": (load_head, (HeadFormatError, SklearnFileError)), "checkpoint:torch_state_dict": checkpoint("torch_state_dict"),
            "checkpoint:pytorchvideo_checkpoint": checkpoint("pytorchvideo_checkpoint")}


class Steps(dict):
    """What a reader that runs several steps returns: step name -> "ok" or "error" (its allowed
    error type, one line); the worker reports it with the input's outcome as ``steps``."""


class StepFailed(Exception):
    """A step's result is wrong though it raised nothing (e.g. a cache still broken after repair)."""


def _cache_readers():
    """``cache``: an HDF5 feature cache through ``verify``, the reader (every array, the labels,
    the provenance), a resuming writer, ``repair`` and ``verify`` again. Each step ends in success
    or a one-line CacheError; after repair the cache must verify. The steps run on a copy, so
    the input stays as it was (a crashing input is run again alone)."""
    from aqa.data.cache import CacheError, CacheReader, CacheWriter
    from aqa.data.integrity import repair, verify

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
        with CacheWriter(path, config={"sampling": "c3d", "pose": "file"}) as w:
            w.complete_ids()
            w.source_records()

    def verified_after_repair(path):
        rep = verify(path)
        if not rep.ok:
            raise StepFailed(f"verify after repair: {rep.problems[:2]}")

    def steps(path):
        work = Path(path).with_name(Path(path).name + ".work")
        shutil.copy(path, work)
        done = Steps()
        try:
            for step, fn in (("verify", verify), ("read", walk), ("resume", resume),
                             ("repair", lambda p: repair(p, progress=False)),
                             ("verify-after-repair", verified_after_repair)):
                try:
                    fn(work)
                    done[step] = "ok"
                except CacheError as e:
                    if "\n" in str(e) or not str(e):
                        raise          # not a clear error: reported as bad by the worker
                    done[step] = "error"
                    if step == "repair":
                        break
        finally:
            work.unlink(missing_ok=True)
        return done

    return {"cache": (steps, (CacheError,))}


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def worker(cases_path: str) -> None:
    import warnings
    warnings.simplefilter("ignore")
    cases = [json.loads(line) for line in Path(cases_path).read_text().splitlines()]
    readers = _readers()
    if any(c["reader"] in ("head",) or c["reader"].startswith("checkpoint:") for c in cases):
        readers.update(_torch_readers())
    if any(c["reader"] == "cache" for c in cases):
        readers.update(_cache_readers())
    signal.signal(signal.SIGALRM, _alarm)
    for c in cases:
        fn, allowed = readers[c["reader"]]
        out = {"i": c["i"], "status": "ok", "type": None, "msg": None}
        signal.alarm(HANG_S)
        try:
            result = fn(c["path"])
            if isinstance(result, Steps):
                out["steps"] = dict(result)
        except _Hang:
            out.update(status="bad", type="hang", msg=f"no answer in {HANG_S} s")
        except BaseException as e:  # noqa: BLE001 - every outcome is reported, none escapes
            msg = str(e)
            good = isinstance(e, allowed) and "\n" not in msg and 0 < len(msg) <= MAX_MSG
            out.update(status="error" if good else "bad", type=type(e).__name__, msg=msg[:2000])
        finally:
            signal.alarm(0)
        print(json.dumps(out), flush=True)


# ----------------------------------------------------------------------------- running (parent side)
def run_cases(cases: list[dict], workdir: Path, timeout: float = 600) -> dict[int, dict]:
    """Outcome of every case (``{"i", "reader", "path"}``), the worker restarted after a crash; a
    crashing input is run again alone and reported as ``bad`` with ``type="crash rc=N"``."""
    outcomes: dict[int, dict] = {}
    todo = list(cases)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": ""}
    while todo:
        path = workdir / "cases.jsonl"
        path.write_text("".join(json.dumps(c) + "\n" for c in todo))
        proc = subprocess.run([sys.executable, __file__, str(path)], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=workdir)
        done = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        for o in done:
            outcomes[o["i"]] = o
        if proc.returncode == 0 and len(done) == len(todo):
            break
        culprit = todo[len(done)]
        path.write_text(json.dumps(culprit) + "\n")
        again = subprocess.run([sys.executable, __file__, str(path)], capture_output=True, text=True,
                               timeout=timeout, env=env, cwd=workdir)
        outcomes[culprit["i"]] = {"i": culprit["i"], "status": "bad",
                                  "type": f"crash rc={proc.returncode} (alone: rc={again.returncode})",
                                  "msg": (proc.stderr or "")[-500:]}
        todo = todo[len(done) + 1:]
    return outcomes


def check(cases: list[dict], outcomes: dict[int, dict], markers=()) -> dict:
    """A tally per reader; raises AssertionError naming every bad input (and any payload that ran)."""
    tally: dict[str, dict[str, int]] = {}
    bad = []
    for c in cases:
        o = outcomes.get(c["i"], {"status": "bad", "type": "no outcome", "msg": ""})
        t = tally.setdefault(c["reader"], {"ok": 0, "error": 0, "bad": 0})
        t[o["status"]] += 1
        if o["status"] == "bad":
            bad.append(f"{c['reader']} {c['path']} ({c.get('how', '')}): {o['type']}: {str(o['msg'])[:300]}")
    ran = [str(m) for m in markers if Path(m).exists()]
    assert not ran, f"a payload ran: {ran}"
    assert not bad, f"{len(bad)} input(s) ended badly:\n" + "\n".join(bad[:20])
    return tally


# ----------------------------------------------------------------------------- mutations
INTERESTING = (0x00, 0xFF, 0x7F, 0x80, 0x01, ord("."), ord("("), ord("]"), ord('"'), ord("\n"))


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One random byte-level mutation of ``data`` and its name."""
    b = bytearray(data)
    n = len(b)
    op = rng.choice(("flip", "flip", "truncate", "insert", "delete", "duplicate", "interesting", "zero"))
    if n == 0:
        return bytes(rng.randrange(256) for _ in range(8)), "random"
    if op == "flip":
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(n)] ^= rng.randint(1, 255)
    elif op == "truncate":
        b = b[:rng.randrange(n)]
    elif op == "insert":
        at = rng.randrange(n + 1)
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif op == "delete":
        at = rng.randrange(n)
        del b[at:at + rng.randint(1, 32)]
    elif op == "duplicate":
        at = rng.randrange(n)
        chunk = b[at:at + rng.randint(1, 64)]
        to = rng.randrange(n + 1)
        b[to:to] = chunk
    elif op == "interesting":
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(n)] = rng.choice(INTERESTING)
    else:
        at = rng.randrange(n)
        seg = min(rng.randint(1, 64), n - at)
        b[at:at + seg] = bytes(seg)
    return bytes(b), op


#: values swapped in for a random node of a decoded structure (JSON or plain pickle data)
JSON_SWAPS = (None, 0, -1, 1, 2 ** 70, 1e308, -1e308, float("nan"), float("inf"), "", "x", "0",
              "\x00", [], {}, [[]], {"a": None}, True, False, [1, 2, 3], [None] * 3, "\udcff" * 2)


def nodes(obj, depth=0, path=()):
    """(container, key) of every node under ``obj`` (to depth 6)."""
    if depth > 6:
        return
    items = (obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ())
    for k, v in list(items):
        yield obj, k
        yield from nodes(v, depth + 1)


def swap_node(obj, rng: random.Random, swaps) -> tuple[object, str]:
    """``obj`` (a copy) with one random node replaced by one of ``swaps``, or a key renamed."""
    import copy
    obj = copy.deepcopy(obj)
    found = list(nodes(obj))
    if not found:
        return rng.choice(swaps), "root"
    parent, key = rng.choice(found)
    if isinstance(parent, dict) and rng.random() < 0.2:
        parent[rng.choice(("", "x", "keypoints", "format", "persons", 0))] = parent.pop(key)
        return obj, f"renamed key {key!r}"
    parent[key] = rng.choice(swaps)    # not copied: a copy of a payload would run it (__reduce__)
    return obj, f"{key!r} -> {type(parent[key]).__name__}"


def deep_json(depth: int = 100000) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_pickle(depth: int = 100000) -> bytes:
    """Lists nested ``depth`` deep, as a pickle (its repr recurses past Python's limit)."""
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


class Evil:
    """Pickles as ``fn(*args)``: a payload that would run on a plain ``pickle.load``."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def payloads(marker: Path) -> list:
    return [Evil(os.system, f"touch {marker}"), Evil(subprocess.call, ["touch", str(marker)]),
            Evil(eval, f"open({str(marker)!r}, 'w')"), Evil(shutil.copy, __file__, str(marker))]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    worker(sys.argv[1])
