"""Per-step diagnostics of pseudo and complementary labels, accumulated on the device.

Everything here is tensor arithmetic on buffers: the training step never waits
for the host. ``flush()`` is called on the logging cadence; it is the one place
that copies to the host, and it resets the accumulators.
"""
from __future__ import annotations

import torch
from torch import nn


class LabelDiagnostics(nn.Module):
    """Pseudo-label precision/recall per class and complementary-label precision/size,
    measured against the hidden true labels of the unlabeled split."""

    def __init__(self, num_classes: int):
        super().__init__()
        c = num_classes
        self.num_classes = c
        self.register_buffer("seen", torch.zeros(c))          # unlabeled samples by true class
        self.register_buffer("accepted", torch.zeros(c))      # accepted pseudo labels by pseudo class
        self.register_buffer("correct", torch.zeros(c))       # ... of which correct
        self.register_buffer("neg_samples", torch.zeros(()))  # samples with a non-empty negative set
        self.register_buffer("neg_labels", torch.zeros(()))   # negated classes in all
        self.register_buffer("neg_correct", torch.zeros(()))  # negated classes that are truly wrong

    @torch.no_grad()
    def update(self, pseudo: torch.Tensor, mask: torch.Tensor, true: torch.Tensor,
               neg_mask: torch.Tensor | None) -> None:
        # index_add_, not bincount: CUDA's bincount reads its input's max back to the host
        self.seen.index_add_(0, true, torch.ones_like(true, dtype=self.seen.dtype))
        m = mask.to(self.accepted.dtype)
        self.accepted.index_add_(0, pseudo, m)
        self.correct.index_add_(0, pseudo, m * (pseudo == true).to(m.dtype))
        if neg_mask is not None:
            nm = neg_mask.to(self.neg_labels.dtype)
            self.neg_samples += (nm.sum(1) > 0).to(nm.dtype).sum()
            self.neg_labels += nm.sum()
            wrongly_negated = nm.gather(1, true[:, None]).sum()
            self.neg_correct += nm.sum() - wrongly_negated

    @torch.no_grad()
    def flush(self) -> dict:
        """Host copy of the rates since the last flush; resets the accumulators."""
        seen, acc, cor = self.seen.tolist(), self.accepted.tolist(), self.correct.tolist()
        n_seen = sum(seen)
        ns, nl, nc = self.neg_samples.item(), self.neg_labels.item(), self.neg_correct.item()
        for b in self.buffers():
            b.zero_()
        nan = None  # JSON null: "not measured in this interval" (no sample, no pseudo label)
        return {
            "mask_rate": sum(acc) / n_seen if n_seen else nan,
            "pl_precision": sum(cor) / sum(acc) if sum(acc) else nan,
            "pl_precision_per_class": [c / a if a else nan for c, a in zip(cor, acc)],
            "pl_recall_per_class": [c / s if s else nan for c, s in zip(cor, seen)],
            # raw counts since the last flush: pseudo labels by pseudo class, unlabeled samples by true class
            "pl_count_per_class": acc,
            "unlabeled_count_per_class": seen,
            "neg_rate": ns / n_seen if n_seen else nan,
            "neg_precision": nc / nl if nl else nan,
            "neg_size": nl / ns if ns else nan,
        }
