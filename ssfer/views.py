"""Batched weak / strong views on the training device.

Images stay uint8 on the device the model trains on and are augmented there a
whole batch at a time: no loader workers, no per-image PIL.

Input: uint8 images, (B, C, H, W) or (B, H, W, C) with C in {1, 3}, on any
device; output: float, normalised, same device and layout. Every random
parameter is drawn per sample, for the whole batch at once, from an optional
``torch.Generator``, so a seeded CPU run is reproducible bit for bit.

weak   = random horizontal flip + padded random crop (reflect padding).
strong = the same flip and crop + RandAugment (n ops per sample, each with a
         random strength up to magnitude m on FixMatch's 0..10 scale) + Cutout.

Why it is fast — every stage is one batched pass, whatever ops were drawn:
1. geometry: flip, crop and the geometric ops a sample drew (rotate, shear,
   translate, composed into one affine map) become one source-pixel index per
   output pixel: a single uint8 gather, nearest neighbour — the resampling
   PIL's and torchvision's RandAugment use by default;
2. tone: autocontrast, equalize, solarize, posterize, brightness and contrast
   are per-image 256-entry lookup tables in PIL, and they compose, and their
   image statistics follow from a histogram pushed through the tables; so each
   sample's chain costs O(256), and a single table lookup (with the
   normalisation folded in) applies it;
3. colour and sharpness, the two ops that are no lookup table, run on the
   samples that drew them (CPU: picked by index; elsewhere: whole batch with a
   mask, which needs no host sync; see ``subset``);
4. Cutout fills a per-sample square with the mean colour (0 once normalised).
Within a sample the ops therefore run in the order geometry, tone, colour/
sharpness, each group in its drawn order. Per-image RandAugment applies them in
drawn order; the two differ only when a drawn pair straddles groups in the
other order (e.g. a drawn "solarize, then rotate" here also solarizes the
rotation's fill).

The tone tables are ``ssfer.tone``'s, which follow PIL's integer definitions
(ImageOps / ImageEnhance) to the bit.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ssfer.tone import (LUMA, autocontrast_lut, brightness_lut, contrast_lut, equalize_lut, histogram, identity_lut,
                        lut_index, posterize_lut, solarize_lut)

OPS = ("identity", "autocontrast", "equalize", "rotate", "solarize", "color", "contrast", "brightness",
       "sharpness", "posterize", "shear_x", "shear_y", "translate_x", "translate_y")
GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
TONE = ("autocontrast", "equalize", "solarize", "posterize", "brightness", "contrast")
PIXEL = ("color", "sharpness")
RGB_ONLY = ("color",)
# ranges at full strength (magnitude 10 of 10), as FixMatch's / torchvision's RandAugment
MAX_ROTATE_DEG = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATE = 0.3  # fraction of the image side
MAX_ENHANCE = 0.9  # enhance factors in 1 ± 0.9


def to_nchw(x: torch.Tensor) -> torch.Tensor:
    """A (B, C, H, W) view of uint8 images given as NCHW or NHWC (C in {1, 3});
    NHWC comes back as a channels_last NCHW view, without a copy."""
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise ValueError(f"views: expected uint8 images of shape (B, C, H, W) or (B, H, W, C), "
                         f"got {x.dtype} {tuple(x.shape)}")
    if x.shape[1] in (1, 3):
        return x
    if x.shape[-1] in (1, 3):
        return x.permute(0, 3, 1, 2)
    raise ValueError(f"views: cannot find a channel axis of size 1 or 3 in shape {tuple(x.shape)}")


# ---- colour and sharpness: float images in [0, 255] ---------------------------

def color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Saturation: blend with the grey image (ImageEnhance.Color); RGB only."""
    r, g, b = x.unbind(1)
    grey = (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)
    return torch.lerp(grey.expand_as(x), x, factor.view(-1, 1, 1, 1).to(x.dtype)).clamp_(0, 255)


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with PIL's SMOOTH filter (3×3 kernel 1,1,1/1,5,1/1,1,1 over 13);
    as in PIL the one-pixel border keeps its values (ImageEnhance.Sharpness)."""
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    smooth = x.clone()
    # shifted slices instead of a depthwise conv2d: faster on the CPU
    smooth[..., 1:-1, 1:-1] = (box + 4.0 * x[..., 1:-1, 1:-1]) / 13.0
    return torch.lerp(smooth, x, factor.view(-1, 1, 1, 1).to(x.dtype)).clamp_(0, 255)


# ---- geometry -----------------------------------------------------------------

def inverse_affine(angle_deg: torch.Tensor, shear_x: torch.Tensor, shear_y: torch.Tensor,
                   tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) maps from output to input pixel positions, about the image
    centre, for a counter-clockwise rotation (as PIL's rotate), a shear, or a
    translation by (tx, ty) (content moves by −t pixels, as in FixMatch). Exact
    when at most one of the five is non-zero per sample, which is how the
    strong view calls it (one op per slot)."""
    a = torch.deg2rad(angle_deg)
    cos, sin = torch.cos(a), torch.sin(a)
    zero, one = torch.zeros_like(cos), torch.ones_like(cos)
    rows = [torch.stack([cos, shear_x - sin, tx], -1),
            torch.stack([sin + shear_y, cos, ty], -1),
            torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, -2)


