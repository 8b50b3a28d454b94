"""Complementary-label selectors against hand-computed sets."""
from __future__ import annotations

import math
import statistics

import pytest
import torch

from ssfer.algo.negatives import (
    NEGATIVES,
    CCLSelector,
    NLNLSelector,
    NoNegatives,
    SNLSelector,
    UPSSelector,
    build_negatives,
)


def T(rows):
    return torch.tensor(rows, dtype=torch.float32)


def random_logits(seed, n=4000, c=7):
    """Logits over a wide range of scales, with many exact ties (rounded values)."""
    gen = torch.Generator().manual_seed(seed)
    scale = torch.rand(n, 1, generator=gen) * 20
    z = torch.randn(n, c, generator=gen) * scale
    z[: n // 4] = z[: n // 4].round()  # ties, including all-equal rows
    z[:5] = 0.0
    accepted = (torch.rand(n, generator=gen) < 0.4).float()
    return z, accepted, gen


def argmax_negated(neg, z):
    return neg.gather(1, z.argmax(dim=1, keepdim=True)).sum().item()


def test_no_negatives_is_all_zero():
    neg = NoNegatives().select(torch.randn(5, 7), torch.zeros(5))
    assert neg.dtype == torch.float32 and neg.shape == (5, 7) and neg.sum() == 0


# ---------------------------------------------------------------- NLNL

def test_nlnl_one_non_argmax_class_per_sample_uniformly():
    z, accepted, _ = random_logits(0)
    neg = NLNLSelector().select(z, accepted, torch.Generator().manual_seed(1))
    assert neg.sum(dim=1).tolist() == [1.0] * len(z)
    assert argmax_negated(neg, z) == 0
    # with the argmax fixed at class 2, each of the other 6 classes has probability 1/6
    z = torch.zeros(6000, 7)
    z[:, 2] = 1.0
    counts = NLNLSelector().select(z, torch.zeros(6000), torch.Generator().manual_seed(2)).sum(0)
    assert counts[2] == 0
    others = counts[torch.arange(7) != 2]
    assert (others - 1000).abs().max() < 120  # 1000 ± 4.2σ, deterministic at this seed


def test_nlnl_is_seeded_by_the_generator():
    z = torch.randn(200, 7)
    sel = NLNLSelector()
    a = sel.select(z, torch.zeros(200), torch.Generator().manual_seed(5))
    b = sel.select(z, torch.zeros(200), torch.Generator().manual_seed(5))
    c = sel.select(z, torch.zeros(200), torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_nlnl_only_rejected():
    z = torch.randn(6, 4)
    accepted = T([1, 0, 1, 0, 0, 1])
    neg = NLNLSelector(only_rejected=True).select(z, accepted, torch.Generator().manual_seed(0))
    assert neg.sum(dim=1).tolist() == [0.0, 1.0, 0.0, 1.0, 1.0, 0.0]


# ---------------------------------------------------------------- UPS

def test_ups_probability_at_temperature_by_hand():
    # z/2 = (2, 0, -2): softmax = (0.8668, 0.1173, 0.0159) -> only class 2 below 0.05
    z = T([[4.0, 0.0, -4.0], [-4.0, 4.0, 4.0]])
    neg = UPSSelector().select(z, T([1, 0]))
    # row 1: z/2 = (-2, 2, 2) -> (0.0090, 0.4955, 0.4955): class 0
    assert neg.tolist() == [[0, 0, 1], [1, 0, 0]]


def test_ups_spread_filter_and_only_rejected():
    z = T([[4.0, -4.0, -4.0], [4.0, -4.0, -4.0]])  # classes 1, 2 below 0.05 in both rows
    spread = T([[0.0, 0.001, 0.02], [0.0, 0.02, 0.001]])
    neg = UPSSelector(kappa_neg=0.005).select(z, T([1, 0]), spread=spread)
    assert neg.tolist() == [[0, 1, 0], [0, 0, 1]]
    neg = UPSSelector(only_rejected=True).select(z, T([1, 0]))
    assert neg.tolist() == [[0, 0, 0], [0, 1, 1]]


def test_ups_spread_is_required_exactly_when_kappa_neg_is_set():
    z, spread = T([[4.0, -4.0, -4.0]]), T([[0.0, 0.001, 0.02]])
    with pytest.raises(ValueError, match="pass spread= exactly when kappa_neg is set"):
        UPSSelector(kappa_neg=0.005).select(z, T([0]))        # the option would do nothing
    with pytest.raises(ValueError, match="pass spread= exactly when kappa_neg is set"):
        UPSSelector().select(z, T([0]), spread=spread)         # the spread would do nothing
    assert UPSSelector().mc_passes_needed == 0
    assert UPSSelector(kappa_neg=0.005, mc_passes=4).mc_passes_needed == 4


def test_ups_spread_is_the_std_of_tempered_softmax_over_passes():
    sel = UPSSelector(T=2.0, kappa_neg=0.01)
    mc = T([[[2.0, 0.0]], [[0.0, 0.0]], [[4.0, 0.0]]])       # 3 passes, 1 sample, 2 classes
    p0 = [1 / (1 + math.exp(-d)) for d in (1.0, 0.0, 2.0)]   # softmax(z / 2)_0 in each pass
    assert sel.spread_from(mc)[0].tolist() == pytest.approx([statistics.stdev(p0)] * 2, abs=1e-6)  # UPS: unbiased


# ---------------------------------------------------------------- CCL

def test_ccl_lowest_floor_frac_times_c():
    z = T([[5, 1, 2, 0, -1, 3, 4]])  # 7 classes: ⌊0.7·7⌋ = 4 lowest = {4, 3, 1, 2}
    assert CCLSelector().select(z, T([1])).tolist() == [[0, 1, 1, 1, 1, 0, 0]]
    z10 = torch.arange(10.0).flip(0).unsqueeze(0)  # ⌊0.7·10⌋ = 7: classes 3..9
    assert CCLSelector().select(z10, T([0])).tolist() == [[0, 0, 0] + [1] * 7]
    assert CCLSelector(frac=0.3).select(z10, T([0])).sum().item() == 3
    assert CCLSelector(frac=0.0).select(z10, T([0])).sum().item() == 0


def test_ccl_never_picks_argmax_even_with_ties():
    z, accepted, _ = random_logits(3)
    neg = CCLSelector().select(z, accepted)
    assert neg.sum(dim=1).unique().tolist() == [4.0]
    assert argmax_negated(neg, z) == 0
    # every negated class is at or below every kept non-argmax class
    lowest_kept = torch.where(neg.bool(), torch.inf, z).min(1).values
    highest_neg = torch.where(neg.bool(), z, -torch.inf).max(1).values
    assert (highest_neg <= lowest_kept).all()


def test_ccl_only_rejected():
    neg = CCLSelector(only_rejected=True).select(torch.randn(3, 7), T([1, 0, 1]))
    assert neg.sum(dim=1).tolist() == [0.0, 4.0, 0.0]


# ---------------------------------------------------------------- SNL

def test_snl_by_hand():
    z = T([[4.0, 0.0, -4.0, -4.0],    # T=2 probs (0.853, 0.116, 0.016, 0.016)
           [4.0, 0.0, -4.0, -4.0],    # same, but accepted -> nothing
           [-4.0, -4.0, 4.0, 0.0]])   # (0.016, 0.016, 0.853, 0.116)
    neg = SNLSelector().select(z, T([0, 1, 0]))
    assert neg.tolist() == [[0, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0]]


def test_snl_protect_top():
    z = T([[6.0, -1.0, -2.0, -3.0]])  # T=2 probs (0.944, 0.028, 0.017, 0.010): all below 0.05
    assert SNLSelector(protect_top=1).select(z, T([0])).tolist() == [[0, 1, 1, 1]]
    assert SNLSelector(protect_top=2).select(z, T([0])).tolist() == [[0, 0, 1, 1]]
    assert SNLSelector(protect_top=3).select(z, T([0])).tolist() == [[0, 0, 0, 1]]


def test_snl_random_property_never_argmax_never_accepted():
    z, accepted, _ = random_logits(7)
    for tau_neg, T_n in [(0.05, 2.0), (0.3, 1.0), (0.9, 5.0)]:  # 0.3, 0.9 > 1/C stress the guard
        neg = SNLSelector(T=T_n, tau_neg=tau_neg).select(z, accepted)
        assert set(neg.unique().tolist()) <= {0.0, 1.0}
        assert argmax_negated(neg, z) == 0
        assert neg[accepted.bool()].sum() == 0
        q = torch.softmax(z / T_n, dim=1)
        assert (neg.bool() <= (q < tau_neg)).all()  # only classes the teacher deems absent
        # and every such class of a rejected sample, except its top one, is negated
        expected = (q < tau_neg) & (1 - accepted).bool().unsqueeze(1)
        expected.scatter_(1, z.argmax(1, keepdim=True), False)
        assert torch.equal(neg.bool(), expected)
    assert neg.sum() > 0


# ---------------------------------------------------------------- shared

@pytest.mark.parametrize("kind", sorted(NEGATIVES))
def test_every_selector_never_negates_argmax(kind):
    z, accepted, gen = random_logits(11)
    neg = build_negatives(kind).select(z, accepted, gen)
    assert neg.dtype == torch.float32 and neg.shape == z.shape
    assert argmax_negated(neg, z) == 0


@pytest.mark.parametrize("kind", sorted(NEGATIVES))
def test_selectors_never_read_tensor_values(kind):
    # meta tensors have no data, so any host read (.item(), bool(), nonzero) raises
    z = torch.randn(8, 7, device="meta")
    neg = build_negatives(kind).select(z, torch.ones(8, device="meta"))
    assert neg.device.type == "meta" and neg.shape == (8, 7)


def test_build_negatives_rejects_unknown_options_naming_them():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['tau'\]"):
        build_negatives("snl", tau=0.1)
    with pytest.raises(ValueError, match="unknown negative selector 'snll'"):
        build_negatives("snll")
    assert build_negatives("snl", T=1.5, protect_top=2).protect_top == 2


@pytest.mark.parametrize("make, message", [
    (lambda: SNLSelector(protect_top=0), "protect_top=0"),
    (lambda: SNLSelector(tau_neg=1.0), "tau_neg=1.0"),
    (lambda: UPSSelector(T=0), "T=0"),
    (lambda: UPSSelector(kappa_neg=0.0), "kappa_neg=0.0"),
    (lambda: UPSSelector(kappa_neg=0.005, mc_passes=1), "mc_passes=1"),
    (lambda: CCLSelector(frac=1.0), "frac=1.0"),
])
def test_bad_options_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_accepted_shape_is_checked():
    with pytest.raises(ValueError, match=r"SNLSelector.select: accepted must have shape \(4,\)"):
        SNLSelector().select(torch.randn(4, 7), torch.ones(3))
