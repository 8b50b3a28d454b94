"""Per-image tone preprocessing applied to every split alike, after decoding.

Why: a split stored with another tone curve than the others (``ssfer data
check`` reports it as ``contrast-shift``) is a shift a model trained from
scratch may not survive. ``data.tone`` applies one rule (PIL's autocontrast or
equalize) to every split, so no split keeps its own curve. It is a general
tool: none of the data sets this project's results use needs it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ssfer.data.dataset import FERData
from ssfer.tone import apply_lut, autocontrast_lut, equalize_lut, histogram, identity_lut

_RULES = {"autocontrast": autocontrast_lut, "equalize": equalize_lut}
TONES = ("none", *_RULES)  # the values of data.tone


def apply_tone(images: np.ndarray, tone: str, chunk: int = 4096) -> np.ndarray:
    """Each image of uint8 (N, H, W, C) ``images`` through PIL's per-channel
    ``ImageOps.autocontrast`` (cutoff 0) or ``ImageOps.equalize``, exactly,
    computed in batches with the lookup-table ops RandAugment uses
    (``ssfer.tone``). Equalisation maps any one-to-one increasing tone curve
    of an image to the same result."""
    if tone not in _RULES:
        raise ValueError(f"apply_tone: tone={tone!r}; choose one of {tuple(_RULES)}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"apply_tone: expected uint8 (N, H, W, C) images with C in {{1, 3}}, "
                         f"got {images.dtype} {images.shape}")
    out = np.empty_like(images)
    for s in range(0, len(images), chunk):
        # a writable copy: inputs may be read-only memmaps
        x = torch.from_numpy(np.array(images[s:s + chunk])).permute(0, 3, 1, 2)
        lut = _RULES[tone](identity_lut(*x.shape[:2]), histogram(x))
        out[s:s + chunk] = apply_lut(x, lut).permute(0, 2, 3, 1).numpy()
    return out


def preprocess(data: FERData, *, tone: str = "none") -> FERData:
    """``data`` with the tone rule applied to every image (the same object for "none")."""
    if tone not in TONES:
        raise ValueError(f"data.tone={tone!r}; choose one of {TONES}")
    if tone == "none":
        return data
    return dataclasses.replace(data, images=apply_tone(np.asarray(data.images), tone))
