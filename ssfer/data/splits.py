"""Seeded semi-supervised splits of a train set: labeled / unlabeled / val.

Every class draws from its own stream, ``numpy.random.default_rng([seed, c])``
(PCG64: the same numbers on every machine), and takes one permutation of its
train indices: the labeled samples are its first entries, the validation
samples its last. Hence, for one seed, a smaller label budget is a subset of a
larger one, and the validation set does not move when the budget changes. The
unlabeled set is the rest of train; its labels stay in the data set for
diagnostics only.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import RAFDB_ORDER, canonical_name
from ..io import atomic_write_text
from .errors import DataError

# Ada-CM (CVPR 2022) RAF-DB label budgets: Fear gets fewer, every other class
# the same; each row sums to its budget.
ADACM_RAFDB: dict[int, dict[str, int]] = {
    total: {c: (fear if c == "fear" else other) for c in RAFDB_ORDER}
    for total, fear, other in ((100, 10, 15), (400, 40, 60), (1000, 100, 150),
                               (2000, 200, 300), (4000, 250, 625))
}
SPLIT_FILE = "split.json"
KINDS = ("per_class", "total_with_caps", "adacm_rafdb", "fraction", "all")


def labels_digest(labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class Split:
    """Index arrays into the train split (sorted int64, pairwise disjoint, covering it)."""

    labeled: np.ndarray
    unlabeled: np.ndarray
    val: np.ndarray
    info: dict = field(default_factory=dict)

    def counts(self, labels: np.ndarray, num_classes: int | None = None) -> dict[str, list[int]]:
        k = num_classes or int(labels.max()) + 1
        return {part: np.bincount(labels[getattr(self, part)], minlength=k).tolist()
                for part in ("labeled", "unlabeled", "val")}

    def check(self, labels: np.ndarray) -> None:
        """DataError unless this split was made for exactly these train labels."""
        n, digest = self.info.get("n_train"), self.info.get("labels_digest")
        if n is not None and n != len(labels):
            raise DataError(f"split made for {n} train samples, the data set has {len(labels)}")
        if digest is not None and digest != labels_digest(labels):
            raise DataError("split made for other train labels (labels digest differs): "
                            "the data set or its class order changed")

    def save(self, directory) -> Path:
        """Write ``<directory>/split.json`` atomically; returns its path."""
        path = Path(directory) / SPLIT_FILE
        payload = {"info": self.info, "labeled": self.labeled.tolist(),
                   "unlabeled": self.unlabeled.tolist(), "val": self.val.tolist()}
        atomic_write_text(path, json.dumps(payload))
        return path

    @classmethod
    def load(cls, path) -> "Split":
        """From a folder holding split.json, or the file itself."""
        p = Path(path)
        p = p / SPLIT_FILE if p.is_dir() else p
        try:
            payload = json.loads(p.read_text(encoding="utf-8"))
            parts = {k: np.asarray(payload[k], dtype=np.int64) for k in ("labeled", "unlabeled", "val")}
        except FileNotFoundError:
            raise DataError(f"{p}: no such split file") from None
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{p}: not a split file ({type(e).__name__}: {e})") from None
        split = cls(info=payload.get("info", {}), **parts)
        _check_partition(split, split.info.get("n_train"), str(p))
        return split


def _check_partition(s: Split, n: int | None, where: str) -> None:
    allidx = np.concatenate([s.labeled, s.unlabeled, s.val])
    if len(np.unique(allidx)) != len(allidx):
        raise DataError(f"{where}: labeled, unlabeled and val overlap")
    if n is not None and (len(allidx) != n or (n and (allidx.min() < 0 or allidx.max() >= n))):
        raise DataError(f"{where}: indices do not cover 0..{n - 1} exactly")


def _names(class_names, k: int) -> list[str]:
    return list(class_names) if class_names is not None else [str(c) for c in range(k)]


def _as_labels(labels, class_names) -> tuple[np.ndarray, int]:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be a non-empty 1-D integer array, got {labels.dtype} {labels.shape}")
    if labels.min() < 0:
        raise DataError("labels must be >= 0")
    k = len(class_names) if class_names is not None else int(labels.max()) + 1
    if labels.max() >= k:
        raise DataError(f"label {int(labels.max())} outside the {k} classes {list(class_names)}")
    return labels.astype(np.int64), k


def _proportional(counts: np.ndarray, frac: float, what: str) -> np.ndarray:
    """round(frac * N) split over classes by largest remainder, >= 1 for a present class."""
    if not 0.0 <= frac <= 1.0:
        raise DataError(f"{what} must be in [0, 1], got {frac!r}")
    if frac == 0:
        return np.zeros_like(counts)
    exact = frac * counts
    out = np.floor(exact).astype(np.int64)
    left = int(round(frac * counts.sum())) - int(out.sum())
    order = np.lexsort((np.arange(len(counts)), -(exact - out)))  # biggest remainder, then class order
    out[order[:max(left, 0)]] += 1
    return np.maximum(out, (counts > 0).astype(np.int64))


def _val_counts(counts: np.ndarray, val_per_class: int, val_fraction: float) -> np.ndarray:
    if val_per_class and val_fraction:
        raise DataError("give val_per_class or val_fraction, not both")
    if val_per_class < 0:
        raise DataError(f"val_per_class must be >= 0, got {val_per_class}")
    if val_fraction:
        return _proportional(counts, val_fraction, "val_fraction")
    return np.full_like(counts, int(val_per_class))


def _partition(labels: np.ndarray, k: int, n_labeled: np.ndarray, n_val: np.ndarray, seed: int,
               class_names, info: dict) -> Split:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative int, got {seed!r}")
    names = _names(class_names, k)
    parts: dict[str, list[np.ndarray]] = {"labeled": [], "unlabeled": [], "val": []}
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        if n_labeled[c] + n_val[c] > len(idx):
            raise DataError(f"class {names[c]!r} has {len(idx)} train samples; asked for "
                            f"{int(n_labeled[c])} labeled + {int(n_val[c])} val")
        perm = idx[np.random.default_rng([int(seed), c]).permutation(len(idx))]
        nl, nv = int(n_labeled[c]), int(n_val[c])
        parts["labeled"].append(perm[:nl])
        parts["val"].append(perm[len(perm) - nv:])
        parts["unlabeled"].append(perm[nl:len(perm) - nv])
    arrays = {p: np.sort(np.concatenate(v)).astype(np.int64) for p, v in parts.items()}
    info = {**info, "seed": int(seed), "n_train": int(len(labels)), "class_names": names,
            "labels_digest": labels_digest(labels)}
    split = Split(info=info, **arrays)
    info["counts"] = split.counts(labels, k)
    return split


def per_class(labels, n: int, *, seed: int, class_names=None, val_per_class: int = 0,
              val_fraction: float = 0.0) -> Split:
    """``n`` labeled samples of every class."""
    labels, k = _as_labels(labels, class_names)
    counts = np.bincount(labels, minlength=k)
    if n < 0:
        raise DataError(f"n must be >= 0, got {n}")
    return _partition(labels, k, np.full(k, int(n)), _val_counts(counts, val_per_class, val_fraction),
                      seed, class_names, {"kind": "per_class", "n": int(n),
                                          "val_per_class": val_per_class, "val_fraction": val_fraction})


def allocate(total: int, caps) -> np.ndarray:
    """Spread ``total`` labels over classes as evenly as the per-class caps allow.

    Water-filling: every class gets the same share until it hits its cap; a
    remainder of fewer labels than open classes goes to the lowest class indices.
    """
    caps = np.asarray(caps, dtype=np.int64)
    if total < 0 or (caps < 0).any():
        raise DataError(f"total and caps must be >= 0, got {total} and {caps.tolist()}")
    if caps.sum() < total:
        raise DataError(f"caps {caps.tolist()} sum to {int(caps.sum())} < {total} labels asked for")
    alloc = np.zeros_like(caps)
    left = int(total)
    while left > 0:
        open_ = np.flatnonzero(alloc < caps)
        share = left // len(open_)
        if share == 0:
            alloc[open_[:left]] += 1
            break
        add = np.minimum(share, caps[open_] - alloc[open_])
        alloc[open_] += add
        left -= int(add.sum())
    return alloc


def _caps_array(caps, class_names, k: int) -> np.ndarray:
    if isinstance(caps, dict):
        if class_names is None:
            raise DataError("caps given by class name need class_names")
        names = [canonical_name(c) for c in class_names]
        unknown = [c for c in caps if canonical_name(c) not in names]
        if unknown:
            raise DataError(f"caps name classes {unknown} not in {names}")
        by_name = {canonical_name(c): v for c, v in caps.items()}
        missing = [c for c in names if c not in by_name]
        if missing:
            raise DataError(f"caps lack classes {missing}")
        return np.array([by_name[c] for c in names], dtype=np.int64)
    arr = np.asarray(caps, dtype=np.int64)
    if arr.shape != (k,):
        raise DataError(f"caps must have one entry per class ({k}), got {arr.tolist()}")
    return arr


def total_with_caps(labels, total: int, caps, *, seed: int, class_names=None, val_per_class: int = 0,
                    val_fraction: float = 0.0) -> Split:
    """``total`` labeled samples, at most ``caps[c]`` of class c (see ``allocate``).

    caps: one int per class, or {class name: int} with ``class_names``.
    """
    labels, k = _as_labels(labels, class_names)
    counts = np.bincount(labels, minlength=k)
    cap = _caps_array(caps, class_names, k)
    return _partition(labels, k, allocate(int(total), cap), _val_counts(counts, val_per_class, val_fraction),
                      seed, class_names, {"kind": "total_with_caps", "total": int(total), "caps": cap.tolist(),
                                          "val_per_class": val_per_class, "val_fraction": val_fraction})


def adacm_rafdb(labels, n_labels: int, *, seed: int, class_names=RAFDB_ORDER, val_per_class: int = 0,
                val_fraction: float = 0.0) -> Split:
    """Ada-CM's RAF-DB budgets: ``n_labels`` in ``ADACM_RAFDB`` (100 ... 4000)."""
    if n_labels not in ADACM_RAFDB:
        raise DataError(f"Ada-CM's RAF-DB table has budgets {sorted(ADACM_RAFDB)}, not {n_labels}")
    s = total_with_caps(labels, n_labels, ADACM_RAFDB[n_labels], seed=seed, class_names=class_names,
                        val_per_class=val_per_class, val_fraction=val_fraction)
    s.info["kind"] = "adacm_rafdb"
    return s


