"""Threshold rules against hand-computed masks and thresholds."""
from __future__ import annotations

import io
import math

import pytest
import torch

from ssfer.algo.thresholds import (
    THRESHOLDS,
    AdaCMThreshold,
    DTAThreshold,
    FixedThreshold,
    FlexMatchThreshold,
    FreeMatchThreshold,
    StepStats,
    Threshold,
    build_threshold,
    dta_ramp,
    threshold_options,
)


def T(rows):
    return torch.tensor(rows, dtype=torch.float32)


def L(values):
    return torch.tensor(values, dtype=torch.int64)


def stats(probs_u=None, idx_u=None, probs_l=None, labels_l=None, progress=0.0, epoch=0):
    """StepStats with harmless filler for the fields a rule ignores (C = 3)."""
    filler = T([[0.5, 0.3, 0.2]])
    return StepStats(
        probs_u=filler if probs_u is None else T(probs_u),
        idx_u=L([0]) if idx_u is None else L(idx_u),
        probs_l=filler if probs_l is None else T(probs_l),
        labels_l=L([2]) if labels_l is None else L(labels_l),
        progress=progress, epoch=epoch)


# ---------------------------------------------------------------- fixed

def test_fixed_mask_is_confidence_at_least_tau_boundary_inclusive():
    th = FixedThreshold(3, tau=0.95)
    probs = T([[0.95, 0.03, 0.02], [0.9499, 0.04, 0.0101], [0.01, 0.98, 0.01], [0.4, 0.3, 0.3]])
    th.update(stats(probs_u=probs.tolist(), idx_u=[0, 1, 2, 3]))
    mask = th.mask(probs)
    assert mask.dtype == torch.float32
    assert mask.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert th.per_class().tolist() == pytest.approx([0.95] * 3)


def test_fixed_mask_widens_bf16_probs_before_comparing():
    # 0.95 and 0.7 are not bf16 numbers: bf16 rounds them to 0.94921875 and 0.69921875.
    # Compared in bf16, those probabilities would meet thresholds they lie below.
    probs = torch.tensor([[0.95, 0.05], [0.96, 0.04], [0.3, 0.7], [0.25, 0.75]], dtype=torch.bfloat16)
    assert probs[0, 0].item() == 0.94921875 and probs[2, 1].item() == 0.69921875
    assert FixedThreshold(2, tau=0.95).mask(probs).tolist() == [0.0, 1.0, 0.0, 0.0]
    assert FixedThreshold(2, tau=0.7).mask(probs).tolist() == [1.0, 1.0, 0.0, 1.0]


# ---------------------------------------------------------------- FlexMatch

# Three steps on an unlabeled set of 8 samples, C = 3, τ = 0.9.
FLEX_STEPS = [
    ([0, 1, 2], [[0.95, 0.03, 0.02],    # pred 0, selected
                 [0.05, 0.91, 0.04],    # pred 1, selected
                 [0.50, 0.30, 0.20]]),  # pred 0, below τ
    ([2, 3, 4], [[0.96, 0.02, 0.02],    # pred 0, selected
                 [0.02, 0.03, 0.95],    # pred 2, selected
                 [0.30, 0.60, 0.10]]),  # pred 1, below τ
    ([5, 0, 1], [[0.35, 0.33, 0.32],    # pred 0
                 [0.20, 0.20, 0.60],    # pred 2 (sample 0 keeps its old class 0)
                 [0.40, 0.35, 0.25]]),  # pred 0
]


def run_flex(**kwargs):
    th = FlexMatchThreshold(3, num_unlabeled=8, tau=0.9, **kwargs)
    seen = []
    for idx, probs in FLEX_STEPS:
        th.update(stats(probs_u=probs, idx_u=idx))
        seen.append((th.per_class().tolist(), th.mask(T(probs)).tolist(),
                     th.selected_label.tolist()))
    return seen


