"""Start-up time of the command-line tools: wall seconds of ``--help``, median of several runs.

    python benchmarks/cli_startup.py [--runs 9] [--against DIR] [--json]

Each command runs in a fresh interpreter (``python -m aqa.extract.cli --help`` etc.), so the time is
the imports a user pays before the help appears. It prints the median and the minimum per command;
on a loaded machine compare the minima. ``--against DIR`` also times another version of the code,
run by run in turn with this one: DIR holds ``aqa/{data,extract,heads,pipelines}`` of that version
(e.g. links to an older checkout's folders), put first on ``PYTHONPATH``. Nothing is asserted: it is
a measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "aqa-extract --help": ["-m", "aqa.extract.cli", "--help"],
    "aqa-extract run --help": ["-m", "aqa.extract.cli", "run", "--help"],
    "aqa-heads --help": ["-m", "aqa.heads.cli", "--help"],
}


def measure(args: list[str], runs: int, versions: dict[str, dict]) -> dict[str, list[float]]:
    """Wall seconds of ``python ARGS`` per version (name -> environment), the versions in turn."""
    times: dict[str, list[float]] = {v: [] for v in versions}
    for _ in range(runs):
        for name, env in versions.items():
            t = time.perf_counter()
            subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL, env=env)
            times[name].append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--against", metavar="DIR", help="also time the code under DIR/aqa (see above)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    versions = {"this": dict(os.environ)}
    if a.against:
        path = os.pathsep.join([a.against, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        versions[a.against] = dict(os.environ, PYTHONPATH=path)
    out = {}
    for name, args in COMMANDS.items():
        for version, t in measure(args, a.runs, versions).items():
            out[f"{name} [{version}]"] = {"median_s": round(statistics.median(t), 3), "min_s": round(min(t), 3)}
    if a.json:
        print(json.dumps(out, indent=1))
        return
    for name, r in out.items():
        print(f"{name:50s} median {r['median_s']:.3f} s   min {r['min_s']:.3f} s   ({a.runs} runs)")


if __name__ == "__main__":
    main()
