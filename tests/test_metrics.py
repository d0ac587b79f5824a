import math

import numpy as np
import pytest

from aqa.heads.metrics import evaluate, fisher_z_average, mse, relative_l2, spearman, summarize_seeds


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1,2,3,4) vs (2,1,4,3): 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*4/60
    assert spearman([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
    with pytest.warns(RuntimeWarning):
        assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="differ in length"):
        spearman([1, 2], [1, 2, 3])


def test_fisher_z():
    assert fisher_z_average([0.5, 0.5]) == pytest.approx(0.5)
    ref = np.tanh((np.arctanh(0.9) + np.arctanh(0.3)) / 2)
    assert fisher_z_average([0.9, 0.3]) == pytest.approx(ref)
    assert fisher_z_average([0.9, 0.3]) > (0.9 + 0.3) / 2         # z-averaging weighs high rho more
    assert fisher_z_average([0.9, float("nan")]) == pytest.approx(0.9)
    assert fisher_z_average([1.0, 1.0]) == pytest.approx(0.999)
    # a perfect rho (one tiny action) is clipped to 0.999 instead of pulling the average to ~1
    assert fisher_z_average([1.0, 0.5]) == pytest.approx(np.tanh((np.arctanh(0.999) + np.arctanh(0.5)) / 2))
    assert fisher_z_average([1.0, 0.5]) < 0.98
    assert fisher_z_average([-1.0, 1.0]) == pytest.approx(0.0, abs=1e-12)
    assert fisher_z_average([1.0, 0.5], clip=0.9) == pytest.approx(
        np.tanh((np.arctanh(0.9) + np.arctanh(0.5)) / 2))
    with pytest.raises(ValueError, match="clip"):
        fisher_z_average([0.5], clip=1.0)


def test_relative_l2_and_mse():
    y, p = np.array([0.0, 10.0, 5.0]), np.array([1.0, 8.0, 5.0])
    assert relative_l2(y, p) == pytest.approx(((1 / 10) ** 2 + (2 / 10) ** 2 + 0) / 3)
    assert relative_l2(y, p, 0, 20) == pytest.approx(((1 / 20) ** 2 + (2 / 20) ** 2) / 3)
    assert mse(y, p) == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match="s_max > s_min"):
        relative_l2([1, 1], [1, 2])


def test_evaluate_per_action():
    y = np.array([1, 2, 3, 4, 10, 20, 30, 40.0])
    p = np.array([1, 2, 4, 3, 10, 20, 30, 40.0])
    g = ["a"] * 4 + ["b"] * 4
    m = evaluate(y, p, groups=g, score_ranges={"b": (0, 100)})
    assert m["per_action"]["b"]["spearman"] == pytest.approx(1.0)
    assert m["per_action"]["a"]["spearman"] == pytest.approx(0.8)
    assert m["spearman_fisher_z"] == pytest.approx(fisher_z_average([0.8, 1.0]))
    assert m["per_action"]["a"]["rl2"] == pytest.approx(relative_l2(y[:4], p[:4]))
    assert m["per_action"]["b"]["rl2"] == 0.0
    assert m["rl2"] == pytest.approx(relative_l2(y[:4], p[:4]) / 2)
    assert m["n"] == 8 and m["mse"] == pytest.approx(mse(y, p))


def test_evaluate_warns_on_tiny_actions():
    y, p = np.array([1, 2, 3, 4, 5, 6.0]), np.array([1, 3, 2, 4, 5, 6.0])
    with pytest.warns(RuntimeWarning, match=r"fewer than 3 samples \{'b': 2\}"):
        m = evaluate(y, p, groups=["a"] * 4 + ["b"] * 2)
    assert m["per_action"]["b"]["spearman"] == pytest.approx(1.0)
    assert m["spearman_fisher_z"] == pytest.approx(fisher_z_average([0.8, 1.0]))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(y, p, groups=["a"] * 3 + ["b"] * 3)


def test_summarize_seeds():
    s = summarize_seeds([{"spearman": 0.5, "mse": 1.0}, {"spearman": 0.7, "mse": 3.0}])
    assert s["spearman"]["mean"] == pytest.approx(0.6)
    assert s["spearman"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert s["mse"]["n"] == 2
    with pytest.raises(ValueError):
        summarize_seeds([])


def test_evaluate_without_groups_uses_the_unnamed_actions_range():
    y, p = np.array([10.0, 20.0, 30.0]), np.array([12.0, 18.0, 33.0])
    m = evaluate(y, p, score_ranges={"": (0.0, 100.0)})
    assert m["rl2"] == pytest.approx(relative_l2(y, p, 0.0, 100.0))
    assert evaluate(y, p)["rl2"] == pytest.approx(relative_l2(y, p))   # else the truth's own range
    assert m["rl2"] != pytest.approx(evaluate(y, p)["rl2"])
