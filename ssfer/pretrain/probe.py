"""The kNN probe: how well the backbone's features sort faces by expression,
with no training at all.

Each query face takes the ``k`` bank faces whose features are nearest in
cosine (features L2-normalised), and they vote for their labels with weight
exp(cosine / temperature) (the weighted kNN monitor of Wu et al. 2018, which
lightly's and DINO's benchmarks use); the top-1 accuracy is the share of queries
whose winning class is their own. Ties go to the lower class index.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def features(encoder: nn.Module, x: torch.Tensor, eval_view, batch: int = 512) -> torch.Tensor:
    """L2-normalised (N, D) features of uint8 faces ``x``, in eval mode (the
    encoder's mode is restored after)."""
    mode = encoder.training
    encoder.eval()
    try:
        out = [encoder(eval_view(x[i:i + batch])).float() for i in range(0, len(x), batch)]
    finally:
        encoder.train(mode)
    return F.normalize(torch.cat(out), dim=1)


@torch.no_grad()
def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, num_classes: int,
                k: int = 20, temperature: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    """The class each query's ``k`` nearest bank features vote for (cosine;
    features need not be normalised). Queries go in chunks, so the similarity
    matrix held at once is ``chunk`` × len(bank)."""
    if len(bank) == 0 or len(bank) != len(bank_labels):
        raise ValueError(f"knn_predict: {len(bank)} bank features with {len(bank_labels)} labels")
    bank = F.normalize(bank.float(), dim=1)
    k = min(k, len(bank))
    out = []
    for q in F.normalize(queries.float(), dim=1).split(chunk):
        sim, idx = (q @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(q), num_classes, device=q.device)
        # less each row's best similarity: the same vote, and no overflow at a small temperature
        votes.scatter_add_(1, bank_labels[idx], torch.exp((sim - sim[:, :1]) / temperature))
        out.append(votes.argmax(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=bank.device)


def knn_accuracy(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, labels: torch.Tensor,
                 num_classes: int, k: int = 20, temperature: float = 0.1) -> float:
    """Top-1 accuracy of ``knn_predict`` on queries with known ``labels``."""
    if len(queries) == 0:
        raise ValueError("knn_accuracy: no query faces")
    pred = knn_predict(bank, bank_labels, queries, num_classes, k=k, temperature=temperature)
    return int((pred == labels.to(pred.device)).sum()) / len(labels)
