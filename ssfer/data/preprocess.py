"""Per-image tone preprocessing applied to every split alike, after decoding.

Why: a split stored with another tone curve than the others is a shift a
model trained from scratch may not survive. The shared FER2013 copy is one:
its test images are contrast-stretched and its train images are not (``ssfer
data check`` reports ``contrast-shift``), and models trained on either split
do not transfer to the other. In a plain training loop (test_resnet, 300
steps, all train labels; held-out train / test) the tone rules narrowed the
gap: 24.9% / 14.5% as stored, 30.4% / 22.5% with ``autocontrast``, 34.9% /
24.7% with ``equalize``; in the library's trainer (1500 steps, all labels)
``equalize`` did not help (test 16.0% against 19.0%). The rules are offered
as tools; they do not explain or remove that copy's shift.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageOps

from ssfer.data.dataset import FERData

TONES = ("none", "autocontrast", "equalize")


def autocontrast(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Stretch each image's grey levels to span 0..255 (min -> 0, max -> 255).

    One min and max per image over all its channels, so colours keep their
    balance; a flat image is returned unchanged. ``images``: uint8 (N, H, W, C).
    """
    _check(images, "autocontrast")
    out = np.empty_like(images)
    for s in range(0, len(images), chunk):
        x = images[s:s + chunk]
        lo = x.min(axis=(1, 2, 3), keepdims=True).astype(np.float32)
        hi = x.max(axis=(1, 2, 3), keepdims=True).astype(np.float32)
        span = hi - lo
        scaled = (x.astype(np.float32) - lo) * (255.0 / np.where(span > 0, span, 1.0))
        out[s:s + chunk] = np.where(span > 0, np.rint(scaled), x).astype(np.uint8)
    return out


def equalize(images: np.ndarray) -> np.ndarray:
    """PIL's histogram equalisation of each image (each channel of an RGB one).

    Equalisation maps any strictly increasing tone curve of an image to the same
    result, so it undoes a stretch or a gamma applied to one split only (up to
    the levels a stretch clipped). ``images``: uint8 (N, H, W, C).
    """
    _check(images, "equalize")
    out = np.empty_like(images)
    for i, x in enumerate(images):
        img = Image.fromarray(x[..., 0] if x.shape[-1] == 1 else x)
        eq = np.asarray(ImageOps.equalize(img))
        out[i] = eq[..., None] if eq.ndim == 2 else eq
    return out


def _check(images: np.ndarray, name: str) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{name}: expected uint8 (N, H, W, C) images with C in {{1, 3}}, "
                         f"got {images.dtype} {images.shape}")


def preprocess(data: FERData, *, tone: str = "none") -> FERData:
    """``data`` with the tone rule applied to every image (the same object for "none")."""
    if tone not in TONES:
        raise ValueError(f"data.tone={tone!r}; choose one of {TONES}")
    if tone == "none":
        return data
    fn = autocontrast if tone == "autocontrast" else equalize
    return dataclasses.replace(data, images=fn(np.asarray(data.images)))
