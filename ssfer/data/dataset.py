"""The in-memory form every loader returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FERData:
    """Decoded images and labels of one split of one data set.

    images: uint8, shape (N, H, W, C) with C in {1, 3} (NHWC so a memory-mapped
        cache and ``torch.channels_last`` share one layout).
    labels: int64, shape (N,), indices into ``class_names``.
    class_names: canonical names (see ``ssfer.classes``), in the data set's order.
    soft_labels: optional float32 (N, len(class_names)) vote distribution (FERPlus).
    paths: optional source file (or "file:row") of each sample, for reports.
    dropped: samples left out while loading, by reason, so nothing vanishes silently.
    digests: optional ``decode.content_digest`` of each sample's source: equal
        digests are byte-identical copies (the leak-free test view drops test
        images whose copy is in train).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    name: str
    split: str
    soft_labels: np.ndarray | None = None
    paths: list[str] | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    digests: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] not in (1, 3):
            raise ValueError(f"{self.name}/{self.split}: images must be uint8 (N,H,W,C) with C in {{1,3}}, "
                             f"got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"{self.name}/{self.split}: {len(self.labels)} labels for {len(self.images)} images")
        if len(self.labels) == 0:
            raise ValueError(f"{self.name}/{self.split}: the split is empty")
        if self.labels.min() < 0 or self.labels.max() >= len(self.class_names):
            raise ValueError(f"{self.name}/{self.split}: labels outside 0..{len(self.class_names) - 1}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def subset(self, idx: np.ndarray) -> "FERData":
        idx = np.asarray(idx)
        return FERData(
            images=self.images[idx], labels=self.labels[idx], class_names=self.class_names,
            name=self.name, split=self.split,
            soft_labels=None if self.soft_labels is None else self.soft_labels[idx],
            paths=None if self.paths is None else [self.paths[i] for i in idx],
            digests=None if self.digests is None else [self.digests[i] for i in idx],
        )
