"""Tests' durations at two revisions of tests/, side by side: each test id runs alone, as
``python -m pytest -p no:cacheprovider ID --durations=0``, first from BASE's tests/ (a temporary
git worktree; the package imported is this checkout's, so only the tests differ), then from the
working tree, one right after the other so both meet the same machine load.

    python benchmarks/suite_durations.py BASE TEST_ID [TEST_ID ...] [--repeat N]

TEST_ID as pytest takes it (``tests/test_x.py::test_name`` or a whole ``tests/test_x.py``). Prints
per id the summed call seconds (setup included) and the process's wall seconds at BASE and now,
and the ratio of the walls.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DURATION = re.compile(r"^\s*([\d.]+)s (call|setup|teardown)\s+(\S+)", re.M)


def run(tree: Path, test_id: str) -> tuple[float, float, str]:
    """(seconds in setup + call + teardown, wall seconds, pytest's last line) of ``test_id`` in ``tree``."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", test_id,
                          "--durations=0", "-vv"], cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = res.stdout.strip().splitlines()
    return (sum(float(m.group(1)) for m in DURATION.finditer(res.stdout)), wall,
            lines[-1] if lines else res.stderr[-300:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="the git revision to compare with (e.g. main)")
    ap.add_argument("tests", nargs="+")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base), args.base], cwd=ROOT,
                       check=True)
        if (ROOT.parent / "shared").is_dir():   # tests find ../shared next to the repository
            os.symlink(ROOT.parent / "shared", Path(tmp) / "shared")
        try:
            print(f"| test | {args.base} s (wall) | now s (wall) | wall ratio | outcome now |")
            print("|---|---|---|---|---|")
            for test_id in args.tests:
                for _ in range(args.repeat):
                    before, wall_b, _ = run(base, test_id)
                    after, wall_a, last = run(ROOT, test_id)
                    print(f"| {test_id} | {before:.1f} ({wall_b:.1f}) | {after:.1f} ({wall_a:.1f}) | "
                          f"x{wall_b / wall_a:.2f} | {last.strip('= ')} |", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
