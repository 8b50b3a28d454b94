"""What pretraining reads: the unlabeled pool, and the probe's bank and queries.

The pool is the train split less its validation part (``split.val_per_class``
faces carved from train, drawn by the same split fine-tuning draws); a data
set's own validation split (``data.val_split``) and its test split are other
files, and the test split is never read here. The BYOL step reads ``pool_x``
alone: images, no labels. Labels are read for two things only: drawing the
split (which faces are validation faces) and the probe, which scores the
features against them and trains nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ssfer.config import Config
from ssfer.data import load_dataset
from ssfer.data.dataset import FERData
from ssfer.data.preprocess import preprocess
from ssfer.data.splits import Split, make_split


@dataclass
class PretrainData:
    class_names: tuple[str, ...]
    pool: np.ndarray             # indices into the train split: the faces BYOL trains on
    pool_x: torch.Tensor         # uint8 (N, C, H, W), the train split's faces at ``pool``
    bank_x: torch.Tensor         # the probe's labeled train faces (``probe.bank``) and their labels
    bank_y: torch.Tensor
    val_x: torch.Tensor          # the probe's queries: validation faces and their labels
    val_y: torch.Tensor
    split: Split

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_split_data(cfg: Config, split: str) -> FERData:
    """One split of the config's data set, as ``ssfer.train.data.load_split_data``
    reads it. Not imported from there: importing the trainer's package would
    put the trainer's code into every pretraining key."""
    d = cfg.data
    kw = dict(d.options)
    if d.dataset == "synthfer":
        kw.update(n=d.n_train if split == "train" else d.n_test, difficulty=d.difficulty, seed=cfg.split.seed)
    return preprocess(load_dataset(d.dataset, d.root, split, size=d.size, channels=d.channels, **kw), tone=d.tone)


def draw_split(cfg: Config, labels: np.ndarray, class_names) -> Split:
    """The split fine-tuning draws for the same ``data`` and ``split`` sections."""
    s = cfg.split
    value = {"per_class": s.n_per_class, "adacm_rafdb": s.total, "fraction": s.fraction, "all": None}[s.protocol]
    return make_split(labels, s.protocol, value, seed=s.seed, class_names=class_names,
                      val_per_class=s.val_per_class)


def pool_indices(split: Split, n_train: int) -> np.ndarray:
    """Every train index that is not a validation face, sorted."""
    return np.setdiff1d(np.arange(n_train, dtype=np.int64), split.val)


def _tensor(images: np.ndarray, device: torch.device, channels_last: bool) -> torch.Tensor:
    # NHWC storage seen as NCHW is exactly channels_last; contiguous NCHW otherwise
    x = torch.from_numpy(np.require(images, requirements=["C", "W"])).to(device).permute(0, 3, 1, 2)
    return x if channels_last else x.contiguous()


def prepare(cfg: Config, bank: str, device: torch.device, channels_last: bool = False) -> PretrainData:
    """The pool, the probe's bank (``"pool"``: the pool's faces; ``"labeled"``:
    the split's labeled faces) and the validation faces, on ``device``."""
    train = load_split_data(cfg, "train")
    split = draw_split(cfg, train.labels, train.class_names)
    pool = pool_indices(split, len(train.labels))
    pool_x = _tensor(train.images[pool], device, channels_last)
    labels = torch.as_tensor(train.labels, dtype=torch.int64)
    if bank == "pool":
        bank_x, bank_y = pool_x, labels[pool]
    else:
        bank_x, bank_y = _tensor(train.images[split.labeled], device, channels_last), labels[split.labeled]
    if cfg.data.val_split:
        held = load_split_data(cfg, cfg.data.val_split)
        val_x, val_y = _tensor(held.images, device, channels_last), torch.as_tensor(held.labels, dtype=torch.int64)
    else:
        val_x, val_y = _tensor(train.images[split.val], device, channels_last), labels[split.val]
    return PretrainData(class_names=tuple(train.class_names), pool=pool, pool_x=pool_x, bank_x=bank_x,
                        bank_y=bank_y.to(device), val_x=val_x, val_y=val_y.to(device), split=split)
