"""BYOL (Grill et al., 2020) on a FERNet: the online network, its predictor,
the EMA target, the momentum schedule and the loss.

online:  encoder (the FERNet fine-tuning builds, its head removed: body ->
         attention -> feature dropout -> global average pool) -> projector -> predictor
target:  a copy of encoder and projector, never trained: after every step each
         of its weights moves towards the online one, w_t <- tau·w_t + (1 - tau)·w_o,
         with tau rising from ``momentum`` to 1 on a cosine (BYOL's schedule).

The loss compares each view's prediction with the target's projection of the
other view: 2 - 2·cos(p, z) per pair, both directions summed (so 0..8), the
target side without gradient. Both views go through each network as one batch
of 2B (one forward instead of two; batch norm sees both views' statistics).

The target keeps the online network's batch-norm mode (training: batch
statistics, as BYOL's) but not its feature dropout, so that the regression
target is not itself randomly cut.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ssfer.model import FERNet


def mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    """BYOL's projector and predictor: Linear, BatchNorm, ReLU, Linear."""
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, dim_out))


def encoder_from(net: FERNet) -> FERNet:
    """``net`` as a feature extractor: its head replaced by the identity, so that
    ``net(x)`` is the pooled feature (B, D) and its state holds no head."""
    net.head = nn.Identity()
    net.head_drop = nn.Identity()
    return net


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean of 2 - 2·cos(p, z) over the batch: the squared distance of the two
    L2-normalised vectors; ``z`` (the target) carries no gradient."""
    return (2.0 - 2.0 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()


def target_momentum(step: int, total: int, base: float) -> float:
    """BYOL's tau at ``step`` of ``total``: 1 - (1 - base)·(cos(pi·step/total) + 1)/2."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(step, total) / max(total, 1)) + 1.0) / 2.0


class BYOL(nn.Module):
    def __init__(self, encoder: FERNet, projector_hidden: int, projector_dim: int, predictor_hidden: int):
        super().__init__()
        self.encoder = encoder_from(encoder)
        dim = encoder.num_features
        self.projector = mlp(dim, projector_hidden, projector_dim)
        self.predictor = mlp(projector_dim, predictor_hidden, projector_dim)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_encoder.feature_dropout = nn.Identity()
        self.target_projector = copy.deepcopy(self.projector)
        for p in (*self.target_encoder.parameters(), *self.target_projector.parameters()):
            p.requires_grad_(False)

    def online_parameters(self) -> list[nn.Parameter]:
        """What the optimizer trains: encoder, projector, predictor."""
        return [*self.encoder.parameters(), *self.projector.parameters(), *self.predictor.parameters()]

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """The symmetric loss of two views of the same faces."""
        p1, p2 = self.predictor(self.projector(self.encoder(torch.cat([v1, v2])))).chunk(2)
        with torch.no_grad():
            z1, z2 = self.target_projector(self.target_encoder(torch.cat([v1, v2]))).chunk(2)
        return byol_loss(p1.float(), z2.float()) + byol_loss(p2.float(), z1.float())

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """Move the target's weights towards the online ones; copy its buffers
        (batch-norm running statistics, which the target in training mode never reads)."""
        for online, target in ((self.encoder, self.target_encoder), (self.projector, self.target_projector)):
            params = dict(online.named_parameters())
            for name, p in target.named_parameters():
                p.lerp_(params[name], 1.0 - tau)
            buffers = dict(online.named_buffers())
            for name, b in target.named_buffers():
                b.copy_(buffers[name])

    def backbone_state(self) -> dict[str, torch.Tensor]:
        """The online encoder's tensors under the FERNet names (``body.*``,
        ``attention.*``): what ``model.pretrained_path`` loads for fine-tuning."""
        return {k: v.detach().clone() for k, v in self.encoder.state_dict().items()}