def test_flexmatch_warmup_convex_by_hand():
    (thr1, mask1, sel1), (thr2, mask2, sel2), (thr3, mask3, sel3) = run_flex()
    # step 1: nothing selected yet, σ = 0 -> β = 0 -> every pseudo label accepted
    assert thr1 == [0.0, 0.0, 0.0] and mask1 == [1.0, 1.0, 1.0]
    assert sel1 == [0, 1, -1, -1, -1, -1, -1, -1]
    # step 2: σ = (1, 1, 0), #unused = 6 -> β = (1/6, 1/6, 0); τβ/(2-β) = 0.9/11
    assert thr2 == pytest.approx([0.9 / 11, 0.9 / 11, 0.0], abs=1e-6)
    assert mask2 == [1.0, 1.0, 1.0]
    assert sel2 == [0, 1, 0, 2, -1, -1, -1, -1]
    # step 3: σ = (2, 1, 1), #unused = 4 -> β = (0.5, 0.25, 0.25)
    assert thr3 == pytest.approx([0.9 * 0.5 / 1.5, 0.9 * 0.25 / 1.75, 0.9 * 0.25 / 1.75], abs=1e-6)
    assert mask3 == [1.0, 1.0, 1.0]
    assert sel3 == sel2  # nothing reached τ in step 3; old selections are kept


def test_flexmatch_warmup_once_a_class_outgrows_the_unused():
    """β_c = σ_c / max(max σ, #unused) once max σ > #unused, and q̂ = τ counts as selected.

    Fails if the denominator is #unused alone or max(Σσ, #unused), or if selection
    is q̂ > τ: each gives other thresholds below."""
    th = FlexMatchThreshold(3, num_unlabeled=8, tau=0.75)
    th.update(stats(probs_u=[[0.90, 0.05, 0.05], [0.80, 0.10, 0.10], [0.85, 0.10, 0.05],
                             [0.75, 0.125, 0.125],  # exactly τ (both exact in binary): selected
                             [0.05, 0.90, 0.05], [0.50, 0.30, 0.20]], idx_u=[0, 1, 2, 3, 4, 5]))
    assert th.selected_label.tolist() == [0, 0, 0, 0, 1, -1, -1, -1]
    # σ = (4, 1, 0), #unused = 3 < max σ = 4: β = (1, 1/4, 0) (#unused: (4/3, 1/3, 0);
    # Σσ = 5: (4/5, 1/5, 0); with q̂ > τ, σ = (3, 1, 0) and β = (3/4, 1/4, 0))
    th.update(stats(probs_u=[[0.70, 0.20, 0.10], [0.12, 0.11, 0.77], [0.30, 0.60, 0.10]], idx_u=[6, 7, 5]))
    assert th.beta.tolist() == pytest.approx([1.0, 0.25, 0.0], abs=1e-7)
    assert th.per_class().tolist() == pytest.approx([0.75, 0.75 * 0.25 / 1.75, 0.0], abs=1e-7)
    assert th.mask(T([[0.74, 0.16, 0.10], [0.75, 0.15, 0.10], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7]])).tolist() == \
        [0.0, 1.0, 1.0, 1.0]


def test_flexmatch_without_warmup_divides_by_largest_class():
    (thr1, mask1, _), (thr2, mask2, _), (thr3, mask3, _) = run_flex(warmup=False)
    assert thr1 == [0.0, 0.0, 0.0] and mask1 == [1.0, 1.0, 1.0]
    # β = σ / max σ = (1, 1, 0): classes 0 and 1 need the full τ = 0.9
    assert thr2 == pytest.approx([0.9, 0.9, 0.0], abs=1e-6)
    assert mask2 == [1.0, 1.0, 0.0]  # 0.60 on class 1 < 0.9
    # β = (1, 0.5, 0.5)
    assert thr3 == pytest.approx([0.9, 0.3, 0.3], abs=1e-6)
    assert mask3 == [0.0, 1.0, 0.0]


def test_flexmatch_linear_and_concave_mappings():
    (_, _, _), (_, _, _), (thr3, mask3, _) = run_flex(mapping="linear")
    assert thr3 == pytest.approx([0.45, 0.225, 0.225], abs=1e-6)
    assert mask3 == [0.0, 1.0, 0.0]  # 0.35 and 0.40 on class 0 < 0.45
    *_, (thr3c, _, _) = run_flex(mapping="concave")
    assert thr3c == pytest.approx([0.9 * math.log2(1.5), 0.9 * math.log2(1.25),
                                   0.9 * math.log2(1.25)], abs=1e-6)


