"""Per-image tone operations as 256-entry lookup tables, batched on any device.

PIL's autocontrast, equalize, solarize, posterize, brightness and contrast are
per-image lookup tables on uint8 values, and tables compose: so a chain of
them costs O(256) per image and channel, and one lookup applies it. Each op
here takes ``lut`` (B, C, 256), mapping each original value to the current
one, and (where the op reads image statistics) ``hist`` (B, C, 256), the
counts of the original values; it returns the new table. Statistics after
earlier ops follow from the histogram pushed through the current table.

The ops follow PIL's integer definitions (ImageOps / ImageEnhance) to the bit,
as ``tests/test_views.py`` checks. ``ssfer.views`` composes them into
RandAugment's tone ops; ``ssfer.data.preprocess`` applies autocontrast or
equalize to whole data sets.
"""
from __future__ import annotations

import torch

LUMA = (0.299, 0.587, 0.114)  # PIL's "L" conversion
_LUMA_ON: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def _luma(like: torch.Tensor) -> torch.Tensor:
    """LUMA as a tensor on ``like``'s device, made once: a new host-to-device copy
    in every strong view would be a host sync on CUDA."""
    key = (like.device, like.dtype)
    if key not in _LUMA_ON:
        _LUMA_ON[key] = torch.tensor(LUMA, dtype=like.dtype, device=like.device)
    return _LUMA_ON[key]



def lut_index(x: torch.Tensor) -> torch.Tensor:
    """(B·C, H·W) int32 positions of uint8 (B, C, H, W) values in flattened
    (B, C, 256) tables; int32 halves the traffic of the largest tensor here."""
    b, c = x.shape[:2]
    # convert, then add in place: a mixed uint8 + int32 add is slower on the CPU
    return x.reshape(b * c, -1).int().add_(256 * torch.arange(b * c, device=x.device, dtype=torch.int32)[:, None])


def histogram(x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C, 256) int64 value counts of uint8 (B, C, H, W) images
    (``index``: their ``lut_index``, if already computed)."""
    b, c = x.shape[:2]
    index = (lut_index(x) if index is None else index).view(-1)
    if x.device.type == "cpu":
        return torch.bincount(index, minlength=b * c * 256).view(b, c, 256)
    # CUDA's bincount reads the maximum back to the host; index_add_ needs no sync
    ones = torch.ones((), dtype=torch.int64, device=x.device).expand(index.numel())
    return torch.zeros(b * c * 256, dtype=torch.int64, device=x.device).index_add_(0, index, ones).view(b, c, 256)


def identity_lut(b: int, c: int, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.arange(256, device=device).expand(b, c, 256)


def apply_lut(x: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) images through (B, C, 256) integer tables."""
    b, c = x.shape[:2]
    return lut.gather(2, x.reshape(b, c, -1).to(torch.int64)).view(x.shape).to(torch.uint8)


def _col(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1)


def _current_hist(lut: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(hist).scatter_add_(2, lut, hist)


def _blend_lut(lut: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # PIL's ImagingBlend: float32 arithmetic, clip to [0, 255], truncate
    y = degenerate + _col(factor).float() * (lut.float() - degenerate)
    return y.clamp_(0, 255).to(torch.int64)


def autocontrast_lut(lut: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
    """Stretch each channel's current range to [0, 255] (ImageOps.autocontrast, cutoff 0)."""
    present = _current_hist(lut, hist) > 0
    bins = torch.arange(256, device=lut.device)
    lo = torch.where(present, bins, 255).amin(2, keepdim=True)
    hi = torch.where(present, bins, 0).amax(2, keepdim=True)
    span = (hi - lo).clamp_min(1).double()
    # PIL's arithmetic to the last bit: scale = 255/span, ix*scale + (-lo*scale), truncated.
    # `255.0 / span` is not it: torch computes a scalar over a tensor as 255 * (1/span),
    # one ulp off, which truncated the top level to 254 in a sixth of FER2013's images
    scale = torch.full_like(span, 255.0) / span
    stretch = (bins * scale + -lo * scale).clamp_(0, 255).to(torch.int64)
    return torch.where(hi > lo, stretch, bins).gather(2, lut)


def equalize_lut(lut: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation of each channel (ImageOps.equalize's exact table)."""
    h = _current_hist(lut, hist)
    bins = torch.arange(256, device=lut.device)
    last = torch.where(h > 0, bins, 0).amax(2, keepdim=True)
    step = (h.sum(2, keepdim=True) - h.gather(2, last)) // 255
    table = ((step // 2 + h.cumsum(2) - h) // step.clamp_min(1)).clamp_(0, 255)
    return torch.where(step > 0, table, bins).gather(2, lut)


def solarize_lut(lut: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert values at or above the threshold (ImageOps.solarize)."""
    return torch.where(lut >= _col(threshold), 255 - lut, lut)


def posterize_lut(lut: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the top ``bits`` bits (ImageOps.posterize)."""
    mask = 256 - (1 << (8 - bits.to(torch.int64)))
    return lut & _col(mask)


def brightness_lut(lut: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with black (ImageEnhance.Brightness)."""
    return _blend_lut(lut, torch.zeros((), device=lut.device), factor)


def contrast_lut(lut: torch.Tensor, hist: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean grey level (ImageEnhance.Contrast). For RGB
    the mean of PIL's rounded L channel is taken as the luma-weighted channel
    means, which can differ from it by under 0.5 before rounding."""
    h = _current_hist(lut, hist).double()
    channel_mean = (h * torch.arange(256, device=lut.device)).sum(2) / h.sum(2)
    if lut.shape[1] == 3:
        mean = (channel_mean * _luma(channel_mean)).sum(1)
    else:
        mean = channel_mean[:, 0]
    degenerate = torch.floor(mean + 0.5).float()
    return _blend_lut(lut, _col(degenerate), factor)
