"""From a data config to device-resident tensors and a label split.

Images stay uint8 on the training device: augmentation happens in batches
there (``ssfer.views``), so there are no loader workers and no per-image PIL.
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
class TrainData:
    class_names: tuple[str, ...]
    train_x: torch.Tensor        # uint8 (N, C, H, W), channels_last memory when asked
    train_y: torch.Tensor        # int64 (N,) -- unlabeled samples' labels only feed diagnostics
    labeled: torch.Tensor        # int64 indices into train
    unlabeled: torch.Tensor
    val: torch.Tensor | None     # indices into train carved out for validation (split.val_per_class)
    test_x: torch.Tensor
    test_y: torch.Tensor
    split: Split
    val_x: torch.Tensor | None = None  # validation images: the carved train images or data.val_split
    val_y: torch.Tensor | None = None
    test_leaked: torch.Tensor | None = None  # bool (N_test,): a byte-identical copy is in train; None: unknown

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_split_data(cfg: Config, split: str) -> FERData:
    d = cfg.data
    kw = dict(d.options)
    if d.dataset == "synthfer":
        kw.update(n=d.n_train if split == "train" else d.n_test, difficulty=d.difficulty, seed=cfg.split.seed)
    data = load_dataset(d.dataset, d.root, split, size=d.size, channels=d.channels, **kw)
    return preprocess(data, tone=d.tone)


def leaked(test: FERData, train: FERData) -> np.ndarray | None:
    """Which test samples have a byte-identical copy in train (None when the
    loader gives no digests, as for SynthFER, which is drawn, not read)."""
    if test.digests is None or train.digests is None:
        return None
    seen = set(train.digests)
    return np.fromiter((d in seen for d in test.digests), dtype=bool, count=len(test.digests))


def to_tensor(images: np.ndarray, device: torch.device, channels_last: bool) -> torch.Tensor:
    # a cached data set arrives as a read-only memmap: copy it once into memory
    x = torch.from_numpy(np.require(images, requirements=["C", "W"])).to(device).permute(0, 3, 1, 2)
    # NHWC storage seen as NCHW is exactly channels_last; make it contiguous NCHW otherwise
    return x if channels_last else x.contiguous()


def prepare(cfg: Config, device: torch.device, channels_last: bool = False) -> TrainData:
    train = load_split_data(cfg, "train")
    test = load_split_data(cfg, cfg.data.test_split)
    s = cfg.split
    value = {"per_class": s.n_per_class, "adacm_rafdb": s.total, "fraction": s.fraction, "all": None}[s.protocol]
    split = make_split(train.labels, s.protocol, value, seed=s.seed, class_names=train.class_names,
                       val_per_class=s.val_per_class)

    def idx(a):
        return torch.as_tensor(np.asarray(a, dtype=np.int64), device=device)

    def labels(a):
        return torch.as_tensor(a, dtype=torch.int64, device=device)

    train_x, train_y = to_tensor(train.images, device, channels_last), labels(train.labels)
    val = idx(split.val) if len(split.val) else None
    val_x = val_y = None
    if cfg.data.val_split:
        held = load_split_data(cfg, cfg.data.val_split)
        val_x, val_y = to_tensor(held.images, device, channels_last), labels(held.labels)
    elif val is not None:
        val_x, val_y = train_x[val], train_y[val]
    leak = leaked(test, train)
    return TrainData(
        class_names=tuple(train.class_names), train_x=train_x, train_y=train_y,
        labeled=idx(split.labeled), unlabeled=idx(split.unlabeled), val=val,
        test_x=to_tensor(test.images, device, channels_last), test_y=labels(test.labels),
        split=split, val_x=val_x, val_y=val_y,
        test_leaked=None if leak is None else torch.as_tensor(leak, device=device),
    )