def test_flexmatch_repeated_index_keeps_the_selected_copy():
    th = FlexMatchThreshold(3, num_unlabeled=4, tau=0.9)
    # sample 3 twice in one batch: the selected copy first, a rejected one after it
    th.update(stats(probs_u=[[0.95, 0.03, 0.02], [0.50, 0.30, 0.20]], idx_u=[3, 3]))
    assert th.selected_label.tolist() == [-1, -1, -1, 0]
    # the rejected copy first, then a selected one
    th.update(stats(probs_u=[[0.50, 0.30, 0.20], [0.03, 0.95, 0.02]], idx_u=[2, 2]))
    assert th.selected_label.tolist() == [-1, -1, 1, 0]
    # selected copies that disagree: the last in the batch wins; rejected copies change nothing
    th.update(stats(probs_u=[[0.02, 0.95, 0.03], [0.4, 0.3, 0.3], [0.02, 0.03, 0.95], [0.3, 0.3, 0.4]],
                    idx_u=[1, 1, 1, 3]))
    assert th.selected_label.tolist() == [-1, 2, 1, 0]


def test_flexmatch_matches_a_sample_by_sample_loop_on_batches_full_of_repeats():
    gen = torch.Generator().manual_seed(3)
    th = FlexMatchThreshold(4, num_unlabeled=6, tau=0.6)
    expected = [-1] * 6
    for _ in range(30):
        probs = torch.softmax(3 * torch.randn(10, 4, generator=gen), dim=1)
        idx = torch.randint(0, 6, (10,), generator=gen)
        th.update(StepStats(probs, idx, probs, idx % 4, 0.0, 0))
        conf, pred = probs.max(1)
        for i, c, p in zip(idx.tolist(), conf.tolist(), pred.tolist()):  # USB: idx[select] in batch order
            if c >= float(torch.tensor(0.6)):  # τ as the rule holds it, in float32
                expected[i] = p
        assert th.selected_label.tolist() == expected


# ---------------------------------------------------------------- FreeMatch

def test_freematch_ema_after_k_steps_matches_closed_form():
    m, k = 0.9, 3
    th = FreeMatchThreshold(3, momentum=m)
    batch = [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]  # mean q̂ 0.65, mean q (0.4, 0.4, 0.2)
    for _ in range(k):
        th.update(stats(probs_u=batch, idx_u=[0, 1]))
    tau = 0.65 + (1 / 3 - 0.65) * m ** k
    p = [x + (1 / 3 - x) * m ** k for x in (0.4, 0.4, 0.2)]
    assert th.tau_global.item() == pytest.approx(tau, abs=1e-6)
    assert th.p_model.tolist() == pytest.approx(p, abs=1e-6)
    expected = [tau * x / max(p) for x in p]  # (0.41915, 0.41915, 0.35450)
    assert th.per_class().tolist() == pytest.approx(expected, abs=1e-6)
    probs = T([[0.40, 0.35, 0.25], [0.42, 0.30, 0.28], [0.30, 0.34, 0.36], [0.33, 0.32, 0.35]])
    assert th.mask(probs).tolist() == [0.0, 1.0, 1.0, 0.0]


def test_freematch_starts_at_one_over_c_with_default_momentum():
    th = FreeMatchThreshold(4)
    assert th.per_class().tolist() == pytest.approx([0.25] * 4)
    th.update(StepStats(T([[0.7, 0.1, 0.1, 0.1]]), L([0]), T([[0.25] * 4]), L([0]), 0.0, 0))
    assert th.tau_global.item() == pytest.approx(0.999 * 0.25 + 0.001 * 0.7, abs=1e-7)


