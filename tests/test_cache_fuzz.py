"""Fuzz of the HDF5 cache's readers: a small finished cache with bytes flipped, inverted, zeroed
or cut at seeded random places goes through `verify`, the reader (every array, the labels, the
provenance), a resuming writer and `repair` (fuzzkit's ``cache`` reader). Each must end in success
or a CacheError (one line), never another exception, a crash of the HDF5 library or a hang: the
cases run in fuzzkit's worker process, which reports each case's outcome."""
from __future__ import annotations

import random

import pytest

import fuzzkit as fk
from cachekit import learnable_cache

N_CASES = 80
KINDS = ("bit", "invert64", "zero256", "truncate")


def damaged(blob: bytes, case: int) -> tuple[bytes, str]:
    """Case ``case``'s damage of ``blob`` (seeded by the case number) and its description."""
    rng = random.Random(case)
    data = bytearray(blob)
    kind = KINDS[case % 4]
    off = rng.randrange(len(data))
    if kind == "bit":
        data[off] ^= 1 << rng.randrange(8)
    elif kind == "invert64":
        data[off:off + 64] = bytes(b ^ 0xFF for b in data[off:off + 64])
    elif kind == "zero256":
        data[off:off + 256] = bytes(len(data[off:off + 256]))
    else:
        data = data[:off]
    return bytes(data), f"{kind} at {off}"


@pytest.mark.slow
def test_corrupted_caches_end_in_success_or_one_line_errors(tmp_path):
    blob = learnable_cache(tmp_path / "clean.h5", n=4).read_bytes()
    cases = []
    for i in range(N_CASES):
        data, how = damaged(blob, i)
        path = tmp_path / f"case{i}.h5"
        path.write_bytes(data)
        cases.append({"i": i, "reader": "cache", "path": str(path), "how": how})
    outcomes = fk.run_cases(cases, tmp_path)
    fk.check(cases, outcomes)   # raises naming every case that crashed, hung or raised badly
    tally: dict[str, int] = {}
    for o in outcomes.values():
        for step, result in o["steps"].items():
            tally[f"{step}:{result}"] = tally.get(f"{step}:{result}", 0) + 1
    print(f"cache fuzz: {N_CASES} cases, {tally}")
    assert tally.get("verify:error", 0) + tally.get("verify:ok", 0) == N_CASES
    assert tally.get("repair:ok", 0) > N_CASES // 2   # most damage leaves something to rebuild
