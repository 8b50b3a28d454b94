"""Per-image preprocessing applied to every split alike, after decoding."""
from __future__ import annotations

import dataclasses

import numpy as np

from ssfer.data.dataset import FERData


def autocontrast(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Stretch each image's grey levels to span 0..255 (min -> 0, max -> 255).

    One min and max per image over all its channels, so colours keep their
    balance; a flat image is returned unchanged. ``images``: uint8 (N, H, W, C).
    Why: a test split stored with stretched contrast and a train split without
    (the shared FER2013 copy, see ``ssfer data check``) is a shift a model
    trained from scratch does not survive; stretching both removes it.
    """
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"autocontrast: expected uint8 (N, H, W, C) images, got {images.dtype} {images.shape}")
    out = np.empty_like(images)
    for s in range(0, len(images), chunk):
        x = images[s:s + chunk]
        lo = x.min(axis=(1, 2, 3), keepdims=True).astype(np.float32)
        hi = x.max(axis=(1, 2, 3), keepdims=True).astype(np.float32)
        span = hi - lo
        scaled = (x.astype(np.float32) - lo) * (255.0 / np.where(span > 0, span, 1.0))
        out[s:s + chunk] = np.where(span > 0, np.rint(scaled), x).astype(np.uint8)
    return out


def preprocess(data: FERData, *, autocontrast_images: bool = False) -> FERData:
    """``data`` with the configured per-image steps applied (the same object when none is)."""
    if not autocontrast_images:
        return data
    return dataclasses.replace(data, images=autocontrast(data.images))
