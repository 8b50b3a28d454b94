"""Local attention enhancement and feature-map dropout on a backbone's last map.

Both exist so that no single face region dominates the prediction, as the
paper asks: attention re-weights regions, dropout removes one now and then
during training.
Every module here maps (B, D, h, w) -> (B, D, h, w) and exposes its map so the
book can plot it over faces. No data-dependent Python branching, no host syncs:
the modules trace cleanly under torch.compile and run under autocast.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropBlock2d
from timm.layers.cbam import SpatialAttn
from torch import nn

ATTENTIONS = ("none", "spatial", "region")
FEATURE_DROPOUTS = ("none", "block", "channel", "region")


class NoAttention(nn.Module):
    """Identity; its map is the channel-mean activation so plots still work."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class SpatialAttention(SpatialAttn):
    """CBAM spatial attention (timm's conv over [mean, max] channel pools, sigmoid),
    applied in residual form x·(1 + a).

    The norm's scale starts at zero, so a ≡ 0.5 everywhere at initialisation: the
    module is then a uniform rescale, which leaves pretrained features' spatial
    pattern untouched until the attention has learned something.
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__(kernel_size=kernel_size)
        nn.init.zeros_(self.conv.bn.weight)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return self.gate(self.conv(pooled)).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1.0 + self.attention_map(x).unsqueeze(1))


class RegionAttention(nn.Module):
    """Attention over a g×g grid of face regions.

    Each region's pooled feature is scored by a small shared MLP plus a learned
    per-region bias (where a region sits matters for faces); weights are
    g²·softmax(scores), so they average 1, and are upsampled (nearest) onto the
    map. The last layer and the bias start at zero: the module starts as the
    identity. The grid may be finer than the map (adaptive pooling overlaps).
    """

    def __init__(self, channels: int, grid: int = 3, hidden: int = 128):
        super().__init__()
        if grid < 1:
            raise ValueError(f"region attention: grid must be >= 1, got {grid}")
        self.grid = grid
        self.score = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.region_bias = nn.Parameter(torch.zeros(grid * grid))
        nn.init.zeros_(self.score[-1].weight)
        nn.init.zeros_(self.score[-1].bias)

    def region_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, g, g) weights with mean 1."""
        g = self.grid
        regions = F.adaptive_avg_pool2d(x, g).flatten(2).transpose(1, 2)  # (B, g², D)
        scores = self.score(regions).squeeze(-1) + self.region_bias
        # softmax in float32: bf16 sums over g² would wobble the mean-1 guarantee
        weights = torch.softmax(scores.float(), dim=-1) * (g * g)
        return weights.to(x.dtype).view(-1, g, g)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        w = self.region_weights(x).unsqueeze(1)
        return F.interpolate(w, size=x.shape[-2:], mode="nearest").squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x).unsqueeze(1)


class RegionDropout(nn.Module):
    """During training, each sample with probability ``p`` loses one random cell
    of a g×g grid over its feature map; the sample's kept activations are scaled
    up by (map area / kept area) so its expected sum is unchanged. On a map
    smaller than the grid (2×2 at 48 px with a ResNet) some cells cover no
    position, so fewer samples actually lose a part of the map.
    """

    def __init__(self, p: float = 0.1, grid: int = 3):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"region dropout: drop_prob must be in [0, 1], got {p}")
        if grid < 2:
            raise ValueError(f"region dropout: grid must be >= 2 (dropping the only cell erases the map), got {grid}")
        self.p, self.grid = p, grid

    def keep_mask(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w) float mask of kept positions, already rescaled."""
        b, g = x.shape[0], self.grid
        cell = torch.randint(0, g * g, (b, 1), device=x.device)
        hit = torch.rand(b, 1, device=x.device) < self.p
        cells = torch.arange(g * g, device=x.device).unsqueeze(0)
        keep = ~((cells == cell) & hit)  # (B, g²)
        keep = keep.to(torch.float32).view(b, 1, g, g)
        keep = F.interpolate(keep, size=x.shape[-2:], mode="nearest")
        # clamp guards maps smaller than the grid, where one cell may cover all of it
        scale = keep[0].numel() / keep.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1.0)
        return keep * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * self.keep_mask(x).to(x.dtype)


def make_attention(kind: str, channels: int, grid: int = 3, kernel_size: int = 7) -> nn.Module:
    if kind == "none":
        return NoAttention()
    if kind == "spatial":
        return SpatialAttention(kernel_size=kernel_size)
    if kind == "region":
        return RegionAttention(channels, grid=grid)
    raise ValueError(f"attention={kind!r}: expected one of {ATTENTIONS}")


def make_feature_dropout(kind: str, drop_prob: float, block_size: int = 3, grid: int = 3) -> nn.Module:
    if not 0.0 <= drop_prob <= 1.0:
        raise ValueError(f"drop_prob={drop_prob}: expected a probability in [0, 1]")
    if kind == "none":
        return nn.Identity()
    if kind == "block":
        return DropBlock2d(drop_prob=drop_prob, block_size=block_size)
    if kind == "channel":
        return nn.Dropout2d(drop_prob)
    if kind == "region":
        return RegionDropout(drop_prob, grid=grid)
    raise ValueError(f"feature_dropout={kind!r}: expected one of {FEATURE_DROPOUTS}")