def source_pixels(inverse: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest source row and column (B, H, W) of each output pixel under the
    (B, 3, 3) inverse maps, in the image padded by one pixel on each side:
    0 and h + 1 (w + 1) are the padding, where every point outside lands."""
    ys = torch.arange(h, device=inverse.device, dtype=inverse.dtype) + (0.5 - h / 2)
    xs = torch.arange(w, device=inverse.device, dtype=inverse.dtype) + (0.5 - w / 2)
    m = inverse[:, :2, :, None]  # (B, 2, 3, 1)
    # +1 for the padding; x·row + y·row as one broadcast add over (B, H, W)
    sx = (m[:, 0, 0] * xs + (m[:, 0, 2] + (w / 2 + 1)))[:, None, :] + (m[:, 0, 1] * ys)[:, :, None]
    sy = (m[:, 1, 0] * xs + (m[:, 1, 2] + (h / 2 + 1)))[:, None, :] + (m[:, 1, 1] * ys)[:, :, None]
    # values are >= 0 once clamped, so truncation is the floor
    return sy.clamp_(0, h + 1).to(torch.int64), sx.clamp_(0, w + 1).to(torch.int64)


def pad_fill(x: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """uint8 images framed by one pixel of the per-channel ``fill``."""
    b, c, h, w = x.shape
    out = fill.to(torch.uint8).view(1, c, 1, 1).expand(b, c, h + 2, w + 2).clone()
    out[:, :, 1:-1, 1:-1] = x
    return out


def warp(x: torch.Tensor, inverse: torch.Tensor, fill: int | Sequence[int] = 0) -> torch.Tensor:
    """uint8 images resampled (nearest) through (B, 3, 3) inverse maps; ``fill`` outside."""
    b, c, h, w = x.shape
    row, col = source_pixels(inverse, h, w)
    padded = pad_fill(x, torch.as_tensor(fill, device=x.device).expand(c))
    idx = (row * (w + 2) + col).view(b, 1, h * w).expand(b, c, h * w)
    return padded.view(b, c, -1).gather(2, idx).view(b, c, h, w)


class Views(nn.Module):
    """Batched weak/strong views. See the module docstring.

    mean, std: per-channel normalisation on the [0, 1] scale (one value or C values).
    crop_pad: reflect padding of the random crop, as a fraction of the side.
    flip: probability of a horizontal flip (True = 0.5).
    randaug_n, randaug_m: ops per sample; magnitude on FixMatch's 0..10 scale —
        each op's strength is uniform in [0, m/10] of its full range, signed at random.
    cutout: largest Cutout square side as a fraction of the image side (0 = off).
    ops: the RandAugment pool (default OPS; "color" is skipped for grey images).
    subset: run colour/sharpness on the drawn samples only (True) or on the whole
        batch under a mask (False, sync-free); None = True on the CPU only.
    The fill of geometric ops and Cutout is the mean colour (0 once normalised).
    """

    @classmethod
    def for_channels(cls, channels: int) -> "Views":
        """The views every run trains and is evaluated with: uint8 faces scaled to
        [-1, 1] (mean and std 0.5 per channel), the default augmentations."""
        return cls(mean=(0.5,) * channels, std=(0.5,) * channels)

    def __init__(self, mean: float | Sequence[float] = 0.5, std: float | Sequence[float] = 0.5,
                 crop_pad: float = 0.125, flip: bool | float = True, randaug_n: int = 2, randaug_m: float = 10,
                 cutout: float = 0.5, ops: Sequence[str] | None = None, subset: bool | None = None,
                 out_dtype: torch.dtype = torch.float32):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean_t.numel() not in (1, 3) or std_t.numel() not in (1, 3) or (std_t <= 0).any():
            raise ValueError(f"Views: mean/std need 1 or 3 values and std > 0, got mean={mean}, std={std}")
        if not 0.0 <= crop_pad < 0.5:
            raise ValueError(f"Views: crop_pad={crop_pad} must be in [0, 0.5) (reflect padding < image side)")
        flip_p = 0.5 if flip is True else float(flip)
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"Views: flip={flip} must be a bool or a probability")
        if randaug_n < 0 or not 0.0 <= randaug_m <= 10.0:
            raise ValueError(f"Views: randaug_n={randaug_n} must be >= 0 and randaug_m={randaug_m} in [0, 10]")
        if not 0.0 <= cutout <= 1.0:
            raise ValueError(f"Views: cutout={cutout} must be in [0, 1]")
        ops = tuple(OPS if ops is None else ops)
        unknown = [o for o in ops if o not in OPS]
        if unknown or not ops:
            raise ValueError(f"Views: unknown or empty ops {unknown or ops}; choose from {OPS}")
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)
        self.crop_pad, self.flip_p, self.cutout = crop_pad, flip_p, cutout
        self.randaug_n, self.randaug_m, self.ops = int(randaug_n), float(randaug_m), ops
        self.subset, self.out_dtype = subset, out_dtype

    # ---- helpers -------------------------------------------------------------
    def _affine(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (scale, shift) taking [0, 255] values to normalised ones."""
        c = x.shape[1]
        if self.mean.numel() not in (1, c) or self.std.numel() not in (1, c):
            raise ValueError(f"Views: {self.mean.numel()} mean / {self.std.numel()} std values "
                             f"for {c}-channel images")
        mean, std = self.mean.to(x.device).expand(c), self.std.to(x.device).expand(c)
        return 1.0 / (255.0 * std), -mean / std

    def _finish(self, out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        # NHWC input comes back channels_last, as the model consumes it
        if like.shape[1] > 1 and not like.is_contiguous() and like.is_contiguous(memory_format=torch.channels_last):
            out = out.contiguous(memory_format=torch.channels_last)
        return out.to(self.out_dtype)

    @staticmethod
    def _check_gen(x: torch.Tensor, gen: torch.Generator | None) -> None:
        if gen is not None and gen.device.type != x.device.type:
            raise ValueError(f"Views: generator on {gen.device} but images on {x.device}; "
                             f"make it with torch.Generator(device={str(x.device)!r})")

    @staticmethod
    def _uniform(shape, x: torch.Tensor, gen) -> torch.Tensor:
        return torch.rand(shape, generator=gen, device=x.device)

    def _on_drawn(self, x: torch.Tensor, mask: torch.Tensor, fn, *params: torch.Tensor) -> torch.Tensor:
        """x with fn(x, *params) on the samples where mask is set."""
        use_subset = x.device.type == "cpu" if self.subset is None else self.subset
        if use_subset:
            idx = mask.nonzero().squeeze(1)
            if idx.numel():
                x[idx] = fn(x[idx], *(p[idx] for p in params))
            return x
        return torch.where(mask.view(-1, 1, 1, 1), fn(x, *params), x)

    def _crop(self, x: torch.Tensor, gen) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample source rows (B, H) and columns (B, W) of a flip and a crop
        from the reflect-padded image."""
        b, _, h, w = x.shape
        pad_h, pad_w = round(self.crop_pad * h), round(self.crop_pad * w)
        flip = self._uniform(b, x, gen) < self.flip_p
        dy = (self._uniform(b, x, gen) * (2 * pad_h + 1)).long() - pad_h
        dx = (self._uniform(b, x, gen) * (2 * pad_w + 1)).long() - pad_w
        rows = torch.arange(h, device=x.device) + dy[:, None]
        cols = torch.arange(w, device=x.device) + dx[:, None]
        # reflect about the border pixels, as F.pad(mode="reflect"); |shift| < side
        rows = (h - 1) - ((h - 1) - rows.abs()).abs()
        cols = (w - 1) - ((w - 1) - cols.abs()).abs()
        return rows, torch.where(flip[:, None], (w - 1) - cols, cols)

    @staticmethod
    def _gather(x: torch.Tensor, flat: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Pixels of each image at flat positions (B, h·w), as (B, C, h, w)."""
        b, c = x.shape[:2]
        h, w = size or x.shape[2:]
        idx = flat.reshape(b, 1, h * w).expand(b, c, h * w)
        return x.contiguous().view(b, c, -1).gather(2, idx).view(b, c, h, w)

    # ---- views ---------------------------------------------------------------
    def eval_view(self, x: torch.Tensor) -> torch.Tensor:
        x = to_nchw(x)
        scale, shift = self._affine(x)
        return self._finish(x.float().mul_(scale.view(1, -1, 1, 1)).add_(shift.view(1, -1, 1, 1)), x)

    def weak(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        x = to_nchw(x)
        self._check_gen(x, gen)
        rows, cols = self._crop(x, gen)
        img = self._gather(x, rows[:, :, None] * x.shape[3] + cols[:, None, :])
        scale, shift = self._affine(x)
        return self._finish(img.float().mul_(scale.view(1, -1, 1, 1)).add_(shift.view(1, -1, 1, 1)), x)

    def strong(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        x = to_nchw(x)
        self._check_gen(x, gen)
        b, c = x.shape[:2]
        ops = tuple(o for o in self.ops if c == 3 or o not in RGB_ONLY) or ("identity",)
        n = self.randaug_n
        # every draw up front, whole batch, fixed order: a strong view with no ops
        # equals the weak view of the same seed, and `subset` cannot change results
        rows, cols = self._crop(x, gen)
        choice = (self._uniform((b, n), x, gen) * len(ops)).long().clamp_(max=len(ops) - 1)
        strength = self._uniform((b, n), x, gen) * (self.randaug_m / 10.0)
        signed = torch.where(self._uniform((b, n), x, gen) < 0.5, -strength, strength)
        cut = self._uniform((b, 3), x, gen)
        drew = {op: choice == j for j, op in enumerate(ops)}  # (B, n) each

        img = self._geometry(x, rows, cols, drew, signed)
        out = self._tone(img, drew, strength, signed)
        out = self._colour_sharpness(out, drew, signed)
        return self._finish(self._cutout(out, cut) if self.cutout > 0 else out, x)

    # ---- stages of the strong view ------------------------------------------------
    def _geometry(self, x, rows, cols, drew, signed) -> torch.Tensor:
        """uint8 images through flip, crop and each sample's composed affine map: one gather."""
        b, c, h, w = x.shape
        n = signed.shape[1]
        if not any(op in drew for op in GEOMETRIC):
            return self._gather(x, rows[:, :, None] * w + cols[:, None, :])
        zero = torch.zeros_like(signed)
        amount = {op: torch.where(drew[op], signed, zero) if op in drew else zero for op in GEOMETRIC}
        inverse = torch.eye(3, device=x.device).expand(b, 3, 3)
        for k in range(n):  # first op's inverse leftmost: the last op is undone first
            inverse = inverse @ inverse_affine(
                amount["rotate"][:, k] * MAX_ROTATE_DEG,
                amount["shear_x"][:, k] * MAX_SHEAR, amount["shear_y"][:, k] * MAX_SHEAR,
                amount["translate_x"][:, k] * (MAX_TRANSLATE * w), amount["translate_y"][:, k] * (MAX_TRANSLATE * h))
        row, col = source_pixels(inverse, h, w)
        # crop tables extended to the padded frame: index 0 and h + 1 (w + 1) stay padding
        edge = torch.zeros(b, 1, dtype=rows.dtype, device=x.device)
        rows_p = torch.cat([edge, rows + 1, edge + (h + 1)], 1)
        cols_p = torch.cat([edge, cols + 1, edge + (w + 1)], 1)
        flat = rows_p.gather(1, row.view(b, -1)) * (w + 2) + cols_p.gather(1, col.view(b, -1))
        scale, shift = self._affine(x)
        fill = torch.round(-shift / scale).clamp_(0, 255)  # the mean colour
        return self._gather(pad_fill(x, fill), flat, (h, w))

    def _tone(self, img, drew, strength, signed) -> torch.Tensor:
        """Normalised float images after each sample's composed tone tables: one lookup."""
        b, c = img.shape[:2]
        idx = lut_index(img)
        lut = identity_lut(b, c, img.device)
        tone = [op for op in TONE if op in drew]
        if tone:
            hist = histogram(img, idx) if {"autocontrast", "equalize", "contrast"} & set(tone) else None
            factor = 1.0 + signed * MAX_ENHANCE
            for k in range(signed.shape[1]):
                s, f = strength[:, k], factor[:, k]
                tables = {"autocontrast": lambda: autocontrast_lut(lut, hist),
                          "equalize": lambda: equalize_lut(lut, hist),
                          "solarize": lambda: solarize_lut(lut, 256.0 * (1.0 - s)),
                          "posterize": lambda: posterize_lut(lut, 8 - torch.round(4.0 * s)),
                          "brightness": lambda: brightness_lut(lut, f),
                          "contrast": lambda: contrast_lut(lut, hist, f)}
                for op in tone:
                    lut = torch.where(drew[op][:, k].view(b, 1, 1), tables[op](), lut)
        scale, shift = self._affine(img)
        table = lut.float() * scale.view(1, c, 1) + shift.view(1, c, 1)
        return table.view(-1).index_select(0, idx.view(-1)).view(img.shape)

    def _colour_sharpness(self, out, drew, signed) -> torch.Tensor:
        """Colour and sharpness on the samples that drew them, computed in [0, 255]."""
        pixel = [op for op in PIXEL if op in drew]
        if not pixel:
            return out
        scale, shift = self._affine(out)
        s4, t4 = scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1)
        factor = 1.0 + signed * MAX_ENHANCE
        fns = {"color": color, "sharpness": sharpness}
        for k in range(signed.shape[1]):
            for op in pixel:
                out = self._on_drawn(out, drew[op][:, k],
                                     lambda z, f, fn=fns[op]: fn((z - t4) / s4, f) * s4 + t4, factor[:, k])
        return out

    def _cutout(self, out, cut) -> torch.Tensor:
        """A square of side up to cutout·side, centred anywhere, set to the mean (0)."""
        h, w = out.shape[2:]
        half = cut[:, 0] * (self.cutout * min(h, w)) / 2
        ys = torch.arange(h, device=out.device) + 0.5
        xs = torch.arange(w, device=out.device) + 0.5
        in_y = (ys - cut[:, 1:2] * h).abs() < half[:, None]
        in_x = (xs - cut[:, 2:3] * w).abs() < half[:, None]
        return out.masked_fill_((in_y[:, :, None] & in_x[:, None, :]).unsqueeze(1), 0.0)

    def forward(self, x: torch.Tensor, view: str = "weak", gen: torch.Generator | None = None) -> torch.Tensor:
        if view == "weak":
            return self.weak(x, gen)
        if view == "strong":
            return self.strong(x, gen)
        if view == "eval":
            return self.eval_view(x)
        raise ValueError(f"Views: view={view!r}; expected 'weak', 'strong' or 'eval'")
