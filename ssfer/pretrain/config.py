"""The pretraining configuration: plain typed values, validated in one place.

It reuses the run configuration's ``data``, ``split`` and ``model`` sections
as they are (so a pretraining and a fine-tuning config name the same faces, the
same validation part and the same network in the same words), and adds its own
``byol``, ``views``, ``probe`` and ``train`` sections. Types are read by
``ssfer.config``'s builder and ranges by ``ssfer.typecheck``'s rules on each
field's annotation; the few rules across fields are in ``validate``. Every
error is a ``ConfigError`` naming the dotted key.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from ssfer import config as base
from ssfer.config import (AlgoConfig, Config, DataConfig, ModelConfig, SplitConfig, TrainConfig, parse_assignments)
from ssfer.errors import ConfigError
from ssfer.typecheck import Range

Positive = Range(0, low_open=True)
Probability = Range(0, 1)
Unit = Range(0, 1, high_open=True)


@dataclass(frozen=True)
class ByolConfig:
    projector_hidden: Annotated[int, Range(1)] = 1024  # BYOL's 4096 is for 2048-d ResNet-50 features
    projector_dim: Annotated[int, Range(1)] = 128      # the space the loss compares in
    predictor_hidden: Annotated[int, Range(1)] = 1024
    momentum: Annotated[float, Unit] = 0.99            # the target's EMA decay at step 0; cosine up to 1


@dataclass(frozen=True)
class ViewConfig:
    """Two views per face, as BYOL's but for 48-px grey faces: no hue or
    saturation, a crop that keeps eyes and mouth, and a blur in pixels of the
    training size (BYOL's sigma of 0.1-2 px is for 224-px images)."""

    crop_scale: Annotated[list[float], Range(0, 1, low_open=True)] = field(default_factory=lambda: [0.4, 1.0])
    crop_ratio: Annotated[list[float], Positive] = field(default_factory=lambda: [0.75, 1.3333])
    flip: Annotated[float, Probability] = 0.5
    jitter: Annotated[float, Probability] = 0.8        # chance of the brightness and contrast change
    brightness: Annotated[float, Unit] = 0.4           # factor in 1 ± brightness
    contrast: Annotated[float, Unit] = 0.4             # factor in 1 ± contrast
    blur_sigma: Annotated[list[float], Positive] = field(default_factory=lambda: [0.1, 1.0])
    blur: Annotated[list[float], Probability] = field(default_factory=lambda: [1.0, 0.1])  # per view, as BYOL


@dataclass(frozen=True)
class ProbeConfig:
    every: Annotated[int, Range(0)] = 5                # epochs between probes; 0: at the end only
    k: Annotated[int, Range(1)] = 20
    temperature: Annotated[float, Positive] = 0.1      # neighbours vote with weight exp(cosine / temperature)
    # the bank: every face the pretraining saw, with its label ("pool"), or the
    # labeled part of the split only ("labeled", as fine-tuning would have it)
    bank: Literal["pool", "labeled"] = "pool"


@dataclass(frozen=True)
class PretrainTrainConfig:
    epochs: Annotated[int, Range(1)] = 10
    batch_size: Annotated[int, Range(2)] = 128         # batch norm needs two faces at least
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: Annotated[float, Positive] = 0.06              # lightly's CIFAR-10 benchmark at batch 128
    momentum: Annotated[float, Unit] = 0.9
    weight_decay: Annotated[float, Range(0)] = 5e-4
    warmup_epochs: Annotated[int, Range(0)] = 0
    log_every: Annotated[int, Range(1)] = 10           # steps; the loss reaches the host only then
    device: str = "auto"                               # auto | cpu | cuda | cuda:N
    amp: bool = True                                   # bf16 autocast on CUDA
    channels_last: bool = True
    threads: Annotated[int, Range(0)] = 0              # CPU threads for torch (0: leave as is)
    seed: Annotated[int, Range(0)] = 0
    progress: bool = True                              # tqdm bar; not part of the hash


SECTIONS = ("data", "split", "model", "byol", "views", "probe", "train")
_NOT_HASHED = ("progress",)  # how a run is shown, never what it computes


@dataclass(frozen=True)
class PretrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=lambda: SplitConfig(val_per_class=20))
    model: ModelConfig = field(default_factory=ModelConfig)
    byol: ByolConfig = field(default_factory=ByolConfig)
    views: ViewConfig = field(default_factory=ViewConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    train: PretrainTrainConfig = field(default_factory=PretrainTrainConfig)

    @classmethod
    def default(cls) -> PretrainConfig:
        return cls()

    @classmethod
    def from_dict(cls, d: dict | None) -> PretrainConfig:
        cfg = base._build(cls, d or {}, "")
        _check_rules(cfg)
        validate(cfg)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> PretrainConfig:
        return base.from_yaml_file(cls, path)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_overrides(self, overrides: dict[str, Any] | list[str]) -> PretrainConfig:
        """Apply dotted overrides, ``{"train.epochs": 2}`` or ``["train.epochs=2"]``."""
        if isinstance(overrides, list):
            overrides = parse_assignments(overrides)
        d = self.to_dict()
        for key, value in overrides.items():
            *path, last = key.split(".")
            node = d
            for p in path:
                if not isinstance(node, dict) or p not in node:
                    raise ConfigError(f"unknown config key {key!r}")
                node = node[p]
            # keys inside a free-form dict (data.options.x, model.timm_args.x) may be new
            if not isinstance(node, dict) or (last not in node and len(path) < 2):
                raise ConfigError(f"unknown config key {key!r}")
            node[last] = value
        return PretrainConfig.from_dict(d)

    def hash(self) -> str:
        """Stable hash of the full config (the pretraining cache key's main part)."""
        d = self.to_dict()
        for key in _NOT_HASHED:
            d["train"].pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def run_config(self) -> Config:
        """The run configuration with this one's data, split and model: what the
        data loaders, ``ssfer.model.model_for`` and the data fingerprint read."""
        t = self.train
        return Config(data=self.data, split=self.split, model=self.model, algo=AlgoConfig(),
                      train=TrainConfig(device=t.device, threads=t.threads, seed=t.seed, amp=t.amp,
                                        channels_last=t.channels_last, progress=t.progress))


def _check_rules(cfg: PretrainConfig) -> None:
    """The ``Annotated`` rules of this module's sections (``_build`` checked the
    types, which ``typing.get_type_hints`` gives it without their rules)."""
    for section in ("byol", "views", "probe", "train"):
        sub = getattr(cfg, section)
        hints = typing.get_type_hints(type(sub), include_extras=True)
        for f in dataclasses.fields(sub):
            if typing.get_origin(hints[f.name]) is Annotated:
                base._coerce(getattr(sub, f.name), hints[f.name], f"{section}.{f.name}")


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}")


def validate(cfg: PretrainConfig) -> None:
    """Rules across fields. The shared sections (and the device) are checked by
    the run configuration's own ``validate``, in its words."""
    base.validate(cfg.run_config())
    d, s, m, v, t = cfg.data, cfg.split, cfg.model, cfg.views, cfg.train
    _check(m.pretrained_path is None, "model.pretrained_path",
           "pretraining starts from random weights; leave it unset")
    _check(bool(d.val_split) or s.val_per_class > 0, "data.val_split",
           "the kNN probe needs validation faces: set data.val_split (a split of the data set, e.g. FERPlus 'val') "
           "or split.val_per_class (faces carved from train, which pretraining then never sees)")
    for key in ("crop_scale", "crop_ratio", "blur_sigma"):
        lo_hi = getattr(v, key)
        _check(len(lo_hi) == 2 and lo_hi[0] <= lo_hi[1], f"views.{key}", f"expected [low, high], got {lo_hi}")
    _check(len(v.blur) == 2, "views.blur", f"expected one probability per view, [first, second], got {v.blur}")
    _check(t.warmup_epochs < t.epochs, "train.warmup_epochs", f"must be below train.epochs ({t.epochs})")
