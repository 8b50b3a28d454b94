"""Complementary-label selectors: which classes an unlabeled face is *not*.

Each selector turns the teacher's logits on the weak view into a (B_u, C)
float32 multi-hot ``N``: N[i, k] = 1 means "sample i is not class k" and feeds
:func:`ssfer.algo.losses.negative_loss`. No selector ever negates a sample's
argmax class. Selectors run under ``no_grad`` and never read tensor values on
the host, so they cost no GPU sync.

``none``  nothing (supervised / FixMatch / ... without negative learning);
``nlnl``  one uniformly random non-argmax class (Kim et al., ICCV 2019);
``ups``   classes below a probability at temperature T, and, with ``kappa_neg``,
          below an MC-dropout spread (Rizve et al., ICLR 2021);
``ccl``   the ⌊frac·C⌋ lowest-probability classes;
``snl``   Selective Negative Learning, this project's reconstruction (the
          paper describes it in words only): only samples the threshold
          rejected, only classes the teacher is sure are absent, never the
          protected top classes.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ssfer.algo.options import check_part_options, part_options


def _check_inputs(logits: Tensor, accepted: Tensor, where: str) -> None:
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"{where}: expected teacher logits of shape (B, C>=2), "
                         f"got {tuple(logits.shape)}")
    if accepted.shape != logits.shape[:1]:
        raise ValueError(f"{where}: accepted must have shape ({logits.shape[0]},), "
                         f"got {tuple(accepted.shape)}")


def _rejected(accepted: Tensor) -> Tensor:
    """(B, 1) float: 1 for samples the threshold did not accept."""
    return (1.0 - accepted.float()).unsqueeze(1)


def _drop_argmax(neg: Tensor, logits: Tensor) -> Tensor:
    """Zero the argmax column: a guarantee, whatever the rule and ties."""
    return neg.scatter(1, logits.argmax(dim=1, keepdim=True), 0.0)


def _check_temperature(T: float, tau_neg: float, cls: str) -> tuple[float, float]:
    T, tau_neg = float(T), float(tau_neg)
    if T <= 0:
        raise ValueError(f"{cls}: T={T!r} must be > 0")
    if not 0.0 < tau_neg < 1.0:
        raise ValueError(f"{cls}: tau_neg={tau_neg!r} must lie in (0, 1)")
    return T, tau_neg


class NegativeSelector(nn.Module):
    """Base class: ``select`` maps the teacher's logits to complementary labels.

    A selector that needs more of the teacher than its logits (UPS's MC-dropout
    spread) says so in ``teacher_inputs``, which the trainer calls before
    ``select`` and whose result it passes to ``select`` as keyword arguments.
    """

    def teacher_inputs(self, teacher: nn.Module, x_weak: Tensor, autocast: Callable) -> dict[str, Tensor]:
        """Extra keyword arguments of ``select``, computed from the teacher on the weak view."""
        return {}

    def select(self, teacher_logits_u: Tensor, accepted: Tensor,
               generator: torch.Generator | None = None) -> Tensor:
        """(B_u, C) float32 multi-hot of complementary labels; never the argmax."""
        raise NotImplementedError


class NoNegatives(NegativeSelector):
    """No complementary labels (the negative loss is then a zero)."""

    @torch.no_grad()
    def select(self, teacher_logits_u: Tensor, accepted: Tensor,
               generator: torch.Generator | None = None) -> Tensor:
        _check_inputs(teacher_logits_u, accepted, "NoNegatives.select")
        return torch.zeros(teacher_logits_u.shape, dtype=torch.float32,
                           device=teacher_logits_u.device)


class NLNLSelector(NegativeSelector):
    """One uniformly random class other than the argmax, per sample.

    ``only_rejected=False`` (NLNL's own use) gives every sample one; ``True``
    only samples the threshold rejected. Pass a ``torch.Generator`` for
    reproducible draws, on the logits' device: a generator elsewhere works but
    its draw is copied over, and a pageable host-to-GPU copy waits for the stream.
    """

    def __init__(self, only_rejected: bool = False) -> None:
        super().__init__()
        self.only_rejected = bool(only_rejected)

    @torch.no_grad()
    def select(self, teacher_logits_u: Tensor, accepted: Tensor,
               generator: torch.Generator | None = None) -> Tensor:
        _check_inputs(teacher_logits_u, accepted, "NLNLSelector.select")
        b, c = teacher_logits_u.shape
        device = teacher_logits_u.device
        draw_on = generator.device if generator is not None else device
        r = torch.randint(0, c - 1, (b,), generator=generator, device=draw_on).to(device)
        top = teacher_logits_u.argmax(dim=1)
        # r uniform on {0..C-2}; shifting values >= argmax up by one maps it
        # uniformly onto the C-1 non-argmax classes.
        k = r + (r >= top).long()
        neg = torch.zeros((b, c), dtype=torch.float32, device=device)
        neg.scatter_(1, k.unsqueeze(1), 1.0)
        if self.only_rejected:
            neg = neg * _rejected(accepted)
        return neg

    def extra_repr(self) -> str:
        return f"only_rejected={self.only_rejected}"


class UPSSelector(NegativeSelector):
    """UPS-style negatives: softmax(z / T)_k < tau_neg.

    With ``kappa_neg`` set, UPS's uncertainty rule applies as well: class k is
    negated only if the spread (standard deviation) of softmax(z / T)_k over
    ``mc_passes`` MC-dropout passes of the teacher is below ``kappa_neg`` (UPS
    uses 10 passes and 0.005). ``teacher_inputs`` runs those passes (the model's
    feature-map and head dropout active, batch norm in eval) and gives their
    ``spread=``. Unlike UPS, the probability rule reads the teacher's plain
    (dropout-free) prediction rather than the mean of the passes. Without
    ``kappa_neg`` (the default) only the probability rule applies.
    ``only_rejected`` restricts negatives to rejected samples.
    """

    def __init__(self, T: float = 2.0, tau_neg: float = 0.05, kappa_neg: float | None = None,
                 mc_passes: int = 10, only_rejected: bool = False) -> None:
        super().__init__()
        self.T, self.tau_neg = _check_temperature(T, tau_neg, "UPSSelector")
        if kappa_neg is not None and (isinstance(kappa_neg, bool) or not isinstance(kappa_neg, (int, float))
                                      or not kappa_neg > 0):
            raise ValueError(f"UPSSelector: kappa_neg={kappa_neg!r} must be a number > 0 (or null: no spread rule)")
        if isinstance(mc_passes, bool) or int(mc_passes) != mc_passes or mc_passes < 2:
            raise ValueError(f"UPSSelector: mc_passes={mc_passes!r} must be an int >= 2 (a spread needs two passes)")
        self.kappa_neg = None if kappa_neg is None else float(kappa_neg)
        self.mc_passes = int(mc_passes)
        self.only_rejected = bool(only_rejected)

    @property
    def mc_passes_needed(self) -> int:
        return self.mc_passes if self.kappa_neg is not None else 0

    def spread_from(self, mc_logits: Tensor) -> Tensor:
        """(B, C) standard deviation over passes of softmax(z / T), from (passes, B, C) logits."""
        return torch.softmax(mc_logits.float() / self.T, dim=-1).std(dim=0)

    def teacher_inputs(self, teacher: nn.Module, x_weak: Tensor, autocast: Callable) -> dict[str, Tensor]:
        if not self.mc_passes_needed:
            return {}
        with torch.no_grad(), autocast():
            mc = teacher.mc_dropout_logits(x_weak, self.mc_passes_needed)
        return {"spread": self.spread_from(mc.float())}

    @torch.no_grad()
    def select(self, teacher_logits_u: Tensor, accepted: Tensor,
               generator: torch.Generator | None = None, spread: Tensor | None = None) -> Tensor:
        _check_inputs(teacher_logits_u, accepted, "UPSSelector.select")
        # an option that silently does nothing is worse than an error
        if (spread is None) != (self.kappa_neg is None):
            raise ValueError("UPSSelector.select: pass spread= exactly when kappa_neg is set "
                             f"(kappa_neg={self.kappa_neg}, spread {'missing' if spread is None else 'given'})")
        q = torch.softmax(teacher_logits_u.float() / self.T, dim=1)
        neg = q < self.tau_neg
        if spread is not None:
            if spread.shape != teacher_logits_u.shape:
                raise ValueError(f"UPSSelector.select: spread must have shape "
                                 f"{tuple(teacher_logits_u.shape)}, got {tuple(spread.shape)}")
            neg = neg & (spread < self.kappa_neg)
        neg = _drop_argmax(neg.float(), teacher_logits_u)
        if self.only_rejected:
            neg = neg * _rejected(accepted)
        return neg

    def extra_repr(self) -> str:
        return (f"T={self.T}, tau_neg={self.tau_neg}, kappa_neg={self.kappa_neg}, "
                f"mc_passes={self.mc_passes}, only_rejected={self.only_rejected}")


class CCLSelector(NegativeSelector):
    """The ⌊frac·C⌋ lowest-probability classes (at most C−1, never the argmax)."""

    def __init__(self, frac: float = 0.7, only_rejected: bool = False) -> None:
        super().__init__()
        frac = float(frac)
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"CCLSelector: frac={frac!r} must lie in [0, 1)")
        self.frac = frac
        self.only_rejected = bool(only_rejected)

    def num_negatives(self, num_classes: int) -> int:
        # the epsilon keeps e.g. 0.7·10 = 7 at 7 whatever the float rounding
        return min(math.floor(self.frac * num_classes + 1e-9), num_classes - 1)

    @torch.no_grad()
    def select(self, teacher_logits_u: Tensor, accepted: Tensor,
               generator: torch.Generator | None = None) -> Tensor:
        _check_inputs(teacher_logits_u, accepted, "CCLSelector.select")
        b, c = teacher_logits_u.shape
        k = self.num_negatives(c)
        z = teacher_logits_u.float()
        # +inf on the argmax keeps it out of the k lowest even when logits tie
        z = z.scatter(1, z.argmax(dim=1, keepdim=True), math.inf)
        neg = torch.zeros((b, c), dtype=torch.float32, device=z.device)
        if k > 0:
            neg.scatter_(1, z.topk(k, dim=1, largest=False).indices, 1.0)
        if self.only_rejected:
            neg = neg * _rejected(accepted)
        return neg

    def extra_repr(self) -> str:
        return f"frac={self.frac}, only_rejected={self.only_rejected}"


class SNLSelector(NegativeSelector):
    """Selective Negative Learning — this project's reconstruction of the paper's
    description (its equations were not available).

    For samples the threshold rejected (accepted == 0) only:
        N = {k : softmax(z / T)_k < tau_neg} minus the ``protect_top`` most
        probable classes.
    Accepted samples get no negatives (their positive loss already teaches them).
    Defaults T = 2, tau_neg = 0.05 follow negative-learning practice (UPS).
    """

    def __init__(self, T: float = 2.0, tau_neg: float = 0.05, protect_top: int = 1) -> None:
        super().__init__()
        self.T, self.tau_neg = _check_temperature(T, tau_neg, "SNLSelector")
        if int(protect_top) != protect_top or protect_top < 1:
            raise ValueError(f"SNLSelector: protect_top={protect_top!r} must be an int >= 1 "
                             "(the argmax is never negated)")
        self.protect_top = int(protect_top)

    @torch.no_grad()
    def select(self, teacher_logits_u: Tensor, accepted: Tensor,
               generator: torch.Generator | None = None) -> Tensor:
        _check_inputs(teacher_logits_u, accepted, "SNLSelector.select")
        z = teacher_logits_u.float()
        q = torch.softmax(z / self.T, dim=1)
        neg = (q < self.tau_neg).float()
        # stable sort breaks ties towards the lower index, as argmax does, so the
        # protected set is exactly the top ``protect_top`` classes even with ties
        order = z.argsort(dim=1, descending=True, stable=True)
        neg = neg.scatter(1, order[:, : self.protect_top], 0.0)
        neg = _drop_argmax(neg, z)  # guard, should argmax break ties otherwise
        return neg * _rejected(accepted)

    def extra_repr(self) -> str:
        return f"T={self.T}, tau_neg={self.tau_neg}, protect_top={self.protect_top}"


NEGATIVES: dict[str, type[NegativeSelector]] = {
    "none": NoNegatives,
    "nlnl": NLNLSelector,
    "ups": UPSSelector,
    "ccl": CCLSelector,
    "snl": SNLSelector,
}


def negatives_options(kind: str) -> dict[str, Any]:
    """Config options of a selector and their defaults."""
    return part_options(NEGATIVES, kind, "negative selector")


def build_negatives(kind: str, **kwargs: Any) -> NegativeSelector:
    """Make the selector ``kind`` from config values; unknown options raise ValueError."""
    check_part_options(NEGATIVES, kind, "negative selector", kwargs)
    return NEGATIVES[kind](**kwargs)
