"""Helpers of the crash-safety tests (not a test module): a tiny extraction to interrupt, an
`aqa-extract` driver that pauses at a chosen HDF5 operation, and a logical snapshot of a cache."""
from __future__ import annotations

import atexit
import json
import os
import select
import signal
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
    """The driver as a command line of its own (what :func:`run_driver` forks instead, but for
    kills at a time)."""
    return [sys.executable, "-c", DRIVER, str(videos), "--out", str(out), "--labels", str(labels),
            *EXTRACT_ARGS]


# A fork server: imports what a driver run needs once (h5py, the CLI and the runner, OpenCV, PyAV,
# SciPy's assignment solver: about a second of every fresh process), then forks one driver per
# request. Each run is still a process of its own, killed with SIGKILL, that starts from the
# state of a process which has imported these modules and opened no file. A request is a JSON
# line {args, env, stdout, stderr}; the answers are {"pid": ...}, then {"rc": ...} once it ended.
SERVER = r"""
import json, os, sys, traceback, types
sys.modules["aqa.extract.backbones"] = types.SimpleNamespace(builder_options=None, build_backbone=None,
                                                             DEFAULT_WEIGHTS={})
import av, cv2, h5py, scipy.optimize, tqdm
import aqa.extract.cli, aqa.extract.runner, aqa.extract.flow.tvl1_cv, aqa.extract.pose.files
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            for fd, name in ((1, "stdout"), (2, "stderr")):
                os.dup2(os.open(req[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            os.environ.clear()
            os.environ.update(req["env"])
            sys.argv = ["aqa-extract", *req["args"]]
            try:
                exec(compile(DRIVER, "<driver>", "exec"), {"__name__": "__main__"})
                code = 0
            except SystemExit as e:
                if isinstance(e.code, int) or e.code is None:
                    code = e.code or 0
                else:
                    print(e.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}), flush=True)
"""


class _ForkServer:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", f"DRIVER = {DRIVER!r}\n" + SERVER],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.buf = b""

    def request(self, args: list[str], env: dict, stdout: Path, stderr: Path) -> int:
        """Fork a driver; its pid."""
        self.proc.stdin.write((json.dumps({"args": args, "env": env, "stdout": str(stdout),
                                           "stderr": str(stderr)}) + "\n").encode())
        return self.answer(300)["pid"]

    def answer(self, timeout: float) -> dict | None:
        """The server's next answer, or None if none came within ``timeout`` seconds."""
        t_end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = t_end - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the fork server died (rc {self.proc.wait()})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


_server: list[_ForkServer] = []


def _fork_server() -> _ForkServer:
    if not _server or _server[0].proc.poll() is not None:
        _server[:] = [_ForkServer()]
        atexit.register(_server[0].close)
    return _server[0]


def run_driver(videos, out, labels, log: Path, pause_at: int = 0, kill_after: float | None = None,
               env: dict | None = None) -> subprocess.CompletedProcess | str:
    """Run the driver; with ``pause_at``, kill -9 it once it pauses there (returns "killed"), with
    ``kill_after`` kill it after that many seconds (if still running); else its result.

    The driver is forked by the fork server, except with ``kill_after``: a time counts from the
    start of a fresh interpreter, imports included, as it does for a user's process."""
    marker = log.with_suffix(".marker")
    marker.unlink(missing_ok=True)
    full = {**os.environ, "FAULT_LOG": str(log), "FAULT_MARKER": str(marker),
            "FAULT_PAUSE_AT": str(pause_at), "OMP_NUM_THREADS": "1", **(env or {})}
    if kill_after is not None:
        return _run_fresh(extract_cmd(videos, out, labels), full, kill_after)
    args = [str(videos), "--out", str(out), "--labels", str(labels), *EXTRACT_ARGS]
    stdout, stderr = log.with_suffix(".stdout"), log.with_suffix(".stderr")
    server = _fork_server()
    pid = server.request(args, full, stdout, stderr)
    done = None
    if pause_at:
        while done is None:
            if marker.exists():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:   # it ended (and was reaped) just before
                    pass
                done = server.answer(300)
                if done["rc"] == -signal.SIGKILL:
                    return "killed"
                break
            done = server.answer(0.01)
    done = done or server.answer(300)
    if done is None:
        os.kill(pid, signal.SIGKILL)
        raise TimeoutError(f"the driver ran over 300 s: {args}")
    return subprocess.CompletedProcess(extract_cmd(videos, out, labels), done["rc"],
                                       stdout.read_text(errors="replace"),
                                       stderr.read_text(errors="replace"))


def _run_fresh(cmd: list[str], env: dict, kill_after: float) -> subprocess.CompletedProcess | str:
    """``cmd`` in a new process, killed with SIGKILL after ``kill_after`` seconds if still running."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while proc.poll() is None:
        if time.monotonic() - t0 > kill_after:
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
