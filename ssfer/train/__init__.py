"""Training: ``run(cfg)`` trains (or loads the cached result of) one configuration."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from filelock import FileLock

from ssfer.config import Config
from ssfer.errors import RunFolderError
from ssfer.io import cache_root, write_error
from ssfer.record import RunRecord, run_key


def run_dir_for(cfg: Config, cache_dir: str | Path | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    return root / "runs" / run_key(cfg)


@contextlib.contextmanager
def run_lock(rd: Path) -> Iterator[None]:
    """Hold ``<run dir>.lock`` exclusively: two notebooks executed side by side
    that need the same run train it once, the second waits and then loads it.
    The lock is an OS lock on an open file (flock on Unix), which the kernel
    drops when its holder dies, so a killed run never blocks the next one
    (which then resumes from its checkpoint)."""
    path = rd.with_name(rd.name + ".lock")
    lock = FileLock(path)
    try:
        rd.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as e:
        raise write_error(path, e) from e
    try:
        yield
    finally:
        lock.release()


def run(cfg: Config | dict, cache_dir: str | Path | None = None, force: bool = False,
        restart: bool = False) -> RunRecord:
    """Train ``cfg`` and return its record; a finished run with the same config and
    code is loaded from the cache instead, and an interrupted one resumes from its
    checkpoint, unless ``restart`` discards that checkpoint (e.g. a corrupt one)."""
    from ssfer.train.loop import Trainer

    if isinstance(cfg, dict):
        cfg = Config.from_dict(cfg)
    rd = run_dir_for(cfg, cache_dir)
    if not force and (rd / "summary.json").exists():
        return _load_finished(rd)
    # torchrun's ranks train one run together: a lock taken by rank 0 alone would
    # keep the others from joining it
    lock = run_lock(rd) if int(os.environ.get("WORLD_SIZE", "1")) == 1 else contextlib.nullcontext()
    with lock:
        if not force and (rd / "summary.json").exists():  # finished by whoever held the lock
            return _load_finished(rd)
        return Trainer(cfg, rd).fit(restart=restart)


def _load_finished(rd: Path) -> RunRecord:
    """A cached run's record; a damaged one is named with the way out."""
    try:
        return RunRecord.load(rd)
    except RunFolderError as e:
        raise RunFolderError(f"{e}; the cached run is damaged: `ssfer train ... --force` (or `run(..., force=True)`) "
                             "trains it again") from e


__all__ = ["run", "run_dir_for", "run_lock", "RunRecord"]
