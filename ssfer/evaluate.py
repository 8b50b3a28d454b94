"""Evaluate a finished run's teacher on any data set, through the canonical classes.

A model trained on one data set is tested on another by mapping the target's
labels onto the model's class list (``ssfer.data.to_canonical``): samples of
classes the model does not know are left out and counted, never hidden.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssfer.data import load_dataset, to_canonical
from ssfer.data.preprocess import preprocess
from ssfer.errors import CheckpointError, RunFolderError
from ssfer.metrics import classification_metrics
from ssfer.model import model_for
from ssfer.io import load_weights_file
from ssfer.record import RunRecord
from ssfer.train.data import to_tensor
from ssfer.predict import predict_probs, resolve_device
from ssfer.views import Views


RETRAIN_HINT = "retrain the run (`ssfer train ... --force`) to rewrite it"


def load_teacher(rec: RunRecord, device: torch.device) -> torch.nn.Module:
    """The finished run's teacher; ``RunFolderError`` when it has no weights, and
    ``CheckpointError`` when they cannot be read or do not fit its network."""
    cfg = rec.config
    weights = rec.run_dir / "model.pt"
    if not weights.is_file():
        raise RunFolderError(f"{rec.run_dir}: the run has no model.pt (its teacher's weights); {RETRAIN_HINT}")
    model = model_for(cfg, len(rec.class_names), pretrained=False)
    state = load_weights_file(weights, map_location=device, hint=RETRAIN_HINT)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:  # other tensors, or not a state dict at all
        what = " ".join(str(e).split())[:300] or type(e).__name__
        raise CheckpointError(f"{weights}: does not fit the run's network ({cfg.model.name}): {what}; "
                              f"{RETRAIN_HINT}") from e
    return model.to(device).eval()


def teacher_probs(rec: RunRecord, images: np.ndarray, device: torch.device, flip: bool = False,
                  teacher: torch.nn.Module | None = None) -> np.ndarray:
    """Softmax of a finished run's teacher (``teacher``, if loaded already) over
    uint8 ``images``, normalised as in training."""
    views = Views.for_channels(rec.config.data.channels).to(device)
    return predict_probs(teacher or load_teacher(rec, device), to_tensor(images, device, channels_last=False),
                         views, flip=flip).cpu().numpy()


def evaluate_run(run_dir: str | Path, dataset: str, root: str | Path | None, split: str = "test",
                 options: dict | None = None, device: str = "auto") -> dict:
    rec = RunRecord.load(run_dir)
    dev = resolve_device(device)
    cfg = rec.config
    teacher = load_teacher(rec, dev)  # a run without usable weights is named before a data set is decoded
    data = load_dataset(dataset, root, split, size=cfg.data.size, channels=cfg.data.channels, **(options or {}))
    data = preprocess(data, tone=cfg.data.tone)  # as the model was trained
    mapped = to_canonical(data, rec.class_names)
    probs = teacher_probs(rec, mapped.images, dev, flip=cfg.train.eval_flip, teacher=teacher)
    out = classification_metrics(probs, mapped.labels, len(rec.class_names))
    out.update(run=str(rec.run_dir), trained_on=cfg.data.dataset, evaluated_on=f"{dataset}/{split}",
               class_names=list(rec.class_names), n=len(mapped), left_out=mapped.dropped)
    return out
