"""Cross-dataset evaluation: re-index a data set's labels onto another class list."""
from __future__ import annotations

import warnings

import numpy as np

from ..classes import canonical_name, index_map
from .dataset import FERData


def to_canonical(data: FERData, classes) -> FERData:
    """``data`` with labels re-indexed onto ``classes`` (names in any known spelling).

    Samples whose class is not in ``classes`` (e.g. FERPlus contempt for a
    7-class RAF-DB model) are removed, counted in ``dropped`` under
    "class <name> not in target classes", and a warning says how many.
    soft_labels keep the target classes' columns, renormalised.
    """
    target = tuple(canonical_name(c) for c in classes)
    mapping = np.asarray(index_map(data.class_names, target), dtype=np.int64)
    new = mapping[data.labels]
    keep = new >= 0
    dropped = dict(data.dropped)
    for i, (src, dst) in enumerate(zip(data.class_names, mapping)):
        n = int(np.count_nonzero(data.labels == i)) if dst < 0 else 0
        if n:
            reason = f"class {src} not in target classes"
            dropped[reason] = dropped.get(reason, 0) + n
    if not keep.all():
        gone = {k: v for k, v in dropped.items() if k.endswith("not in target classes")}
        warnings.warn(f"{data.name}/{data.split}: {int((~keep).sum())} samples of classes absent "
                      f"from {list(target)} left out: {gone}", stacklevel=2)
    idx = np.flatnonzero(keep)
    soft = None
    if data.soft_labels is not None:
        soft = np.zeros((len(idx), len(target)), dtype=np.float32)
        cols = [(s, d) for s, d in enumerate(mapping) if d >= 0]
        for s, d in cols:
            soft[:, d] = data.soft_labels[idx, s]
        total = soft.sum(axis=1, keepdims=True)
        soft = np.divide(soft, total, out=np.zeros_like(soft), where=total > 0)
    images = data.images if keep.all() else data.images[idx]
    return FERData(images=images, labels=new[idx], class_names=target, name=data.name, split=data.split,
                   soft_labels=soft, paths=None if data.paths is None else [data.paths[i] for i in idx],
                   dropped=dropped)