def test_freematch_use_quantile_takes_the_batch_80th_percentile_of_confidence():
    th = FreeMatchThreshold(3, momentum=0.5, use_quantile=True)
    # q̂ = 0.9, 0.6, 0.7, 0.4, 0.8: sorted, position 0.8·4 = 3.2 -> 0.8 + 0.2·(0.9 − 0.8) = 0.82
    batch = [[0.9, 0.05, 0.05], [0.2, 0.6, 0.2], [0.1, 0.2, 0.7], [0.4, 0.3, 0.3], [0.1, 0.8, 0.1]]
    th.update(stats(probs_u=batch, idx_u=[0, 1, 2, 3, 4]))
    assert th.tau_global.item() == pytest.approx(0.5 / 3 + 0.5 * 0.82, abs=1e-6)
    mean = FreeMatchThreshold(3, momentum=0.5)
    mean.update(stats(probs_u=batch, idx_u=[0, 1, 2, 3, 4]))
    assert mean.tau_global.item() == pytest.approx(0.5 / 3 + 0.5 * 0.68, abs=1e-6)  # mean q̂ = 0.68
    assert th.p_model.tolist() == pytest.approx(mean.p_model.tolist())  # p̃ is the same either way


def test_freematch_clip_thresh_caps_the_global_threshold_at_095():
    sure = [[0.99, 0.005, 0.005], [0.005, 0.99, 0.005]]
    clipped, free = FreeMatchThreshold(3, momentum=0.0, clip_thresh=True), FreeMatchThreshold(3, momentum=0.0)
    for th in (clipped, free):
        th.update(stats(probs_u=sure, idx_u=[0, 1]))
    assert free.tau_global.item() == pytest.approx(0.99, abs=1e-6)
    assert clipped.tau_global.item() == pytest.approx(0.95, abs=1e-7)
    assert clipped.mask(T([[0.96, 0.02, 0.02], [0.02, 0.97, 0.01]])).tolist() == [1.0, 1.0]
    assert free.mask(T([[0.96, 0.02, 0.02], [0.02, 0.97, 0.01]])).tolist() == [0.0, 0.0]


def test_freematch_usb_options_pass_build_threshold_and_config_validation():
    from ssfer.config import Config, ConfigError

    th = build_threshold("freematch", 7, 10, use_quantile=True, clip_thresh=True)
    assert th.use_quantile and th.clip_thresh
    cfg = Config.default().with_overrides({"algo.name": "freematch",
                                           "algo.threshold_args": {"use_quantile": True, "clip_thresh": True}})
    assert cfg.algo.threshold_args == {"use_quantile": True, "clip_thresh": True}
    with pytest.raises(ConfigError, match="algo.threshold_args.*use_quantile='yes' must be true or false"):
        Config.default().with_overrides({"algo.name": "freematch", "algo.threshold_args": {"use_quantile": "yes"}})


# ---------------------------------------------------------------- Ada-CM

def test_adacm_floor_ramp_and_once_per_epoch():
    th = AdaCMThreshold(3)  # floor 0.8, scale 0.97
    assert th.per_class().tolist() == pytest.approx([0.8] * 3)
    # epoch 0: correct class-0 confidences 0.99, 0.97, 0.93; class 1: 0.96; one wrong sample
    th.update(stats(probs_l=[[0.99, 0.005, 0.005], [0.97, 0.02, 0.01],
                             [0.60, 0.30, 0.10], [0.02, 0.96, 0.02]],
                    labels_l=[0, 0, 1, 1], epoch=0))
    th.update(stats(probs_l=[[0.93, 0.05, 0.02]], labels_l=[0], epoch=0))
    assert th.per_class().tolist() == pytest.approx([0.8] * 3)  # not before the epoch ends
    # first step of epoch 1 applies epoch 0: 0.97 * 0.9633 / (1 + e^-1) = 0.683 -> floor
    th.update(stats(probs_l=[[0.99, 0.005, 0.005], [0.05, 0.90, 0.05], [0.01, 0.01, 0.98]],
                    labels_l=[0, 1, 2], epoch=1))
    assert th.per_class().tolist() == pytest.approx([0.8] * 3)
    th.update(stats(probs_l=[[0.2, 0.7, 0.1]], labels_l=[0], epoch=1))  # wrong: ignored
    # epoch 2 applies epoch 1, whose only correct samples came in its first step
    th.update(stats(probs_l=[[0.95, 0.03, 0.02]], labels_l=[0], epoch=2))
    r2 = 1 / (1 + math.exp(-2))
    expected = [0.97 * 0.99 * r2, 0.8, 0.97 * 0.98 * r2]  # 0.8458, floor (0.769), 0.8373
    assert th.per_class().tolist() == pytest.approx(expected, abs=1e-5)
    assert th.epoch == 2
    # repeated steps inside epoch 2 leave the thresholds alone
    th.update(stats(probs_l=[[0.99, 0.005, 0.005]], labels_l=[0], epoch=2))
    assert th.per_class().tolist() == pytest.approx(expected, abs=1e-5)
    probs = T([[0.84, 0.10, 0.06], [0.85, 0.10, 0.05], [0.05, 0.81, 0.14], [0.1, 0.07, 0.83]])
    assert th.mask(probs).tolist() == [0.0, 1.0, 1.0, 0.0]
    # epoch 3 applies epoch 2: only class 0 had correct samples; classes 1, 2 fall to the floor
    th.update(stats(epoch=3))
    r3 = 1 / (1 + math.exp(-3))
    assert th.per_class().tolist() == pytest.approx([0.97 * 0.97 * r3, 0.8, 0.8], abs=1e-5)


