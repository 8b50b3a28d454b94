"""Training: ``run(cfg)`` trains (or loads the cached result of) one configuration."""
from __future__ import annotations

from pathlib import Path

from ssfer.config import Config
from ssfer.record import RunRecord, cache_root, run_key


def run_dir_for(cfg: Config, cache_dir: str | Path | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    return root / "runs" / run_key(cfg)


def run(cfg: Config | dict, cache_dir: str | Path | None = None, force: bool = False) -> RunRecord:
    """Train ``cfg`` and return its record; a finished run with the same config and
    code is loaded from the cache instead, and an interrupted one resumes."""
    from ssfer.train.loop import Trainer

    if isinstance(cfg, dict):
        cfg = Config.from_dict(cfg)
    rd = run_dir_for(cfg, cache_dir)
    if not force and (rd / "summary.json").exists():
        return RunRecord.load(rd)
    return Trainer(cfg, rd).fit()


__all__ = ["run", "run_dir_for", "RunRecord"]
