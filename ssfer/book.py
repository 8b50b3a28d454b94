"""The shared base of the book's training runs.

Every chapter builds its configurations from ``book_config``, so runs that mean
the same thing in two chapters (say, FixMatch at 10 labels per class) have the
same config, hence the same cache key: the second chapter reads the first's run.
"""
from __future__ import annotations

from typing import Any

from ssfer.config import Config


def book_config(*, n_train: int, n_test: int, image_size: int, labels_per_class: int, model: str,
                steps: int, batch_size: int, seed: int, device: str, difficulty: float = 0.75,
                **overrides: Any) -> Config:
    """A SynthFER run at the given scale; ``overrides`` are dotted config keys
    passed as keyword arguments with ``__`` for the dot (``algo__name="dta"``)."""
    base = {
        # CPU-scale runs of a few hundred steps learn little at SynthFER's full
        # difficulty (near chance at 1.0 and 32 px); at 0.5, ten labels per class
        # already gave 93% at 48 px, leaving nothing for unlabeled data to add
        "data.difficulty": difficulty,
        "data.n_train": n_train, "data.n_test": n_test, "data.size": image_size,
        "model.name": model, "split.n_per_class": labels_per_class, "split.seed": seed,
        "train.steps": steps, "train.batch_size": batch_size, "train.seed": seed, "train.device": device,
        "train.progress": False,  # a page shows results, not progress bars
        "train.eval_every": max(1, steps // 10), "train.log_every": max(1, steps // 40),
        # short CPU-scale runs: AdamW got a small ResNet much further than SGD in a
        # few hundred steps on SynthFER (74% vs 62% with all labels after 600 steps)
        "train.optimizer": "adamw", "train.lr": 3e-3, "train.weight_decay": 0.05,
    }
    base.update({k.replace("__", "."): v for k, v in overrides.items()})
    return Config.default().with_overrides(base)


def scale_of(P) -> dict[str, Any]:
    """The run-scale parameters of a notebook's checked parameters ``P``."""
    keys = ("n_train", "n_test", "image_size", "labels_per_class", "model", "steps", "batch_size", "seed", "device")
    return {k: getattr(P, k) for k in keys}