def test_adacm_rejects_epoch_going_back():
    th = AdaCMThreshold(3)
    th.update(stats(epoch=2))
    with pytest.raises(ValueError, match="epoch went back from 2 to 1"):
        th.update(stats(epoch=1))


# ---------------------------------------------------------------- DTA

def test_dta_ramp_values():
    assert dta_ramp(0.0) == pytest.approx(0.8)  # the default start
    assert dta_ramp(1.0) == pytest.approx(1.0)
    assert dta_ramp(0.5, start=0.5) == pytest.approx(0.959232, abs=1e-6)  # hand: σ(2.5), σ(-2.5), σ(7.5)
    assert dta_ramp(0.5) == pytest.approx(0.8 + 0.2 * (0.959232 - 0.5) / 0.5, abs=1e-6)
    assert dta_ramp(0.5, "linear", start=0.5) == pytest.approx(0.75)
    assert dta_ramp(0.5, "none") == 1.0
    assert dta_ramp(1.7) == dta_ramp(1.0) and dta_ramp(-1.0) == dta_ramp(0.0)
    values = [dta_ramp(i / 20) for i in range(21)]
    assert all(a < b for a, b in zip(values, values[1:]))


def test_dta_labeled_source_by_hand():
    th = DTAThreshold(3, source="labeled", momentum=0.5, warmup=False, ramp_start=0.5)
    assert th.per_class().tolist() == pytest.approx([0.5] * 3)  # clip(0.5 * 1/3) = floor
    # class 0 correct 0.9, 0.7 (mean 0.8); class 1: one wrong, one correct 0.8; no class 2
    th.update(stats(probs_l=[[0.9, 0.05, 0.05], [0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]],
                    labels_l=[0, 0, 1, 1], progress=0.0))
    k1 = 0.5 / 3 + 0.5 * 0.8
    assert th.kappa.tolist() == pytest.approx([k1, k1, 1 / 3], abs=1e-6)
    # class 0 correct 0.96, class 2 correct 0.9, class 1 only wrong -> κ_1 kept
    th.update(stats(probs_l=[[0.96, 0.02, 0.02], [0.05, 0.05, 0.9], [0.5, 0.2, 0.3]],
                    labels_l=[0, 2, 1], progress=1.0))
    kappa = [0.5 * k1 + 0.5 * 0.96, k1, 0.5 / 3 + 0.5 * 0.9]  # 0.7633, 0.5667, 0.6167
    assert th.kappa.tolist() == pytest.approx(kappa, abs=1e-6)
    assert th.per_class().tolist() == pytest.approx(kappa, abs=1e-6)  # λ(1) = 1, inside clip
    probs = T([[0.77, 0.2, 0.03], [0.1, 0.56, 0.34], [0.2, 0.2, 0.6], [0.1, 0.2, 0.7]])
    assert th.mask(probs).tolist() == [1.0, 0.0, 0.0, 1.0]
    # the same κ at progress 0.5 (λ = 0.9592) and 0 (λ = 0.5, all under the floor)
    th.update(stats(probs_l=[[0.5, 0.2, 0.3]], labels_l=[1], progress=0.5))  # no correct sample
    lam = dta_ramp(0.5, start=0.5)
    assert th.per_class().tolist() == pytest.approx([max(0.5, lam * k) for k in kappa], abs=1e-6)
    th.update(stats(probs_l=[[0.5, 0.2, 0.3]], labels_l=[1], progress=0.0))
    assert th.per_class().tolist() == pytest.approx([0.5] * 3, abs=1e-6)


