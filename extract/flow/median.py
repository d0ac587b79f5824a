"""k x k median filter of tensors by comparator networks (element-wise min/max only), for k = 3 and 5.

``unfold`` + ``median`` copies every pixel k*k times and sorts each window; here the filter is a fixed
sequence of ``minimum``/``maximum`` on shifted views, which torch.compile fuses into one kernel and which
is several times faster in eager mode too. Two stages:

1. each column of k pixels is sorted once (a sorting network on k vertically shifted views), shared by
   the k windows that contain that column;
2. a selection network takes the k sorted columns of a window to its median.

Both networks are Batcher's odd-even merge sort on the next power of two of wires (padding wires hold
+inf), pruned of the comparators that cannot change anything (two wires already in order for every input
that meets the precondition: sorted columns in stage 2) and of those that do not lead to the output wire.
By the 0-1 principle a comparator network is correct for all real inputs when it is for all 0/1 inputs;
:func:`median_network` enumerates them (all (k+1)^k of sorted-column form) while it prunes, and checks
the result, so a wrong network cannot be built.
"""
from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

Comparator = tuple[int, int, bool, bool]  # wires (i, j), i gets the min, j the max; which of them is used


def batcher_comparators(n: int) -> list[tuple[int, int]]:
    """Comparators (i, j), i < j, of Batcher's odd-even merge sort on ``n`` = 2^m wires."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"n must be a power of two, got {n}")
    out: list[tuple[int, int]] = []

    def merge(lo: int, size: int, r: int) -> None:
        step = 2 * r
        if step < size:
            merge(lo, size, step)
            merge(lo + r, size, step)
            out.extend((i, i + r) for i in range(lo + r, lo + size - r, step))
        else:
            out.append((lo, lo + r))

    def sort(lo: int, size: int) -> None:
        if size > 1:
            sort(lo, size // 2)
            sort(lo + size // 2, size // 2)
            merge(lo, size, 1)

    sort(0, n)
    return out


def _prune(inputs: np.ndarray, outputs: list[int], reference: np.ndarray) -> list[Comparator]:
    """Run Batcher's network on 0/1 ``inputs`` (P, n), drop idle and dead comparators, check ``outputs``."""
    p, n = inputs.shape
    m = 1 << max(0, (n - 1).bit_length())
    wires = np.ones((p, m), dtype=bool)  # padding wires are +inf: 1 under every threshold
    wires[:, :n] = inputs
    live = []
    for i, j in batcher_comparators(m):
        a, b = wires[:, i], wires[:, j]
        if not (a & ~b).any():
            continue  # already in order on every admissible input
        wires[:, i], wires[:, j] = a & b, a | b
        live.append((i, j))
    if not np.array_equal(wires[:, outputs], reference):
        raise AssertionError("comparator network does not compute its reference")  # pragma: no cover
    needed = set(outputs)
    ops: list[Comparator] = []
    for i, j in reversed(live):
        if i in needed or j in needed:
            ops.append((i, j, i in needed, j in needed))
            needed |= {i, j}
    if any(w >= n for w in needed):
        raise AssertionError("pruned network reads a padding wire")  # pragma: no cover
    return ops[::-1]


@lru_cache(maxsize=None)
def sorting_network(k: int) -> tuple[Comparator, ...]:
    """A network sorting ``k`` wires ascending, checked on all 2^k 0/1 inputs."""
    x = np.array(list(itertools.product([False, True], repeat=k)), dtype=bool)
    ref = np.sort(x, axis=1)
    return tuple(_prune(x, list(range(k)), ref))


@lru_cache(maxsize=None)
def median_network(k: int) -> tuple[Comparator, ...]:
    """A network whose wire ``k*k // 2`` is the median of k*k inputs, given as k ascending columns of k.

    Wire ``c*k + r`` holds the r-th smallest of column c. Checked on all (k+1)^k admissible 0/1 inputs.
    """
    columns = [np.array([False] * (k - t) + [True] * t) for t in range(k + 1)]
    x = np.array([np.concatenate([columns[t] for t in combo])
                  for combo in itertools.product(range(k + 1), repeat=k)])
    ref = (x.sum(axis=1) > (k * k) // 2)[:, None]
    return tuple(_prune(x, [(k * k) // 2], ref))


def _apply(wires: list, network) -> None:
    import torch

    for i, j, need_lo, need_hi in network:
        a, b = wires[i], wires[j]
        if need_lo:
            wires[i] = torch.minimum(a, b)
        if need_hi:
            wires[j] = torch.maximum(a, b)


def median_filter(x, k: int):
    """k x k median of (..., H, W) with replicated borders (``cv2.medianBlur`` on float data), k = 3 or 5."""
    if k not in (3, 5):
        raise ValueError(f"median window must be 3 or 5, got {k}")
    return apply_median(x, k, sorting_network(k), median_network(k))


def apply_median(x, k: int, column_sort, selection):
    """:func:`median_filter` with its two networks given: the pure tensor part, for ``torch.compile``."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    r = k // 2
    lead = x.shape[:-2]
    p = F.pad(x.reshape(-1, 1, h, w), (r, r, r, r), mode="replicate")
    rows = [p[..., i:i + h, :] for i in range(k)]  # the k pixels of every column window, (N, 1, H, W + 2r)
    _apply(rows, column_sort)
    wires = [rows[row][..., c:c + w] for c in range(k) for row in range(k)]
    _apply(wires, selection)
    return wires[(k * k) // 2].reshape(*lead, h, w)
