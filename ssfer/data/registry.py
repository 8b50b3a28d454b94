"""One entry point for every data set: ``load_dataset(name, root, split)``."""
from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass
from typing import Callable

from . import affectnet, cache, fer2013, ferplus, folder, rafdb
from .dataset import FERData
from .errors import DataError, Problems
from .manifest import Manifest, parse_size


@dataclass(frozen=True)
class Format:
    """How one data set's layout is read: ``scan`` builds a split's manifest."""

    name: str
    scan: Callable[..., Manifest]
    available_splits: Callable[..., tuple[str, ...]]

    def options(self) -> list[str]:
        params = inspect.signature(self.scan).parameters.values()
        return [p.name for p in params if p.kind is p.KEYWORD_ONLY]

    def check_options(self, opts: dict) -> None:
        unknown = sorted(set(opts) - set(self.options()))
        if unknown:
            raise DataError(f"{self.name}: unknown option(s) {unknown}; known: {self.options()}")


FORMATS: dict[str, Format] = {
    m.__name__.rsplit(".", 1)[-1]: Format(m.__name__.rsplit(".", 1)[-1], m.scan, m.available_splits)
    for m in (rafdb, affectnet, fer2013, ferplus, folder)
}


def scan(name: str, root, split: str, problems: Problems | None = None, **opts) -> Manifest:
    """The manifest of one split (no decoding); strict unless ``problems`` collects."""
    fmt = _format(name)
    fmt.check_options(opts)
    if root is None:
        raise DataError(f"{name}: root is None; pass the folder the data set was unpacked to")
    if not os.path.exists(root):
        raise DataError(f"{name}: data set root {root} does not exist")
    # absolute from here on: cache keys and reports name files unambiguously
    return fmt.scan(os.path.abspath(os.fspath(root)), split, problems or Problems(strict=True), **opts)


def _format(name: str) -> Format:
    key = str(name).strip().lower()
    if key not in FORMATS:
        raise DataError(f"unknown data set {name!r}; known: {sorted(DATASETS)}")
    return FORMATS[key]


def load_dataset(name: str, root, split: str, *, size=None, channels: int | None = None,
                 cache_dir=None, workers: int | None = None, **opts) -> FERData:
    """Load one split of a data set as FERData (uint8 NHWC, canonical class names).

    name: one of ``DATASETS``: rafdb, affectnet, fer2013, ferplus, folder, synthfer.
    root: the folder the data set was unpacked to (ignored by synthfer).
    split: 'train', 'val' or 'test' (as the data set has them; aliases such as
        'valid', 'PublicTest' are accepted).
    size: int or (height, width) to resize to; None keeps the format's native
        size (images must then all share one size).
    channels: 1 (grey) or 3 (RGB); None keeps the format's own.
    cache_dir: where decoded arrays are cached (None: $SSFER_CACHE or
        ~/.cache/ssfer; False: no disk cache).
    workers: decoding processes (None: all cores available).
    opts: the format's options, e.g. ``labels='label.csv'`` (ferplus),
        ``num_classes=8`` (affectnet), ``class_map={...}`` (folder).

    Raises DataError naming the file and row on anything malformed.
    """
    if str(name).strip().lower() == "synthfer":
        return _load_synthfer(split, size=size, channels=channels, **opts)
    m = scan(name, root, split, **opts)
    return cache.materialize(m, parse_size(size), channels, cache_dir=cache_dir, workers=workers)


def _load_synthfer(split: str, *, size=None, channels=None, **opts) -> FERData:
    from .synthfer import load_synthfer  # generated, not read from disk: no cache

    kw = {k: v for k, v in (("size", size), ("channels", channels)) if v is not None}
    return load_synthfer(split, **kw, **opts)


DATASETS: dict[str, Callable[..., FERData]] = {
    n: functools.partial(load_dataset, n) for n in (*FORMATS, "synthfer")
}
