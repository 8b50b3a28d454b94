"""Confidence thresholds that decide which pseudo labels the student learns from.

Every rule is a small ``nn.Module`` whose state lives in registered buffers, so
``.to(device)`` moves it, ``state_dict()`` saves it and a checkpoint restores it.
The trainer calls, once per step and in this order::

    threshold.update(StepStats(...))     # learn from this step
    mask = threshold.mask(probs_u)       # (B_u,) float32, 1 = keep argmax pseudo label
    threshold.per_class()                # (C,) thresholds in effect, for the logs

``update`` and ``mask`` never call ``.item()``/``.cpu()``/``.tolist()`` and never
branch in Python on tensor values, so a CUDA step is not forced to wait for the
GPU. Progress and epoch arrive as plain Python numbers for the same reason.

Rules: ``fixed`` (Pseudo-Label, FixMatch), ``flexmatch``,
``freematch``, ``adacm`` and ``dta`` (this project's reconstruction of the
paper's Dynamic Threshold Adjustment). ``build_threshold`` makes one from config
values and rejects unknown options by name.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ssfer.algo.options import check_part_options, part_options


@dataclass
class StepStats:
    """What a threshold may learn from in one training step.

    probs_u:  (B_u, C) teacher softmax on the weak unlabeled view (no grad).
    idx_u:    (B_u,) int64 positions of these samples in the unlabeled set.
    probs_l:  (B_l, C) softmax on the weak labeled view, detached.
    labels_l: (B_l,) int64 true labels of the labeled batch.
    progress: step / total_steps in [0, 1], a Python float.
    epoch:    completed passes over the unlabeled set, a Python int.
    """

    probs_u: Tensor
    idx_u: Tensor
    probs_l: Tensor
    labels_l: Tensor
    progress: float
    epoch: int


def _check_probs(probs: Tensor, num_classes: int, where: str) -> Tensor:
    """Validate shape (host-side metadata only) and return a float tensor.

    bf16/fp16 probabilities are widened to float32 so that a threshold such as
    0.95 is compared at a precision that can represent it.
    """
    if probs.dim() != 2 or probs.shape[1] != num_classes:
        raise ValueError(
            f"{where}: expected probabilities of shape (B, {num_classes}), "
            f"got {tuple(probs.shape)}")
    if probs.shape[0] == 0:
        raise ValueError(f"{where}: empty batch (B = 0)")
    if probs.dtype not in (torch.float32, torch.float64):
        probs = probs.float()
    return probs.detach()


def _check_labels(labels: Tensor, batch: int, where: str) -> None:
    if labels.dim() != 1 or labels.shape[0] != batch:
        raise ValueError(
            f"{where}: expected ({batch},) labels, got shape {tuple(labels.shape)}")
    if labels.dtype != torch.int64:
        raise ValueError(f"{where}: labels must be int64, got {labels.dtype}")


def _check_host_number(value: Any, name: str, where: str) -> None:
    # a tensor here would be read back with a GPU sync at every step
    if isinstance(value, Tensor) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}: StepStats.{name} must be a Python number, "
                        f"got {type(value).__name__}")


def _check_unit(value: float, name: str, cls: str, *, low_open: bool = True) -> float:
    value = float(value)
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)
    if not ok:
        bound = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{cls}: {name}={value!r} must lie in {bound}")
    return value


class Threshold(nn.Module):
    """Base class: per-class confidence threshold on the teacher's argmax.

    A rule's class is its one home: its constructor's keyword options are the
    config's ``algo.threshold_args`` (read from the signature), and the two class
    attributes below tell the tests how to exercise it, so adding a rule is this
    class and its ``THRESHOLDS`` entry (and a ``RECIPES`` line to name it)."""

    # Options under which the thresholds move visibly within a few steps of random
    # batches: the tests build the rule with them to check that it adapts and that
    # its state round-trips ({} where the defaults do; None: not declared yet).
    test_options: ClassVar[dict[str, Any] | None] = None
    static: ClassVar[bool] = False  # thresholds that never move: exempt from "it adapts"

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(
                f"{type(self).__name__}: num_classes={num_classes!r} must be an int >= 2")
        self.num_classes = int(num_classes)

    def update(self, s: StepStats) -> None:  # noqa: D401 - default: stateless rule
        """Update internal state from this step; called before ``mask``."""

    def per_class(self) -> Tensor:
        """(C,) thresholds in effect for the next ``mask`` call."""
        raise NotImplementedError

    @torch.no_grad()
    def mask(self, probs_u: Tensor) -> Tensor:
        """(B_u,) float32 in {0, 1}: 1 where max prob >= threshold of its argmax class."""
        probs = _check_probs(probs_u, self.num_classes, f"{type(self).__name__}.mask")
        conf, pred = probs.max(dim=1)
        thr = self.per_class().to(conf.dtype)
        return (conf >= thr[pred]).float()

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


class FixedThreshold(Threshold):
    """Pseudo-Label / FixMatch: accept when q̂ >= τ (boundary inclusive)."""

    test_options: ClassVar[dict[str, Any] | None] = {}
    static: ClassVar[bool] = True

    def __init__(self, num_classes: int, tau: float = 0.95) -> None:
        super().__init__(num_classes)
        tau = _check_unit(tau, "tau", type(self).__name__, low_open=False)
        self.register_buffer("tau", torch.tensor(tau, dtype=torch.float32))

    def per_class(self) -> Tensor:
        return self.tau.expand(self.num_classes).clone()


_FLEX_MAPPINGS = ("convex", "linear", "concave")


class FlexMatchThreshold(Threshold):
    """FlexMatch curriculum pseudo labelling (Zhang et al., NeurIPS 2021).

    ``selected_label[i]`` is the last class sample i was predicted as with
    q̂ >= τ (-1 while never). σ_c counts samples whose entry is c, and

        β_c = σ_c / max(max_c σ_c, #unused)   with warmup (default)
        β_c = σ_c / max_c σ_c                 without,

    threshold_c = τ · M(β_c) with M = convex β/(2−β) (default), linear β or
    concave log(1+β)/log 2 (the paper's three mappings).

    As in the public code (USB ``FlexMatchThresholdingHook``), the β used to mask
    a batch comes from the selections made up to the previous batch; the batch's
    own selections are recorded afterwards. Here ``update`` does both halves in
    that order, so ``update`` then ``mask`` reproduces the reference exactly.
    β starts at 0, so every pseudo label is accepted before the first selection
    — FlexMatch's own warm-up behaviour.
    """

    test_options: ClassVar[dict[str, Any] | None] = {"tau": 0.6}

    def __init__(self, num_classes: int, num_unlabeled: int, tau: float = 0.95,
                 warmup: bool = True, mapping: str = "convex") -> None:
        super().__init__(num_classes)
        if int(num_unlabeled) != num_unlabeled or num_unlabeled < 1:
            raise ValueError(
                f"FlexMatchThreshold: num_unlabeled={num_unlabeled!r} must be an int >= 1")
        if mapping not in _FLEX_MAPPINGS:
            raise ValueError(
                f"FlexMatchThreshold: mapping={mapping!r}; choose one of {_FLEX_MAPPINGS}")
        self.num_unlabeled = int(num_unlabeled)
        self.warmup = bool(warmup)
        self.mapping = mapping
        tau = _check_unit(tau, "tau", type(self).__name__)
        self.register_buffer("tau", torch.tensor(tau, dtype=torch.float32))
        self.register_buffer(
            "selected_label", torch.full((self.num_unlabeled,), -1, dtype=torch.int64))
        self.register_buffer("beta", torch.zeros(self.num_classes, dtype=torch.float32))

    def class_counts(self) -> tuple[Tensor, Tensor]:
        """(σ (C,), #unused ()) as int64 tensors, from ``selected_label``."""
        # scatter_add instead of bincount: CUDA bincount reads the max to size its output.
        counts = torch.zeros(self.num_classes + 1, dtype=torch.int64,
                             device=self.selected_label.device)
        counts.scatter_add_(0, self.selected_label + 1, torch.ones_like(self.selected_label))
        return counts[1:], counts[0]

    @torch.no_grad()
    def update(self, s: StepStats) -> None:
        probs = _check_probs(s.probs_u, self.num_classes, "FlexMatchThreshold.update(probs_u)")
        _check_labels(s.idx_u, probs.shape[0], "FlexMatchThreshold.update(idx_u)")
        sigma, unused = self.class_counts()
        denom = sigma.max()
        if self.warmup:
            denom = torch.maximum(denom, unused)
        # denom is 0 only while nothing was ever selected (no warmup); β stays 0 then,
        # as the reference keeps its zero initialisation.
        self.beta.copy_(sigma.to(self.beta.dtype) / denom.clamp_min(1).to(self.beta.dtype))

        conf, pred = probs.max(dim=1)
        select = conf >= self.tau.to(conf.dtype)
        self.selected_label[s.idx_u] = self._new_labels(s.idx_u, select, pred)

    def _new_labels(self, idx: Tensor, select: Tensor, pred: Tensor) -> Tensor:
        """(B,) entries to write at ``idx``: only selected samples change an entry.

        An index may appear more than once in a batch (a batch that wraps into the
        next epoch's permutation). Like USB, which writes
        ``selected_label[idx[select]] = pred[select]``, a copy that is not
        selected never overwrites one that is; where several copies are selected,
        the last one in the batch wins. Every copy of an index then carries the same
        value, so the scatter is deterministic on any device; the rule needs no
        boolean indexing, hence no host sync. O(B²) booleans, a few hundred kB
        at the largest batches used.
        """
        pos = torch.arange(1, idx.shape[0] + 1, device=idx.device)
        same_selected = (idx.unsqueeze(1) == idx.unsqueeze(0)) & select.unsqueeze(0)   # [i, j]: j selected copy of i
        last = (same_selected * pos).amax(dim=1) - 1                                    # -1: no copy selected
        return torch.where(last >= 0, pred[last.clamp_min(0)], self.selected_label[idx])

    def per_class(self) -> Tensor:
        b = self.beta
        if self.mapping == "convex":
            m = b / (2.0 - b)
        elif self.mapping == "linear":
            m = b
        else:
            m = torch.log1p(b) / math.log(2.0)
        return self.tau * m

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, num_unlabeled={self.num_unlabeled}, "
                f"warmup={self.warmup}, mapping={self.mapping!r}")


FREEMATCH_CLIP = 0.95  # USB's fixed ceiling for clip_thresh


class FreeMatchThreshold(Threshold):
    """FreeMatch self-adaptive threshold (Wang et al., ICLR 2023).

    Per step, before masking (as the public code does):
        τ ← m·τ + (1−m)·mean(q̂),   p̃ ← m·p̃ + (1−m)·mean(q)   (both start at 1/C)
    and the mask is q̂ >= τ · p̃_ŷ / max p̃. The public USB code has since moved its
    initial values to 1; this project keeps the paper's 1/C. The label histogram of
    FreeMatch's fairness loss is not kept here.

    USB's two options (``FreeMatchThresholingHook``), under its names and, as
    there, off by default: ``use_quantile`` takes the 0.8 quantile of the
    batch's q̂ (linear interpolation, ``torch.quantile``) instead of their mean;
    ``clip_thresh`` clips τ to [0, 0.95] after each update (USB's fixed 0.95).
    """

    test_options: ClassVar[dict[str, Any] | None] = {"momentum": 0.5}

    def __init__(self, num_classes: int, momentum: float = 0.999, use_quantile: bool = False,
                 clip_thresh: bool = False) -> None:
        super().__init__(num_classes)
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"FreeMatchThreshold: momentum={momentum!r} must lie in [0, 1)")
        for name, value in (("use_quantile", use_quantile), ("clip_thresh", clip_thresh)):
            if not isinstance(value, bool):
                raise ValueError(f"FreeMatchThreshold: {name}={value!r} must be true or false")
        self.momentum = momentum
        self.use_quantile, self.clip_thresh = use_quantile, clip_thresh
        c = self.num_classes
        self.register_buffer("tau_global", torch.tensor(1.0 / c, dtype=torch.float32))
        self.register_buffer("p_model", torch.full((c,), 1.0 / c, dtype=torch.float32))

    @torch.no_grad()
    def update(self, s: StepStats) -> None:
        probs = _check_probs(s.probs_u, self.num_classes, "FreeMatchThreshold.update(probs_u)")
        m = self.momentum
        conf = probs.max(dim=1).values
        level = torch.quantile(conf, 0.8) if self.use_quantile else conf.mean()
        self.tau_global.mul_(m).add_((1.0 - m) * level.to(self.tau_global.dtype))
        if self.clip_thresh:
            self.tau_global.clamp_(0.0, FREEMATCH_CLIP)
        self.p_model.mul_(m).add_((1.0 - m) * probs.mean(dim=0).to(self.p_model.dtype))

    def per_class(self) -> Tensor:
        return self.tau_global * self.p_model / self.p_model.max()

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, momentum={self.momentum}, "
                f"use_quantile={self.use_quantile}, clip_thresh={self.clip_thresh}")


