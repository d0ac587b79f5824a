"""The comparator-network median filter: equal to cv2.medianBlur (ties, borders), networks proven by 0-1 inputs."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
torch = pytest.importorskip("torch")

from aqa.extract.flow.median import (  # noqa: E402
    batcher_comparators,
    median_filter,
    median_network,
    sorting_network,
)


@pytest.mark.parametrize("k", [3, 5])
def test_median_equals_opencv_with_ties_and_borders(k):
    rng = np.random.default_rng(k)
    x = (rng.random((3, 2, 37, 53)) * 255).astype(np.float32)
    x[0, 0] = rng.integers(0, 3, (37, 53))  # many ties
    x[1, 1, :, :4] = 1e6  # a bright band at the border
    got = median_filter(torch.from_numpy(x), k).numpy()
    ref = np.stack([np.stack([cv2.medianBlur(x[b, c], k) for c in range(2)]) for b in range(3)])
    np.testing.assert_array_equal(got, ref)


def test_networks_are_correct_and_pruned():
    n = 8
    comps = batcher_comparators(n)
    assert len(comps) == 19  # Batcher's odd-even merge sort on 8 wires
    for bits in itertools.product([0, 1], repeat=n):
        w = list(bits)
        for i, j in comps:
            w[i], w[j] = min(w[i], w[j]), max(w[i], w[j])
        assert w == sorted(bits)
    assert len(sorting_network(5)) == 9  # the optimal 5-sorter size
    ops = median_network(5)
    # fewer comparators than the 25-input sorter would need, and none reads a padding wire
    assert len(ops) < 100 and max(max(i, j) for i, j, *_ in ops) < 25
    x = np.random.default_rng(0).random((200, 5, 5))
    cols = np.sort(x, axis=1)  # wire c*k + r = r-th smallest of column c
    w = list(cols.transpose(2, 1, 0).reshape(25, -1))
    for i, j, lo, hi in ops:
        a, b = w[i], w[j]
        w[i], w[j] = np.minimum(a, b), np.maximum(a, b)
    np.testing.assert_array_equal(w[12], np.median(x.reshape(200, 25), axis=1))
    with pytest.raises(ValueError, match="3 or 5"):
        median_filter(torch.zeros(1, 1, 8, 8), 7)
    with pytest.raises(ValueError, match="power of two"):
        batcher_comparators(6)
