"""Device choice and batched prediction, shared by the trainer and ``ssfer eval``."""
from __future__ import annotations

import contextlib

import torch

from ssfer.errors import ConfigError
from ssfer.views import Views


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when there is one; a CUDA device asked for on a machine without one is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r}, but CUDA is not available on this machine")
    return torch.device(name)


@torch.no_grad()
def predict_probs(model: torch.nn.Module, x: torch.Tensor, views: Views, *, flip: bool = False,
                  batch: int = 512, autocast=contextlib.nullcontext) -> torch.Tensor:
    """Softmax of ``model`` (switched to eval mode) over uint8 images ``x``, in batches,
    on ``x``'s device. flip: the mean of each image's and its mirror's softmax
    (faces are near-symmetric, so the mirror is a second look)."""
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        v = views.eval_view(x[i:i + batch])
        with autocast():
            p = model(v).float().softmax(1)
            if flip:
                p = (p + model(v.flip(3)).float().softmax(1)) / 2
        out.append(p)
    return torch.cat(out)