class AdaCMThreshold(Threshold):
    """Ada-CM adaptive threshold (Li et al., CVPR 2022), once per epoch.

    During epoch e the rule sums, per true class c, the confidence of labeled
    samples predicted correctly (``probs_l``; the trainer decides student or
    teacher). When ``StepStats.epoch`` first shows e completed epochs it sets

        τ_c = max(floor, scale · mean_c · 1/(1 + e^(−e)))

    and starts a new sum. Classes with no correct sample in the epoch fall back
    to the floor, as the public Ada-CM code does; every class starts at the floor.
    Ada-CM gathers its statistics in a separate pass of the EMA model over the
    labeled set after each epoch; accumulating them from the training steps
    avoids that extra pass and is this project's choice.
    """

    test_options: ClassVar[dict[str, Any] | None] = {"floor": 0.1}

    def __init__(self, num_classes: int, floor: float = 0.8, scale: float = 0.97) -> None:
        super().__init__(num_classes)
        self.floor = _check_unit(floor, "floor", type(self).__name__, low_open=False)
        scale = float(scale)
        if scale <= 0:
            raise ValueError(f"AdaCMThreshold: scale={scale!r} must be > 0")
        self.scale = scale
        c = self.num_classes
        self.register_buffer("tau", torch.full((c,), self.floor, dtype=torch.float32))
        self.register_buffer("conf_sum", torch.zeros(c, dtype=torch.float32))
        self.register_buffer("conf_count", torch.zeros(c, dtype=torch.float32))
        # Python int, saved through get/set_extra_state: comparing it costs no sync.
        self.epoch = 0

    def get_extra_state(self) -> dict[str, int]:
        return {"epoch": self.epoch}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])

    @torch.no_grad()
    def update(self, s: StepStats) -> None:
        _check_host_number(s.epoch, "epoch", "AdaCMThreshold.update")
        if s.epoch < self.epoch:
            raise ValueError(
                f"AdaCMThreshold.update: epoch went back from {self.epoch} to {s.epoch}; "
                "restore the threshold's state_dict together with the trainer's")
        if s.epoch > self.epoch:
            self._apply_epoch(int(s.epoch))
        probs = _check_probs(s.probs_l, self.num_classes, "AdaCMThreshold.update(probs_l)")
        _check_labels(s.labels_l, probs.shape[0], "AdaCMThreshold.update(labels_l)")
        conf, pred = probs.max(dim=1)
        correct = (pred == s.labels_l).to(self.conf_sum.dtype)
        self.conf_sum.index_add_(0, s.labels_l, conf.to(self.conf_sum.dtype) * correct)
        self.conf_count.index_add_(0, s.labels_l, correct)

    def _apply_epoch(self, epoch: int) -> None:
        ramp = 1.0 / (1.0 + math.exp(-epoch))
        mean = self.conf_sum / self.conf_count.clamp_min(1.0)
        candidate = (self.scale * ramp * mean).clamp_min(self.floor)
        self.tau.copy_(torch.where(self.conf_count > 0, candidate,
                                   torch.full_like(candidate, self.floor)))
        self.conf_sum.zero_()
        self.conf_count.zero_()
        self.epoch = epoch

    def per_class(self) -> Tensor:
        return self.tau.clone()

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, floor={self.floor}, scale={self.scale}, "
                f"epoch={self.epoch}")


