"""Li, Chai & Chen's loss terms (eqs. 1-7) checked against direct numpy references."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aqa.heads.losses import (PAPER_MARGIN, RankingLoss, balanced_alpha, half_mse,  # noqa: E402
                              margin_in_units, pairwise_ranking_loss)


def _np_rank(s, g, delta):
    tot = 0.0
    for i in range(len(s)):
        for j in range(i + 1, len(s)):
            sg = np.sign(g[j] - g[i])
            if sg != 0:
                tot += max(0.0, -(s[j] - s[i]) * sg + delta)
    return tot


def _np_rank_grad(s, g, delta):
    """Eq. 5 with the sign factor written out (the paper's eq. 5 drops it; H is eq. 6)."""
    n = len(s)
    grad = np.zeros(n)
    for i in range(n):
        for j in range(n):
            if j == i:
                continue
            a, b = (i, j) if i < j else (j, i)
            sg = np.sign(g[b] - g[a])
            if sg == 0:
                continue
            active = (-(s[b] - s[a]) * sg + delta) > 0
            # d/ds_i of relu(-(s_b - s_a) sg + delta): +sg if i == a, -sg if i == b
            grad[i] += active * (sg if i == a else -sg)
    return grad


def test_half_mse_is_eq1():
    rng = np.random.default_rng(0)
    s, g = rng.normal(size=7), rng.normal(size=7)
    got = half_mse(torch.tensor(s), torch.tensor(g)).item()
    assert got == pytest.approx(np.sum((s - g) ** 2) / (2 * 7))


def test_half_mse_gradient_is_eq4():
    s = torch.tensor([1.0, 3.0, -2.0, 0.5], requires_grad=True)
    g = torch.tensor([0.0, 2.0, 2.0, 1.0])
    half_mse(s, g).backward()
    np.testing.assert_allclose(s.grad.numpy(), (s.detach() - g).numpy() / 4, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_loss_matches_eq2_with_ties(seed):
    rng = np.random.default_rng(seed)
    s = rng.normal(scale=3, size=9)
    g = rng.integers(0, 4, size=9).astype(float)  # many ties
    got = pairwise_ranking_loss(torch.tensor(s), torch.tensor(g), margin=2.0).item()
    assert got == pytest.approx(_np_rank(s, g, 2.0), rel=1e-9)
    n_untied = sum(np.sign(g[j] - g[i]) != 0 for i in range(9) for j in range(i + 1, 9))
    got_mean = pairwise_ranking_loss(torch.tensor(s), torch.tensor(g), margin=2.0,
                                     reduction="mean").item()
    assert got_mean == pytest.approx(_np_rank(s, g, 2.0) / n_untied, rel=1e-9)


def test_ranking_loss_zero_when_order_right_by_margin():
    g = torch.tensor([1.0, 2.0, 3.0])
    s = torch.tensor([0.0, 2.5, 5.0])  # consecutive gaps 2.5 > delta = 2
    assert pairwise_ranking_loss(s, g).item() == 0.0
    s_bad = torch.tensor([0.0, 1.0, 5.0])  # pair (0,1) gap 1 < 2 -> hinge 1
    assert pairwise_ranking_loss(s_bad, g).item() == pytest.approx(1.0)
    assert PAPER_MARGIN == 2.0


def test_ranking_loss_gradient_is_eq5():
    rng = np.random.default_rng(3)
    s0 = rng.normal(scale=2, size=8)
    g = rng.normal(size=8)
    s = torch.tensor(s0, requires_grad=True)
    pairwise_ranking_loss(s, torch.tensor(g), margin=2.0).backward()
    np.testing.assert_allclose(s.grad.numpy(), _np_rank_grad(s0, g, 2.0), atol=1e-12)


def test_balanced_alpha_is_eq7():
    rng = np.random.default_rng(4)
    s0, g = rng.normal(size=10), rng.normal(size=10)
    s = torch.tensor(s0, requires_grad=True)
    gt = torch.tensor(g)
    l1 = half_mse(s, gt)
    l2 = pairwise_ranking_loss(s, gt)
    alpha = balanced_alpha(l1, l2, s)
    expect = np.linalg.norm((s0 - g) / 10) / np.linalg.norm(_np_rank_grad(s0, g, 2.0))
    assert alpha == pytest.approx(expect, rel=1e-9)
    # after balancing, both terms push the predictions with the same gradient norm
    g1 = torch.autograd.grad(l1, s, retain_graph=True)[0].norm()
    g2 = torch.autograd.grad(alpha * l2, s)[0].norm()
    assert float(g1) == pytest.approx(float(g2), rel=1e-9)


def test_ranking_loss_wrapper_adds_balanced_term_and_records_alpha():
    rng = np.random.default_rng(5)
    s = torch.tensor(rng.normal(size=6), requires_grad=True)
    g = torch.tensor(rng.normal(size=6))
    base = half_mse(s, g)
    rl = RankingLoss()
    total = rl(base, s, g)
    assert rl.last_alpha > 0
    expect = base.item() + rl.last_alpha * pairwise_ranking_loss(s, g).item()
    assert total.item() == pytest.approx(expect)
    total.backward()
    assert torch.isfinite(s.grad).all()
    fixed = RankingLoss(alpha=0.25)
    assert fixed(half_mse(s, g), s, g).item() == pytest.approx(
        half_mse(s, g).item() + 0.25 * pairwise_ranking_loss(s, g).item())


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="alpha"):
        RankingLoss(alpha="fast")
    with pytest.raises(ValueError, match="alpha"):
        RankingLoss(alpha=-1.0)
    with pytest.raises(ValueError, match="same number"):
        pairwise_ranking_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="reduction"):
        pairwise_ranking_loss(torch.zeros(3), torch.zeros(3), reduction="max")
    with pytest.raises(ValueError, match="target_scale"):
        margin_in_units(2.0, 0.0)
    assert margin_in_units(2.0, 4.0) == 0.5
