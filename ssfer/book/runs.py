"""The shared base of the book's training runs.

Every chapter builds its configurations from ``book_config``, so runs that mean
the same thing in two chapters (say, FixMatch at 10 labels per class) have the
same config, hence the same cache key: the second chapter reads the first's run.
"""
from __future__ import annotations

from typing import Any

from ssfer.config import Config


def book_config(*, n_train: int, n_test: int, image_size: int, labels_per_class: int, model: str,
                steps: int, batch_size: int, seed: int, device: str, difficulty: float = 0.6,
                **overrides: Any) -> Config:
    """A SynthFER run at the given scale; ``overrides`` are dotted config keys
    passed as keyword arguments with ``__`` for the dot (``algo__name="dta"``)."""
    base = {
        # hard enough that ten labels per class leave room for unlabeled data,
        # easy enough that the book's short runs learn (benchmarks/README.md)
        "data.difficulty": difficulty,
        "data.n_train": n_train, "data.n_test": n_test, "data.size": image_size,
        "model.name": model, "split.n_per_class": labels_per_class, "split.seed": seed,
        "train.steps": steps, "train.batch_size": batch_size, "train.seed": seed, "train.device": device,
        "train.progress": False,  # a page shows results, not progress bars
        # two unlabeled images per labeled one, not three: a quarter less work per
        # step, so the whole book's runs fit a laptop CPU's quarter of an hour
        "train.mu": 2,
        "train.eval_every": max(1, steps // 10), "train.log_every": max(1, steps // 40),
        # short CPU-scale runs: AdamW gets a small ResNet further than SGD in a
        # few hundred steps (benchmarks/README.md)
        "train.optimizer": "adamw", "train.lr": 3e-3, "train.weight_decay": 0.05,
        # one CPU thread per run: on a CPU the result depends on the thread count
        # (the order of floating-point sums in convolutions), so a run that two
        # notebooks share, or that a re-execution trains again, must always get
        # the same one; `ssfer reproduce` runs notebooks side by side instead
        "train.threads": 1,
    }
    base.update({k.replace("__", "."): v for k, v in overrides.items()})
    return Config.default().with_overrides(base)


SCALE_KEYS = ("n_train", "n_test", "image_size", "labels_per_class", "model", "steps", "batch_size", "seed",
              "device")


def scale_of(P, **override: Any) -> dict[str, Any]:
    """The run-scale parameters of a notebook's checked parameters ``P``, with
    ``override`` (say ``seed=2``) taking the place of what ``P`` has or lacks."""
    missing = [k for k in SCALE_KEYS if k not in override and not hasattr(P, k)]
    if missing:
        raise AttributeError(f"scale_of: the parameters have no {', '.join(missing)}; pass them as keywords")
    return {k: override[k] if k in override else getattr(P, k) for k in SCALE_KEYS}


def page_config(P, **overrides: Any) -> Config:
    """A chapter's run: ``book_config`` at the scale of its parameters ``P``.

    Scale keys among ``overrides`` (say ``seed=2``) replace ``P``'s; the rest are
    config overrides as in ``book_config`` (``algo__name="dta"``). The same
    arguments give the same config in every chapter, so the runs are shared."""
    scale = {k: overrides.pop(k) for k in SCALE_KEYS if k in overrides}
    return book_config(**scale_of(P, **scale), **overrides)