_DTA_SOURCES = ("labeled", "unlabeled")
_DTA_RAMPS = ("sigmoid", "linear", "none")


def dta_ramp(progress: float, kind: str = "sigmoid", start: float = 0.8,
             steepness: float = 10.0, midpoint: float = 0.25) -> float:
    """Stage factor λ(progress) of DTA, rising from ``start`` at 0 to exactly 1 at 1.

    sigmoid: λ = start + (1 − start)·(σ(k(p − p0)) − σ(−k·p0)) / (σ(k(1 − p0)) − σ(−k·p0)),
    a logistic curve rescaled to hit both end points; linear: start + (1 − start)·p;
    none: 1. Progress outside [0, 1] is clipped.
    """
    p = min(max(float(progress), 0.0), 1.0)
    if kind == "none":
        return 1.0
    if kind == "linear":
        return start + (1.0 - start) * p
    if kind == "sigmoid":
        def sig(x: float) -> float:
            return 1.0 / (1.0 + math.exp(-x))
        lo, hi = sig(-steepness * midpoint), sig(steepness * (1.0 - midpoint))
        return start + (1.0 - start) * (sig(steepness * (p - midpoint)) - lo) / (hi - lo)
    raise ValueError(f"dta_ramp: kind={kind!r}; choose one of {_DTA_RAMPS}")


