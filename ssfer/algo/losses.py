"""The losses of the training objective L = L_sup + λ_u·L_pos + λ_n·L_neg.

All of them compute in float32 whatever the logits' dtype (bf16 under
autocast), return a scalar tensor and never read values on the host.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_logits(logits: Tensor, where: str) -> None:
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"{where}: expected logits of shape (B, C>=2), got {tuple(logits.shape)}")


def supervised_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of the labeled batch."""
    _check_logits(logits, "supervised_loss")
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)


def soft_cross_entropy(logits: Tensor, target_probs: Tensor) -> Tensor:
    """Mean of −Σ_k t_k log p_k, for soft labels such as FERPlus vote shares.

    ``target_probs`` rows should sum to 1 (vote counts / total votes).
    """
    _check_logits(logits, "soft_cross_entropy")
    if target_probs.shape != logits.shape:
        raise ValueError(f"soft_cross_entropy: target shape {tuple(target_probs.shape)} "
                         f"differs from logits shape {tuple(logits.shape)}")
    logp = F.log_softmax(logits.float(), dim=1)
    return -(target_probs.float() * logp).sum(dim=1).mean()


def positive_loss(student_logits_s: Tensor, pseudo_labels: Tensor, mask: Tensor) -> Tensor:
    """FixMatch form: mean over the *whole* unlabeled batch of mask · CE(p, ŷ).

    Averaging over all samples, not only the accepted ones, lets the loss grow
    with the share of accepted pseudo labels, as in FixMatch.
    """
    _check_logits(student_logits_s, "positive_loss")
    if mask.shape != student_logits_s.shape[:1]:
        raise ValueError(f"positive_loss: mask must have shape ({student_logits_s.shape[0]},), "
                         f"got {tuple(mask.shape)}")
    ce = F.cross_entropy(student_logits_s.float(), pseudo_labels, reduction="none")
    return (ce * mask.float()).mean()


def log_one_minus_softmax(logits: Tensor) -> Tensor:
    """log(1 − softmax(z)_k) for every k, stably: logsumexp_{j≠k} z_j − logsumexp_j z_j.

    Computing 1 − p in floating point loses everything once p rounds to 1
    (already at logits ~ 17 in float32); this form does not. It costs a
    (B, C, C) tensor, trivial for the handful of expression classes.
    """
    z = logits.float()
    c = z.shape[1]
    eye = torch.eye(c, dtype=torch.bool, device=z.device)
    others = z.unsqueeze(1).masked_fill(eye, -math.inf)  # row k: z without z_k
    return torch.logsumexp(others, dim=2) - torch.logsumexp(z, dim=1, keepdim=True)


def negative_loss(student_logits: Tensor, neg_mask: Tensor, eps: float = 1e-6) -> Tensor:
    """Complementary-label loss: mean over samples with non-empty N of
    −(1/|N|) Σ_{k∈N} log(1 − p_k).

    log(1 − p_k) is clamped below at log(eps), so a class the student is
    certain of costs at most −log(eps) (≈ 13.8) and its gradient is cut there
    instead of blowing up. With no complementary label in the batch the result
    is a zero that still belongs to the graph (gradients of zero), obtained
    without testing on the host whether any sample had negatives.
    """
    _check_logits(student_logits, "negative_loss")
    if neg_mask.shape != student_logits.shape:
        raise ValueError(f"negative_loss: neg_mask shape {tuple(neg_mask.shape)} differs "
                         f"from logits shape {tuple(student_logits.shape)}")
    if not 0.0 < eps < 1.0:
        raise ValueError(f"negative_loss: eps={eps!r} must lie in (0, 1)")
    log1m = log_one_minus_softmax(student_logits).clamp_min(math.log(eps))
    n = neg_mask.float()
    size = n.sum(dim=1)
    per_sample = -(n * log1m).sum(dim=1) / size.clamp_min(1.0)
    has = (size > 0).float()
    return (per_sample * has).sum() / has.sum().clamp_min(1.0)
