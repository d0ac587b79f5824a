"""Prepare, on this machine, what ``benchmarks/gpu_checks.sh`` needs on an offline GPU machine, and check
that it fits the device tool's 64 MiB working-tree limit before any device time is spent.

    python benchmarks/gpu_prepare.py [--frames 300] [--python-version 3.12]

Fills two git-ignored folders in the repository root:

- ``.whl/``: the ``opencv-contrib-python-headless`` wheel that ``setup.cfg`` pins (an abi3 wheel, so one
  file serves any CPython 3). GPU images ship plain ``opencv-python-headless``, which lacks
  ``cv2.optflow``: OpenCV's TV-L1, the reference of every tvl1-torch check. ``gpu_checks.sh`` installs
  it into a private folder first on ``PYTHONPATH`` when ``cv2.optflow`` is missing.
- ``.samples/``: the opencv-doc media the GPU tests and benchmarks read (``tests/media.py``), with
  ``vtest.avi`` cut to its first ``--frames`` frames by copying packets (no re-encoding: the frames are
  the original's, byte for byte). ``gpu_checks.sh`` points ``AQA_OPENCV_SAMPLES`` at it.

It prints the size of what a device call carries (tracked and untracked-not-ignored files plus the two
folders) and the one call to make; it exits non-zero when anything is missing or the total is over the
limit. Re-running it reuses what is already there.
"""
from __future__ import annotations

import argparse
import configparser
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 64 * 2**20  # the device tool's limit on the working tree that travels
#: the opencv-doc files the GPU steps read (tests marked gpu, tvl1.py, tvl1_compile.py)
SAMPLES = ("basketball1.png", "basketball2.png")
VIDEO = "vtest.avi"
CV_PACKAGE = "opencv-contrib-python-headless"
#: manylinux tags pip may match for an x86-64 GPU machine (pip matches each exactly)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def pinned_requirement(name: str) -> str:
    """``name==VERSION`` as setup.cfg's install_requires pins it; an error when it is not pinned there."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    for line in cfg["options"]["install_requires"].split("\n"):
        if line.strip().startswith(name + "=="):
            return line.strip()
    raise SystemExit(f"setup.cfg does not pin {name}==VERSION in install_requires")


def fetch_wheel(dest: Path, python_version: str) -> Path:
    """The pinned OpenCV contrib wheel in ``dest`` (downloaded once)."""
    req = pinned_requirement(CV_PACKAGE)
    version = req.split("==", 1)[1]
    stem = CV_PACKAGE.replace("-", "_") + "-" + version + "-"
    have = sorted(dest.glob(stem + "*.whl"))
    if not have:
        dest.mkdir(exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", python_version, "--implementation", "cp", "-d", str(dest), req]
        for plat in PLATFORMS:
            cmd[-1:-1] = ["--platform", plat]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        have = sorted(dest.glob(stem + "*.whl"))
        if proc.returncode != 0 or not have:
            raise SystemExit(f"pip download {req} failed: {proc.stderr.strip()[-500:]}")
    others = [w for w in dest.glob("*.whl") if w not in have]
    if others:  # two OpenCV versions would stop the install there
        raise SystemExit(f"{dest} holds other wheels too ({', '.join(w.name for w in others)}): remove them")
    return have[-1]


def cut_video(src: Path, dst: Path, frames: int) -> int:
    """Copy the first ``frames`` video packets of ``src`` into ``dst`` (same codec, no re-encoding);
    returns how many frames ``dst`` decodes to."""
    import av

    tmp = dst.with_name(dst.name + ".part")
    with av.open(str(src)) as inp, av.open(str(tmp), "w", format=inp.format.name) as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        n = 0
        for packet in inp.demux(s_in):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            if n == frames:
                break
            packet.stream = s_out
            out.mux(packet)
            n += 1
    tmp.replace(dst)
    with av.open(str(dst)) as check:
        return sum(1 for _ in check.decode(video=0))


def fill_samples(dest: Path, frames: int) -> None:
    """The opencv-doc sample files in ``dest``, ``vtest.avi`` cut to ``frames`` frames."""
    sys.path.insert(0, str(ROOT))
    from tests.media import opencv_data_dir

    try:
        src = opencv_data_dir()
    except BaseException as exc:  # pytest.skip raises an outcome exception outside pytest
        raise SystemExit(f"the opencv-doc samples are not available here: {exc}") from None
    dest.mkdir(exist_ok=True)
    for name in SAMPLES:
        if not (dest / name).is_file():
            shutil.copyfile(src / name, dest / name)
    if not (dest / VIDEO).is_file():
        got = cut_video(src / VIDEO, dest / VIDEO, frames)
        if got < frames:
            raise SystemExit(f"{dest / VIDEO} decodes to {got} frames, wanted {frames}")


def travelling_bytes(extra: list[Path]) -> int:
    """Bytes of what a device call sends: tracked and untracked-not-ignored files, plus ``extra``."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    files = [ROOT / p for p in out.decode().split("\0") if p]
    files += [f for d in extra for f in d.rglob("*")]
    return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300, help="frames of vtest.avi to keep (default 300)")
    ap.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    args = ap.parse_args(argv)
    if args.frames < 2:
        ap.error("--frames must be at least 2")
    whl, samples = ROOT / ".whl", ROOT / ".samples"
    wheel = fetch_wheel(whl, args.python_version)
    fill_samples(samples, args.frames)
    total = travelling_bytes([whl, samples])
    mib = 2**20
    print(f"wheel:   {wheel.relative_to(ROOT)} ({wheel.stat().st_size / mib:.1f} MiB)")
    for f in sorted(samples.iterdir()):
        print(f"sample:  {f.relative_to(ROOT)} ({f.stat().st_size / mib:.2f} MiB)")
    print(f"carried: {total / mib:.1f} MiB of the device tool's {LIMIT_BYTES // mib} MiB")
    if total > LIMIT_BYTES:
        print("over the limit: remove untracked files or cut --frames", file=sys.stderr)
        return 1
    print('then one device call: run(command="bash benchmarks/gpu_checks.sh $OUT/gpu-checks", '
          'carry=[".whl", ".samples"], timeout_s=600)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
