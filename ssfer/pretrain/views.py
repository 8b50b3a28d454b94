"""BYOL's two views of a face, batched on the training device.

Each view: brightness and contrast (with probability ``jitter``), a random
resized crop with a floor on its area and limits on its aspect (so eyes and
mouth stay in it: at 48 px a SimCLR-style 8 % crop holds one eye), a
horizontal flip, and a Gaussian blur (per view, BYOL's asymmetric
probabilities). No hue, saturation or grey-conversion: the faces are grey, and
for RGB faces colour is left as it is.

As in ``ssfer.views``: uint8 in, float normalised as every run's views
(``Views.for_channels``) out, every random parameter drawn per sample for the
whole batch in a fixed order from an optional ``torch.Generator``, so a seeded
run repeats bit for bit and a resumed one draws what the uninterrupted one did.

1. tone: brightness then contrast are ``ssfer.tone``'s PIL-exact lookup tables,
   composed per image and applied (normalisation folded in) in one lookup,
   before the crop: so contrast blends with the whole face's mean, not the
   crop's (as a PIL pipeline that jitters before cropping would);
2. crop, flip and resize: one bilinear ``grid_sample`` with a per-sample affine
   map (the crop box in continuous coordinates; torchvision's RandomResizedCrop
   retries a draw whose box does not fit, here its sides are clipped to the
   image);
3. blur: a separable per-sample Gaussian (a delta where not drawn), one grouped
   convolution per direction, reflect padding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ssfer.pretrain.config import ViewConfig
from ssfer.tone import brightness_lut, contrast_lut, histogram, identity_lut, lut_index
from ssfer.views import Views, to_nchw


class PairViews(nn.Module):
    """``pair(x, gen)`` -> two views of the uint8 faces ``x``; see the module docstring."""

    def __init__(self, cfg: ViewConfig, channels: int):
        super().__init__()
        self.cfg = cfg
        # the normalisation every run trains and evaluates with, and its eval view for the probe
        self.base = Views.for_channels(channels)

    def pair(self, x: torch.Tensor, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        first, second = self.cfg.blur
        return self.view(x, first, gen), self.view(x, second, gen)

    def eval_view(self, x: torch.Tensor) -> torch.Tensor:
        return self.base.eval_view(x)

    def view(self, x: torch.Tensor, blur_p: float, gen: torch.Generator | None = None) -> torch.Tensor:
        x = to_nchw(x)
        if gen is not None and gen.device.type != x.device.type:
            raise ValueError(f"PairViews: generator on {gen.device} but images on {x.device}")
        b = x.shape[0]
        # every draw up front, in a fixed order, whatever is applied
        u = torch.rand((b, 10), generator=gen, device=x.device)
        img = self._tone(x, u[:, 0] < self.cfg.jitter, u[:, 1], u[:, 2])
        img = self._crop(img, u[:, 3:7], u[:, 7] < self.cfg.flip)
        return self._blur(img, u[:, 8] < blur_p, u[:, 9])

    def _tone(self, x: torch.Tensor, on: torch.Tensor, ub: torch.Tensor, uc: torch.Tensor) -> torch.Tensor:
        """Normalised float faces after brightness then contrast (where ``on``): one lookup."""
        b, c = x.shape[:2]
        idx = lut_index(x)
        lut = identity_lut(b, c, x.device)
        fb = 1.0 + (2.0 * ub - 1.0) * self.cfg.brightness
        fc = 1.0 + (2.0 * uc - 1.0) * self.cfg.contrast
        jittered = contrast_lut(brightness_lut(lut, fb), histogram(x, idx), fc)
        lut = torch.where(on.view(b, 1, 1), jittered, lut)
        mean, std = self.base.mean.to(x.device).expand(c), self.base.std.to(x.device).expand(c)
        table = lut.float() / (255.0 * std.view(1, c, 1)) - (mean / std).view(1, c, 1)
        return table.view(-1).index_select(0, idx.view(-1)).view(x.shape)

    def _crop(self, img: torch.Tensor, u: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """A box of area share in ``crop_scale`` and aspect (width/height) in
        ``crop_ratio``, resized back to the full size, flipped where ``flip``."""
        b, c, h, w = img.shape
        (s_lo, s_hi), (r_lo, r_hi) = self.cfg.crop_scale, self.cfg.crop_ratio
        area = s_lo + u[:, 0] * (s_hi - s_lo)
        ratio = torch.exp(math.log(r_lo) + u[:, 1] * (math.log(r_hi) - math.log(r_lo)))
        # sides as shares of the image's: (bw·w) / (bh·h) = ratio, bw·bh = area
        bw = torch.sqrt(area * ratio * h / w).clamp(max=1.0)
        bh = torch.sqrt(area / ratio * w / h).clamp(max=1.0)
        # box centre in [-1, 1] coordinates, anywhere the box fits
        cx = (2.0 * u[:, 2] - 1.0) * (1.0 - bw)
        cy = (2.0 * u[:, 3] - 1.0) * (1.0 - bh)
        zero = torch.zeros_like(bw)
        theta = torch.stack([torch.stack([torch.where(flip, -bw, bw), zero, cx], 1),
                             torch.stack([zero, bh, cy], 1)], 1)
        grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
        return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _blur(self, img: torch.Tensor, on: torch.Tensor, us: torch.Tensor) -> torch.Tensor:
        """A Gaussian of sigma in ``blur_sigma`` pixels where ``on``; a delta elsewhere."""
        b, c, h, w = img.shape
        lo, hi = self.cfg.blur_sigma
        radius = max(1, min(math.ceil(3.0 * hi), h - 1, w - 1))
        sigma = (lo + us * (hi - lo)).view(b, 1)
        offsets = torch.arange(-radius, radius + 1, device=img.device, dtype=img.dtype)
        kernel = torch.exp(-offsets.square() / (2.0 * sigma.square()))
        kernel = kernel / kernel.sum(1, keepdim=True)
        delta = (offsets == 0).to(img.dtype).expand(b, -1)
        kernel = torch.where(on.view(b, 1), kernel, delta).repeat_interleave(c, 0)  # (b·c, 2r+1)
        flat = img.reshape(1, b * c, h, w)
        flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel.view(b * c, 1, 1, -1),
                        groups=b * c)
        flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel.view(b * c, 1, -1, 1),
                        groups=b * c)
        return flat.view(b, c, h, w)