class DTAThreshold(Threshold):
    """Dynamic Threshold Adjustment — this project's reconstruction.

    The paper (Cai et al., arXiv:2601.05556) states only that the threshold adapts
    to each class and to the training stage; its equations were not available.
    Here

        τ_c(t) = clip(λ(t) · κ_c(t), tau_min, tau_max)

    κ_c: EMA over steps of class c's mean confidence in the batch,
      κ_c ← m·κ_c + (1−m)·mean, from
      ``source="labeled"`` — max prob of labeled samples of true class c that are
      predicted correctly (Ada-CM's statistic), or
      ``source="unlabeled"`` — teacher q̂ of unlabeled samples predicted as c
      (FreeMatch's local estimate).
      A class with no such sample in the batch keeps its κ. κ starts at
      ``kappa_init`` (default 1/C, FreeMatch's start), so τ begins at tau_min.
      With ``warmup`` (default) κ_c is the plain average of class c's first
      batches until that average has more history than the momentum's memory
      (m_eff = min(m, n_c/(n_c+1)) after n_c batches of c): otherwise κ would
      spend the first ~1/(1−m) steps being pulled up from 1/C, and in a short
      run every threshold would sit on tau_min for most of training.
    λ: :func:`dta_ramp` of progress (default logistic, 0.8 → 1, steepest at a
      quarter of training), so early thresholds stay below the model's own
      confidence and reach it as training settles.

    Defaults chosen by this project on SynthFER (measured in
    ``benchmarks/README.md``, stated in the book): momentum 0.99 (a ~100-step memory, short enough to follow a
    minority class whose confidence is rising, long enough to smooth the few
    samples of it per batch), tau_min 0.5, tau_max 0.95 (FixMatch's value, so DTA
    is never stricter than FixMatch), ramp "sigmoid" with ramp_start 0.8,
    ramp_steepness 10, ramp_midpoint 0.25, warmup on: a lower ramp start
    without warm-up keeps every class on the floor for much of a short run.
    """

    test_options: ClassVar[dict[str, Any] | None] = {"momentum": 0.5, "tau_min": 0.05}

    def __init__(self, num_classes: int, source: str = "labeled", momentum: float = 0.99,
                 tau_min: float = 0.5, tau_max: float = 0.95, ramp: str = "sigmoid",
                 ramp_start: float = 0.8, ramp_steepness: float = 10.0,
                 ramp_midpoint: float = 0.25, kappa_init: float | None = None,
                 warmup: bool = True) -> None:
        super().__init__(num_classes)
        name = type(self).__name__
        if source not in _DTA_SOURCES:
            raise ValueError(f"{name}: source={source!r}; choose one of {_DTA_SOURCES}")
        if ramp not in _DTA_RAMPS:
            raise ValueError(f"{name}: ramp={ramp!r}; choose one of {_DTA_RAMPS}")
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"{name}: momentum={momentum!r} must lie in [0, 1)")
        tau_min = _check_unit(tau_min, "tau_min", name, low_open=False)
        tau_max = _check_unit(tau_max, "tau_max", name)
        if tau_min > tau_max:
            raise ValueError(f"{name}: tau_min={tau_min} exceeds tau_max={tau_max}")
        ramp_start = _check_unit(ramp_start, "ramp_start", name)
        if float(ramp_steepness) <= 0:
            raise ValueError(f"{name}: ramp_steepness={ramp_steepness!r} must be > 0")
        ramp_midpoint = _check_unit(ramp_midpoint, "ramp_midpoint", name, low_open=False)
        if kappa_init is None:
            kappa_init = 1.0 / self.num_classes
        kappa_init = _check_unit(kappa_init, "kappa_init", name, low_open=False)

        self.source, self.momentum, self.ramp = source, momentum, ramp
        self.tau_min, self.tau_max = tau_min, tau_max
        self.ramp_start, self.ramp_steepness = ramp_start, float(ramp_steepness)
        self.ramp_midpoint = ramp_midpoint
        self.warmup = bool(warmup)
        c = self.num_classes
        self.register_buffer("kappa", torch.full((c,), kappa_init, dtype=torch.float32))
        self.register_buffer("seen", torch.zeros(c, dtype=torch.float32))  # batches that updated κ_c
        lam0 = self.ramp_value(0.0)
        self.register_buffer("lam", torch.tensor(lam0, dtype=torch.float32))
        self.register_buffer("tau", (lam0 * self.kappa).clamp(tau_min, tau_max))

    def ramp_value(self, progress: float) -> float:
        """λ at this progress, with this threshold's ramp settings."""
        return dta_ramp(progress, self.ramp, self.ramp_start,
                        self.ramp_steepness, self.ramp_midpoint)

    @torch.no_grad()
    def update(self, s: StepStats) -> None:
        name = "DTAThreshold.update"
        _check_host_number(s.progress, "progress", name)
        if self.source == "labeled":
            probs = _check_probs(s.probs_l, self.num_classes, f"{name}(probs_l)")
            _check_labels(s.labels_l, probs.shape[0], f"{name}(labels_l)")
            conf, pred = probs.max(dim=1)
            cls = s.labels_l
            weight = (pred == cls).to(self.kappa.dtype)
        else:
            probs = _check_probs(s.probs_u, self.num_classes, f"{name}(probs_u)")
            conf, cls = probs.max(dim=1)
            weight = torch.ones_like(conf, dtype=self.kappa.dtype)
        sums = torch.zeros_like(self.kappa).index_add_(0, cls, conf.to(self.kappa.dtype) * weight)
        counts = torch.zeros_like(self.kappa).index_add_(0, cls, weight)
        batch_mean = sums / counts.clamp_min(1.0)
        m = torch.full_like(self.kappa, self.momentum)
        if self.warmup:  # a plain average until the EMA has `momentum`'s worth of history
            m = torch.minimum(m, self.seen / (self.seen + 1.0))
        present = counts > 0
        self.kappa.copy_(torch.where(present, m * self.kappa + (1.0 - m) * batch_mean, self.kappa))
        self.seen.add_(present.to(self.seen.dtype))
        self.lam.fill_(self.ramp_value(s.progress))
        self.tau.copy_((self.lam * self.kappa).clamp(self.tau_min, self.tau_max))

    def per_class(self) -> Tensor:
        return self.tau.clone()

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, source={self.source!r}, "
                f"momentum={self.momentum}, tau_min={self.tau_min}, tau_max={self.tau_max}, "
                f"ramp={self.ramp!r}, ramp_start={self.ramp_start}, "
                f"ramp_steepness={self.ramp_steepness}, ramp_midpoint={self.ramp_midpoint}, "
                f"warmup={self.warmup}")


THRESHOLDS: dict[str, type[Threshold]] = {
    "fixed": FixedThreshold,
    "flexmatch": FlexMatchThreshold,
    "freematch": FreeMatchThreshold,
    "adacm": AdaCMThreshold,
    "dta": DTAThreshold,
}


_FIXED = ("num_classes", "num_unlabeled")  # passed by the trainer, not by the config


def threshold_options(kind: str) -> dict[str, Any]:
    """Config options of a threshold rule and their defaults."""
    return part_options(THRESHOLDS, kind, "threshold", _FIXED)


def build_threshold(kind: str, num_classes: int, num_unlabeled: int, **kwargs: Any) -> Threshold:
    """Make the threshold rule ``kind`` from config values.

    ``num_unlabeled`` is passed only to rules that keep per-sample state
    (FlexMatch). Unknown options raise ValueError naming them.
    """
    check_part_options(THRESHOLDS, kind, "threshold", kwargs, _FIXED)
    cls = THRESHOLDS[kind]
    if "num_unlabeled" in inspect.signature(cls).parameters:
        kwargs["num_unlabeled"] = num_unlabeled
    return cls(num_classes, **kwargs)
