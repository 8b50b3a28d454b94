"""Load face-pretrained weights from a local file into a FERNet body (or a bare
timm model), report what matched, and refuse near-empty loads. Never downloads.

The MS-Celeb-1M ``resnet18_msceleb.pth`` used by Ada-CM, DAN and RUL stores a
torchvision ResNet-18 under ``ckpt["state_dict"]`` with ``module.`` prefixes;
torchvision and timm ResNets share parameter names (conv1, bn1, layer1..4,
downsample.0/1), so names map one to one, and the ImageNet/face ``fc`` head has
no counterpart in the head-less body and is reported as unexpected.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from timm.models import adapt_input_conv
from torch import nn

# torchvision ResNet children in order; DAN/RUL-style code saves
# nn.Sequential(*list(resnet.children())[:-2]) under "features.<i>"
_SEQUENTIAL_RESNET = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP, torch.compile


@dataclass
class LoadReport:
    """What a load did. Names are the model's, except ``unexpected`` (checkpoint's)."""

    path: str
    matched: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)  # matched after first-conv channel adaptation
    missing: list[str] = field(default_factory=list)  # body tensors left at their initial values
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    body_total: int = 0
    body_matched: int = 0

    @property
    def fraction(self) -> float:
        return self.body_matched / max(self.body_total, 1)

    def summary(self) -> str:
        lines = [f"{self.path}: {self.body_matched}/{self.body_total} body tensors matched "
                 f"({self.fraction:.0%}); {len(self.matched)} loaded in all, {len(self.adapted)} adapted, "
                 f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                 f"{len(self.shape_mismatch)} shape mismatches"]
        for title, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("shape mismatch", [f"{n} ckpt {a} vs model {b}" for n, a, b in self.shape_mismatch])):
            if items:
                more = f" ... (+{len(items) - 5})" if len(items) > 5 else ""
                lines.append(f"  {title}: {', '.join(items[:5])}{more}")
        return "\n".join(lines)

    __str__ = summary


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a local checkpoint: a raw state_dict, or one under "state_dict"/"model"."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights: no file at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise ValueError(f"{path}: not readable as a weights-only torch checkpoint ({e}); "
                         "re-save it as a plain state_dict") from e
    if isinstance(ckpt, dict):
        for key in ("state_dict", "model"):
            if isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not any(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ValueError(f"{path}: expected a state_dict (or one under 'state_dict'/'model'), "
                         f"found {type(ckpt).__name__} without tensors")
    return {_strip(k): v for k, v in ckpt.items() if isinstance(v, torch.Tensor)}


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def _candidates(key: str) -> list[str]:
    names = [key, "body." + key]
    head, _, rest = key.partition(".")
    if head == "features" and rest:
        idx, _, tail = rest.partition(".")
        if idx in _SEQUENTIAL_RESNET and tail:
            names.append("body." + _SEQUENTIAL_RESNET[idx] + "." + tail)
    return names


def _adapt(name: str, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | None:
    """First-conv weights from another input channel count (RGB -> grey sums the
    RGB kernels, as timm does), or None when the shapes differ otherwise."""
    if src.ndim == 4 and dst.ndim == 4 and src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:] \
            and name.endswith("weight"):
        return adapt_input_conv(dst.shape[1], src, base_chans=src.shape[1])
    return None


def load_pretrained(model: nn.Module, path: str | Path, min_match: float = 0.5) -> LoadReport:
    """Copy matching tensors of the checkpoint at ``path`` into ``model``.

    Raises ValueError (with the report) when fewer than ``min_match`` of the
    body's tensors (``model.body`` when present, else the whole model) matched,
    and leaves the model untouched in that case.
    """
    if not 0.0 <= min_match <= 1.0:
        raise ValueError(f"min_match={min_match}: expected a fraction in [0, 1]")
    source = read_state_dict(path)
    target = model.state_dict()
    body = getattr(model, "body", None)
    body_keys = {"body." + k for k in body.state_dict()} if isinstance(body, nn.Module) else set(target)

    report = LoadReport(path=str(path), body_total=len(body_keys))
    load: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        name = next((n for n in _candidates(key) if n in target), None)
        if name is None:
            report.unexpected.append(key)
            continue
        dst = target[name]
        if value.shape != dst.shape:
            adapted = _adapt(name, value, dst)
            if adapted is None:
                report.shape_mismatch.append((name, tuple(value.shape), tuple(dst.shape)))
                continue
            report.adapted.append(name)
            value = adapted
        load[name] = value.to(dst.dtype)
    report.matched = sorted(load)
    report.body_matched = len(body_keys.intersection(load))
    report.missing = sorted(body_keys.difference(load))

    if report.fraction < min_match:
        raise ValueError(f"refusing a near-empty load (min_match={min_match:.0%}):\n{report.summary()}")
    model.load_state_dict(load, strict=False)
    return report