def fraction(labels, frac: float, *, seed: int, class_names=None, val_per_class: int = 0,
             val_fraction: float = 0.0) -> Split:
    """``frac`` of the train split labeled, class-stratified (largest remainder;
    at least one label of every class present). Fractions are of the whole train
    split, before the validation samples are set aside."""
    labels, k = _as_labels(labels, class_names)
    counts = np.bincount(labels, minlength=k)
    return _partition(labels, k, _proportional(counts, frac, "frac"),
                      _val_counts(counts, val_per_class, val_fraction), seed, class_names,
                      {"kind": "fraction", "frac": float(frac), "val_per_class": val_per_class,
                       "val_fraction": val_fraction})


def make_split(labels, kind: str, value=None, *, seed: int, class_names=None, val_per_class: int = 0,
               val_fraction: float = 0.0, caps=None) -> Split:
    """One door for configs: kind in KINDS.

    per_class: value = labels per class; fraction: value = share of train;
    adacm_rafdb: value = 100/400/1000/2000/4000; total_with_caps: value =
    total, caps=...; all: every train sample not in val is labeled (supervised).
    """
    kw = dict(seed=seed, class_names=class_names, val_per_class=val_per_class, val_fraction=val_fraction)
    if kind == "per_class":
        return per_class(labels, int(value), **kw)
    if kind == "fraction":
        return fraction(labels, float(value), **kw)
    if kind == "adacm_rafdb":
        return adacm_rafdb(labels, int(value), **{**kw, "class_names": class_names or RAFDB_ORDER})
    if kind == "total_with_caps":
        if caps is None:
            raise DataError("kind 'total_with_caps' needs caps=")
        return total_with_caps(labels, int(value), caps, **kw)
    if kind == "all":
        lab, k = _as_labels(labels, class_names)
        counts = np.bincount(lab, minlength=k)
        nv = _val_counts(counts, val_per_class, val_fraction)
        return _partition(lab, k, counts - np.minimum(nv, counts), nv, seed, class_names,
                          {"kind": "all", "val_per_class": val_per_class, "val_fraction": val_fraction})
    raise DataError(f"unknown split kind {kind!r}; expected one of {list(KINDS)}")
