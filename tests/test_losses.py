"""Losses against hand-computed values, and their behaviour at the extremes."""
from __future__ import annotations

import math

import pytest
import torch

from ssfer.algo.losses import (
    log_one_minus_softmax,
    negative_loss,
    positive_loss,
    soft_cross_entropy,
    supervised_loss,
)


def T(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_supervised_loss_by_hand():
    loss = supervised_loss(T([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1]))
    assert loss.item() == pytest.approx((math.log(1 + math.exp(-1)) + math.log(2)) / 2, abs=1e-6)


def test_soft_cross_entropy_by_hand_and_one_hot_equals_hard():
    assert soft_cross_entropy(T([[0.0, 0.0]]), T([[0.25, 0.75]])).item() == pytest.approx(math.log(2))
    z = T([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    labels = torch.tensor([2, 1])
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    assert soft_cross_entropy(z, one_hot).item() == pytest.approx(supervised_loss(z, labels).item())


def test_positive_loss_by_hand_averages_over_the_whole_batch():
    z = T([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    loss = positive_loss(z, torch.tensor([0, 2, 1]), T([1, 1, 0]))
    # CE_0 = log(1 + 2e^-2) = 0.23954, CE_1 = log(e + 2) = 1.55144, row 2 masked; / 3
    assert loss.item() == pytest.approx(0.596996, abs=1e-6)
    assert positive_loss(z, torch.tensor([0, 2, 1]), torch.zeros(3)).item() == 0.0


def test_negative_loss_by_hand_skips_samples_without_negatives():
    z = T([[0.0, 0.0, 0.0, 0.0],             # p = 0.25: −log 0.75 = 0.287682
           [5.0, 0.0, 0.0, 0.0],             # no negatives: not in the mean
           [math.log(2), 0.0, 0.0, 0.0]])    # p = (0.4, 0.2, ...): −(log 0.6 + log 0.8)/2
    n = T([[0, 1, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]])
    expected = (-math.log(0.75) - (math.log(0.6) + math.log(0.8)) / 2) / 2
    assert negative_loss(z, n).item() == pytest.approx(expected, abs=1e-6)  # 0.327334


def test_negative_loss_without_negatives_is_a_differentiable_zero():
    z = torch.randn(4, 7, requires_grad=True)
    loss = negative_loss(z, torch.zeros(4, 7))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(z.grad, torch.zeros(4, 7))


def test_negative_loss_finite_as_p_goes_to_one():
    z = T([[1e4, 0.0, 0.0, 0.0], [0.0, 1e4, -1e4, 0.0], [30.0, 0.0, 0.0, 0.0]]).requires_grad_()
    n = T([[1, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 0]])
    loss = negative_loss(z, n, eps=1e-6)
    assert torch.isfinite(loss)
    # row 0: clamped at −log(eps); row 1: (13.8155 + 0 + 0) / 3; row 2: ≈ 2e-13 each
    cap = -math.log(1e-6)
    assert loss.item() == pytest.approx((cap + cap / 3 + 0.0) / 3, abs=1e-4)
    loss.backward()
    assert torch.isfinite(z.grad).all()
    # row 2 keeps a (tiny, correct-sign) gradient: raising a negated class raises the loss
    assert (z.grad[2, 1:3] > 0).all()


def test_negative_loss_bf16_inputs():
    gen = torch.Generator().manual_seed(0)
    z = (torch.randn(64, 7, generator=gen) * 40).to(torch.bfloat16).requires_grad_()
    n = (torch.rand(64, 7, generator=gen) < 0.5).float()
    loss = negative_loss(z, n)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert z.grad.dtype == torch.bfloat16 and torch.isfinite(z.grad.float()).all()
    ref = negative_loss(z.detach().double(), n)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_log_one_minus_softmax_matches_direct_formula_and_stays_exact():
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(50, 6, generator=gen, dtype=torch.float64) * 3
    direct = torch.log1p(-torch.softmax(z, dim=1))
    assert torch.allclose(log_one_minus_softmax(z).double(), direct, atol=1e-5)
    # at z = (20, 0): 1 − p_0 = 1/(1 + e^20) underflows to 0 in float32; this form keeps it
    got = log_one_minus_softmax(T([[20.0, 0.0]]))[0, 0].item()
    assert got == pytest.approx(-math.log1p(math.exp(20.0)), rel=1e-6)


def test_losses_never_read_tensor_values():
    z = torch.randn(8, 7, device="meta", requires_grad=True)
    labels = torch.zeros(8, dtype=torch.int64, device="meta")
    loss = (supervised_loss(z, labels) + positive_loss(z, labels, torch.ones(8, device="meta"))
            + negative_loss(z, torch.ones(8, 7, device="meta")))
    loss.backward()
    assert z.grad.shape == (8, 7)


@pytest.mark.parametrize("call, message", [
    (lambda: negative_loss(torch.zeros(3, 4), torch.zeros(3, 5)), "neg_mask shape"),
    (lambda: positive_loss(torch.zeros(3, 4), torch.zeros(3, dtype=torch.int64),
                           torch.zeros(2)), "mask must have shape"),
    (lambda: negative_loss(torch.zeros(3), torch.zeros(3)), "expected logits of shape"),
    (lambda: negative_loss(torch.zeros(3, 4), torch.zeros(3, 4), eps=0.0), "eps=0.0"),
])
def test_bad_inputs_are_reported(call, message):
    with pytest.raises(ValueError, match=message):
        call()
