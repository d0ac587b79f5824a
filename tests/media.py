"""Real sample media for tests: Debian's ``opencv-doc`` example data (images and videos).

``opencv_sample("basketball1.png")`` returns the path of a file from
``/usr/share/doc/opencv-doc/examples/data``. It is looked up, in order, in:

1. ``$AQA_OPENCV_SAMPLES`` (a folder holding the files, for offline machines);
2. the system copy (``apt-get install opencv-doc``);
3. a user cache, ``$AQA_CACHE_DIR/opencv-doc`` (default ``~/.cache/aqa/opencv-doc``), filled on first use
   by ``apt-get download opencv-doc`` + ``dpkg -x`` (``apt-get update`` is run only if the first download
   fails).

Several pytest workers may call this at once: the download runs under an exclusive ``flock`` and the
unpacked tree is moved into place with one atomic ``rename``, so a reader never sees half a tree. If nothing
works the calling test is skipped with the reason (tests must not fail for lack of network).
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

DATA_SUBDIR = Path("usr/share/doc/opencv-doc/examples/data")
SYSTEM_DATA = Path("/") / DATA_SUBDIR
_TIMEOUT_S = 600


def cache_dir() -> Path:
    """The folder under which the unpacked package lives."""
    root = os.environ.get("AQA_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "aqa"
    return base / "opencv-doc"


def _run(cmd: list[str], cwd: Path) -> tuple[bool, str]:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{' '.join(cmd)}: {exc}"
    return proc.returncode == 0, f"{' '.join(cmd)}: rc={proc.returncode} {proc.stderr.strip()[-300:]}"


def _download_and_unpack(dest: Path) -> str | None:
    """Fetch and unpack opencv-doc into ``dest`` (atomically). Returns None on success, else a reason."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return "apt-get/dpkg not available (not a Debian-like system)"
    work = Path(tempfile.mkdtemp(prefix=".opencv-doc-", dir=dest.parent))
    try:
        ok, msg = _run(["apt-get", "download", "opencv-doc"], work)
        if not ok:
            _run(["apt-get", "update"], work)
            ok, msg = _run(["apt-get", "download", "opencv-doc"], work)
        if not ok:
            return f"could not download opencv-doc ({msg})"
        debs = sorted(work.glob("opencv-doc_*.deb"))
        if not debs:
            return "apt-get download produced no opencv-doc_*.deb"
        tree = work / "tree"
        ok, msg = _run(["dpkg", "-x", str(debs[-1]), str(tree)], work)
        if not ok or not (tree / DATA_SUBDIR).is_dir():
            return f"could not unpack {debs[-1].name} ({msg})"
        try:
            os.rename(tree, dest)  # atomic: other workers see either nothing or the whole tree
        except OSError:
            if not (dest / DATA_SUBDIR).is_dir():
                raise
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def opencv_data_dir() -> Path:
    """Folder of the opencv-doc example data; skips the calling test with a reason when unavailable."""
    env = os.environ.get("AQA_OPENCV_SAMPLES")
    if env and Path(env).is_dir():
        return Path(env)
    if SYSTEM_DATA.is_dir():
        return SYSTEM_DATA
    dest = cache_dir() / "root"
    if (dest / DATA_SUBDIR).is_dir():
        return dest / DATA_SUBDIR
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest.parent / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one downloader; the others wait and then find the tree
            try:
                if not (dest / DATA_SUBDIR).is_dir():
                    reason = _download_and_unpack(dest)
                    if reason is not None:
                        pytest.skip(f"opencv-doc sample data unavailable: {reason}")
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except OSError as exc:
        pytest.skip(f"opencv-doc sample data unavailable: {exc}")
    return dest / DATA_SUBDIR


def opencv_sample(name: str) -> Path:
    """Path of one opencv-doc sample file, e.g. ``"basketball1.png"`` or ``"vtest.avi"``.

    Skips the calling test when the data cannot be had; a name the package does not ship is an error.
    """
    path = opencv_data_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{name!r} is not in the opencv-doc example data at {path.parent}")
    return path