def test_dta_unlabeled_source_and_ceiling():
    th = DTAThreshold(3, source="unlabeled", momentum=0.5, tau_max=0.52, ramp="none", warmup=False)
    th.update(stats(probs_u=[[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]], idx_u=[0, 1, 2]))
    assert th.kappa.tolist() == pytest.approx([0.5 / 3 + 0.375, 0.5 / 3 + 0.35, 1 / 3], abs=1e-6)
    th.update(stats(probs_u=[[0.1, 0.1, 0.8], [0.3, 0.5, 0.2]], idx_u=[3, 4]))
    kappa = [0.5 / 3 + 0.375, 0.5 * (0.5 / 3 + 0.35) + 0.25, 0.5 / 3 + 0.4]
    assert th.kappa.tolist() == pytest.approx(kappa, abs=1e-6)  # 0.5417, 0.5083, 0.5667
    assert th.per_class().tolist() == pytest.approx([0.52, kappa[1], 0.52], abs=1e-6)


def test_dta_labeled_source_ignores_unlabeled_and_vice_versa():
    lab, unl = DTAThreshold(3, source="labeled"), DTAThreshold(3, source="unlabeled")
    s = stats(probs_u=[[0.9, 0.05, 0.05]], probs_l=[[0.1, 0.1, 0.8]], labels_l=[0])  # wrong
    lab.update(s)
    unl.update(s)
    assert lab.kappa.tolist() == pytest.approx([1 / 3] * 3)
    assert unl.kappa.tolist() == pytest.approx([0.9, 1 / 3, 1 / 3])  # warm-up: the first mean is κ


def test_dta_warmup_averages_each_class_until_the_momentum_takes_over():
    th = DTAThreshold(2, source="unlabeled", momentum=0.6, ramp="none", tau_min=0.0)
    seq = [([[0.8, 0.2]], 0.8), ([[0.6, 0.4]], 0.6), ([[0.4, 0.6]], None), ([[1.0, 0.0]], 1.0)]
    kappa0, n = 0.5, 0
    for probs, conf in seq:
        th.update(stats(probs_u=probs, idx_u=[0]))
        if conf is not None:
            m = min(0.6, n / (n + 1))  # 0, 0.5, then 0.6 once 0.6 < n/(n+1)
            kappa0 = m * kappa0 + (1 - m) * conf
            n += 1
        assert th.kappa[0].item() == pytest.approx(kappa0, abs=1e-6)
    assert th.seen.tolist() == [3.0, 1.0]
    assert th.kappa[1].item() == pytest.approx(0.6, abs=1e-6)  # its one batch, not pulled to 1/C
    assert kappa0 == pytest.approx(0.6 * 0.7 + 0.4 * 1.0)


# ---------------------------------------------------------------- state, device, registry

