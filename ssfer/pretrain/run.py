"""``pretrain(cfg)``: pretrain one configuration, or load its cached result.

Kept apart from the loop: it takes the run lock from ``ssfer.train``, and what
the loop imports is what the pretraining key hashes, which must not hold the
fine-tuning trainer's code.
"""
from __future__ import annotations

from pathlib import Path

from ssfer.errors import RunFolderError
from ssfer.io import cache_root
from ssfer.pretrain.config import PretrainConfig
from ssfer.pretrain.record import PretrainRecord, run_key
from ssfer.train import run_lock


def run_dir_for(cfg: PretrainConfig, cache_dir: str | Path | None = None) -> Path:
    """``<cache>/pretrain/<key>``: beside the training runs, not among them."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    return root / "pretrain" / run_key(cfg)


def pretrain(cfg: PretrainConfig | dict, cache_dir: str | Path | None = None, force: bool = False,
             restart: bool = False) -> PretrainRecord:
    """Pretrain ``cfg`` and return its record; a finished run with the same config,
    data and code is loaded instead, and an interrupted one resumes from its last
    epoch's checkpoint, unless ``restart`` discards it."""
    from ssfer.pretrain.loop import Pretrainer

    if isinstance(cfg, dict):
        cfg = PretrainConfig.from_dict(cfg)
    rd = run_dir_for(cfg, cache_dir)
    if not force and (rd / "summary.json").exists():
        return _load_finished(rd)
    with run_lock(rd):  # two processes asking for one pretraining: one trains, the other loads it
        if not force and (rd / "summary.json").exists():
            return _load_finished(rd)
        return Pretrainer(cfg, rd).fit(restart=restart)


def _load_finished(rd: Path) -> PretrainRecord:
    try:
        return PretrainRecord.load(rd)
    except RunFolderError as e:
        raise RunFolderError(f"{e}; the cached pretraining is damaged: `ssfer pretrain ... --force` "
                             "(or `pretrain(..., force=True)`) trains it again") from e
