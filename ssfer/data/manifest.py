"""What a loader finds on disk for one split, before any image is decoded.

Every format module turns its official layout into a Manifest; decoding and
caching (``ssfer.data.cache``) and the data check (``ssfer.data.check``) then
work on manifests alone, whatever the format.
"""
from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .errors import Problems

SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "publictest": "val",
    "test": "test", "privatetest": "test",
}


@dataclass
class Manifest:
    """Samples of one split: where each image is, its label, how to crop it.

    sources: absolute image paths, or (for ``fer2013.csv``) pixel strings.
    kind: "files" or "pixels".
    display: a short name of each sample for reports ("train/angry/x.jpg",
        "fer2013.csv:17").
    boxes: optional int64 (N, 4) face boxes (left, top, right, bottom) in
        source pixels, cropped before resizing.
    stats: for "files", (size, mtime_ns) of each source; they enter the cache key.
    key_files: label files etc. whose (path, size, mtime) also enter the key.
    native_size / native_channels: what the images are when the format fixes it
        (used when the caller leaves size / channels as None).
    """

    name: str
    split: str
    root: str
    class_names: tuple[str, ...]
    sources: list[str]
    labels: np.ndarray
    display: list[str]
    kind: str = "files"
    boxes: np.ndarray | None = None
    soft_labels: np.ndarray | None = None
    stats: list[tuple[int, int]] | None = None
    key_files: list[str] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    native_size: tuple[int, int] | None = None
    native_channels: int | None = None
    pixel_shape: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.sources)


class ManifestBuilder:
    """Accumulates samples; stats files as they are added (missing ones reported)."""

    def __init__(self, name: str, split: str, root: str, class_names, problems: Problems):
        self.name, self.split, self.root = name, split, root
        self._prefix = os.path.join(root, "")
        self.class_names = tuple(class_names)
        self.problems = problems
        self.sources: list[str] = []
        self.labels: list[int] = []
        self.display: list[str] = []
        self.boxes: list[tuple[int, int, int, int]] = []
        self.soft: list[np.ndarray] = []
        self.stats: list[tuple[int, int]] = []
        self.dropped: Counter = Counter()

    def add_file(self, path: str, label: int, where: str, *, box=None, soft=None) -> bool:
        """Add an image file; ``where`` names the label row or folder that listed it."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self.problems.error("missing-file", where, f"image file {path} does not exist")
            return False
        if not stat.S_ISREG(st.st_mode):
            self.problems.error("missing-file", where, f"{path} is not a file")
            return False
        self.sources.append(path)
        self.labels.append(label)
        # plain slicing: relpath costs more than the stat on 30k files
        self.display.append(path[len(self._prefix):] if path.startswith(self._prefix)
                            else os.path.relpath(path, self.root))
        self.stats.append((st.st_size, st.st_mtime_ns))
        if box is not None:
            self.boxes.append(box)
        if soft is not None:
            self.soft.append(soft)
        return True

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def build(self, *, key_files=(), native_size=None, native_channels=None) -> Manifest:
        m = Manifest(
            name=self.name, split=self.split, root=self.root, class_names=self.class_names,
            sources=self.sources, labels=np.asarray(self.labels, dtype=np.int64),
            display=self.display,
            boxes=np.asarray(self.boxes, dtype=np.int64).reshape(-1, 4) if self.boxes else None,
            soft_labels=np.stack(self.soft).astype(np.float32) if self.soft else None,
            stats=self.stats, key_files=list(key_files), dropped=self.dropped,
            native_size=native_size, native_channels=native_channels,
        )
        check_not_empty(m, self.problems)
        return m


def check_not_empty(m: Manifest, problems: Problems) -> None:
    if len(m) == 0:
        dropped = f" ({dict(m.dropped)} dropped)" if m.dropped else ""
        problems.error("empty-split", m.root, f"{m.name} split {m.split!r} has no samples{dropped}")


def resolve_split(name: str, split: str, available: tuple[str, ...]) -> str:
    """Canonical split name ('train'/'val'/'test' or a folder name), or DataError."""
    from .errors import DataError

    key = SPLIT_ALIASES.get(str(split).strip().lower(), str(split))
    if key not in available:
        raise DataError(f"{name}: unknown split {split!r}; this layout has {list(available)}")
    return key


def inside_root(root: str, rel: str, where: str, problems: Problems) -> str | None:
    """Join a path read from a label file to root; refuse one that escapes it."""
    if os.path.isabs(rel):
        problems.error("path-escapes-root", where, f"absolute path {rel!r} in a label file; "
                       f"expected a path relative to {root}")
        return None
    # Lexical check: '..' may not climb out, but a symlinked image folder inside
    # the root (a common way to store images elsewhere) stays allowed.
    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.join(base, rel))
    if os.path.commonpath([full, base]) != base:
        problems.error("path-escapes-root", where, f"path {rel!r} leads outside the data set root {root}")
        return None
    return full


def parse_size(size) -> tuple[int, int] | None:
    """size: None, an int (square) or (height, width)."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be an int or (height, width), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return (h, w)