def random_stats(gen, c, n_unl, step, total):
    probs_u = torch.softmax(3 * torch.randn(8, c, generator=gen), dim=1)
    probs_l = torch.softmax(3 * torch.randn(6, c, generator=gen), dim=1)
    return StepStats(probs_u, torch.randperm(n_unl, generator=gen)[:8], probs_l,
                     torch.randint(0, c, (6,), generator=gen), step / total, step // 3)


def fast_options(kind):
    """The options a rule declares for these tests (``Threshold.test_options``), or a
    failure that says what to add to its class (a bare KeyError or None would not)."""
    cls = THRESHOLDS[kind]
    if cls.test_options is None:
        pytest.fail(f"threshold rule {kind!r} ({cls.__name__} in ssfer/algo/thresholds.py) declares no "
                    f"test_options: add `test_options = {{...}}` to the class, the options that make it move "
                    f"within a few steps ({{}} if its defaults do; a rule that never moves also sets static = True)")
    return dict(cls.test_options)


def test_every_registered_rule_says_how_to_test_it():
    for kind in THRESHOLDS:
        assert isinstance(fast_options(kind), dict)
        # the options are real constructor options, so a renamed one fails here, not silently
        assert set(fast_options(kind)) <= set(threshold_options(kind)), kind


@pytest.mark.parametrize("kind", sorted(THRESHOLDS))
def test_state_dict_round_trip_restores_identical_masks(kind):
    check_state_dict_round_trip(kind)


def check_state_dict_round_trip(kind):
    c, n = 5, 30
    gen = torch.Generator().manual_seed(0)
    a = build_threshold(kind, c, n, **fast_options(kind))
    for step in range(10):
        a.update(random_stats(gen, c, n, step, 20))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = build_threshold(kind, c, n, **fast_options(kind))
    b.load_state_dict(torch.load(buf))
    probe = torch.softmax(4 * torch.randn(64, c, generator=gen), dim=1)
    assert torch.equal(a.per_class(), b.per_class())
    assert torch.equal(a.mask(probe), b.mask(probe))
    for step in range(10, 16):  # and they stay in lock-step afterwards
        s = random_stats(gen, c, n, step, 20)
        a.update(s)
        b.update(s)
        assert torch.equal(a.mask(probe), b.mask(probe))
    if not THRESHOLDS[kind].static:  # every adaptive rule must have moved away from its start
        assert not torch.equal(a.per_class(), build_threshold(kind, c, n, **fast_options(kind)).per_class())


@pytest.mark.parametrize("kind", sorted(THRESHOLDS))
def test_state_lives_in_buffers_and_moves_with_the_module(kind):
    th = build_threshold(kind, 4, 10)
    assert list(th.parameters()) == []
    names = {name for name, _ in th.named_buffers()}
    assert names  # something to save and move
    th.double()
    assert th.per_class().dtype == torch.float64
    gen = torch.Generator().manual_seed(1)
    th.update(random_stats(gen, 4, 10, 5, 10))
    assert th.mask(torch.softmax(torch.randn(3, 4, generator=gen), 1)).dtype == torch.float32


@pytest.mark.parametrize("kind, options", [(k, {}) for k in sorted(THRESHOLDS)]
                         + [("freematch", {"use_quantile": True, "clip_thresh": True})])
def test_update_and_mask_never_read_tensor_values(kind, options):
    # Meta tensors have no data: .item(), .tolist(), bool(), nonzero() and
    # bincount all raise on them, so a rule that runs here cannot force a host sync.
    th = build_threshold(kind, 4, 10, **options).to("meta")
    gen = torch.Generator().manual_seed(2)
    for step in range(4):
        s = random_stats(gen, 4, 10, step, 4)
        th.update(StepStats(s.probs_u.to("meta"), s.idx_u.to("meta"), s.probs_l.to("meta"),
                            s.labels_l.to("meta"), s.progress, s.epoch))
        mask = th.mask(s.probs_u.to("meta"))
    assert mask.device.type == "meta" and mask.shape == (8,)


def test_build_threshold_rejects_unknown_options_naming_them():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['taux'\]"):
        build_threshold("fixed", 7, 100, taux=0.9)
    with pytest.raises(ValueError, match="unknown threshold 'dtaa'"):
        build_threshold("dtaa", 7, 100)
    th = build_threshold("flexmatch", 7, 100, tau=0.9, mapping="linear")
    assert th.num_unlabeled == 100 and th.selected_label.shape == (100,)
    assert build_threshold("dta", 7, 100, source="unlabeled").source == "unlabeled"


@pytest.mark.parametrize("make, message", [
    (lambda: FixedThreshold(1), "num_classes=1"),
    (lambda: FixedThreshold(3, tau=1.5), "tau=1.5"),
    (lambda: FlexMatchThreshold(3, 10, mapping="cubic"), "mapping='cubic'"),
    (lambda: FreeMatchThreshold(3, momentum=1.0), "momentum=1.0"),
    (lambda: DTAThreshold(3, source="test"), "source='test'"),
    (lambda: DTAThreshold(3, tau_min=0.9, tau_max=0.8), "tau_min=0.9 exceeds"),
])
def test_bad_options_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_progress_and_epoch_must_be_python_numbers():
    with pytest.raises(TypeError, match="StepStats.progress must be a Python number"):
        DTAThreshold(3).update(stats(progress=torch.tensor(0.5)))
    with pytest.raises(TypeError, match="StepStats.epoch must be a Python number"):
        AdaCMThreshold(3).update(stats(epoch=torch.tensor(1)))


def test_wrong_probability_shape_is_reported():
    th = FixedThreshold(3)
    with pytest.raises(ValueError, match=r"FixedThreshold.mask: expected probabilities of shape \(B, 3\)"):
        th.mask(torch.rand(4, 5))


# ---------------------------------------------------------------- adding a rule

class MeanConfidenceThreshold(Threshold):
    """A toy rule: one threshold for every class, a running mean of the teacher's q̂."""

    test_options = {"momentum": 0.5}

    def __init__(self, num_classes: int, momentum: float = 0.5) -> None:
        super().__init__(num_classes)
        self.momentum = float(momentum)
        self.register_buffer("tau", torch.tensor(1.0 / num_classes))

    @torch.no_grad()
    def update(self, s: StepStats) -> None:
        conf = s.probs_u.float().max(dim=1).values.mean()
        self.tau.mul_(self.momentum).add_((1.0 - self.momentum) * conf)

    def per_class(self):
        return self.tau.expand(self.num_classes).clone()


def test_a_rule_added_to_thresholds_and_one_recipe_validates_builds_and_trains(monkeypatch, tiny_overrides):
    """Adding a rule is its class (with its test_options) and its THRESHOLDS entry in
    ssfer/algo/thresholds.py, and one RECIPES line to name an algorithm after it:
    nothing in the config, the trainer, the record or these tests names the rules
    one by one."""
    from ssfer.algo.compose import RECIPES, Recipe, display_name
    from ssfer.config import Config, ConfigError
    from ssfer.train.loop import Trainer

    monkeypatch.setitem(THRESHOLDS, "meanconf", MeanConfidenceThreshold)
    monkeypatch.setattr(MeanConfidenceThreshold, "test_options", None)
    # what a new rule's author sees before the class says how to test it
    with pytest.raises(pytest.fail.Exception, match=r"'meanconf' \(MeanConfidenceThreshold in ssfer/algo/"
                                                    r"thresholds.py\) declares no test_options: add"):
        fast_options("meanconf")
    monkeypatch.setattr(MeanConfidenceThreshold, "test_options", {"momentum": 0.5})
    monkeypatch.setitem(RECIPES, "meanconf_match", Recipe("meanconf", label="MeanConf"))
    check_state_dict_round_trip("meanconf")

    algo = {"algo.name": "meanconf_match"}
    assert display_name("meanconf_match") == "MeanConf"
    with pytest.raises(ConfigError, match=r"threshold 'meanconf': unknown option\(s\) \['momentun'\]"):
        Config.default().with_overrides({**algo, "algo.threshold_args": {"momentun": 0.9}})
    cfg = Config.default().with_overrides({**tiny_overrides, **algo, "algo.threshold_args": {"momentum": 0.9},
                                           "train.steps": 2, "train.log_every": 1, "train.eval_every": 0})
    trainer = Trainer(cfg)
    assert isinstance(trainer.threshold, MeanConfidenceThreshold) and trainer.threshold.momentum == 0.9
    seen = []  # the q̂ the trainer hands the rule, to recompute its thresholds by hand
    update = trainer.threshold.update
    monkeypatch.setattr(trainer.threshold, "update",
                        lambda s: (seen.append(s.probs_u.float().max(dim=1).values.mean().item()), update(s))[1])
    rec = trainer.fit()
    assert (rec.summary["algorithm"], rec.summary["threshold"]) == ("meanconf_match", "meanconf")
    assert len(seen) == 2 and [h["step"] for h in rec.history] == [1, 2]
    tau = 1 / 7
    for h, conf in zip(rec.history, seen):
        tau = 0.9 * tau + 0.1 * conf
        assert h["thresholds"] == pytest.approx([tau] * 7, abs=1e-6)
        assert 0 <= h["mask_rate"] <= 1
