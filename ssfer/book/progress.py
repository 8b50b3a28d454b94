"""Planned runs and pretrainings that are part-trained in a run cache: how far
their checkpoint got, and whether ``ssfer results record`` resumes it.

A recording session that stops (a closed laptop, a session's end) leaves each
unfinished run's ``checkpoint.pt`` in the cache; the next ``results record``
resumes it. ``results status`` reads these so that what it says is left, and
what that costs, counts the steps already trained. It reads configs and
checkpoints only, and computes a cache key (which scans the data set's files)
only for a folder whose config is a planned one's.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ssfer.errors import SsferError


@dataclass(frozen=True)
class Partial:
    """One planned run's (or pretraining's) checkpoint in the cache."""
    name: str
    folder: Path
    done: int | None          # steps (epochs, for a pretraining) behind it; None when it cannot be read
    planned: int
    unit: str                 # "step" or "epoch"
    written: dt.datetime      # the checkpoint's modification time, UTC
    resumes: bool             # the folder is the run's cache key under this code and data
    why_not: str = ""         # when it does not resume (or cannot be read): why

    def says(self) -> str:
        """The phrase ``results status`` appends to the run's line."""
        if self.done is None:
            return f"a checkpoint it cannot read ({self.why_not})"
        at = (f"checkpoint at {self.unit} {self.done:,} of {self.planned:,}, "
              f"written {self.written.strftime('%Y-%m-%d %H:%M UTC')}")
        return f"{at}; recording resumes from it" if self.resumes else f"{at}; recording starts over: {self.why_not}"


@dataclass(frozen=True)
class _Kind:
    """Where a kind of run lies in the cache and how to read its folder."""
    folder: str                                   # under the cache root
    checkpoint: str                               # the file its loop saves
    read_config: Callable[[Path], object]         # config.yaml -> its config (raises SsferError if not one)
    resolve: Callable[[object, Path, object], object | None]   # planned, root, found config -> config
    run_dir: Callable[[object, Path], Path]       # config, cache -> its folder here
    done: Callable[[dict], int]                   # checkpoint -> steps (epochs) behind it
    planned: Callable[[object], int]              # config -> steps (epochs) planned
    unit: str


def _training() -> _Kind:
    from ssfer.config import Config
    from ssfer.train import run_dir_for
    from ssfer.train.loop import CHECKPOINT

    def resolve(p, root: Path, found):
        weights = found.model.pretrained_path if p.pretraining else None
        if p.pretraining and weights is None:
            return None
        return p.resolve(root, {found.data.dataset: str(found.data.root)}, weights)

    return _Kind("runs", CHECKPOINT, Config.from_yaml, resolve, run_dir_for, lambda s: int(s["step"]),
                 lambda cfg: cfg.train.steps, "step")


def _pretraining() -> _Kind:
    from ssfer.pretrain.config import PretrainConfig
    from ssfer.pretrain.loop import CHECKPOINT
    from ssfer.pretrain.run import run_dir_for

    def epochs(s: dict) -> int:
        # saved at an epoch's end: the history's last row is at that epoch
        return max((round(row["epoch"]) for row in s["history"]), default=0)

    return _Kind("pretrain", CHECKPOINT, PretrainConfig.from_yaml,
                 lambda p, root, found: p.resolve(root, {found.data.dataset: str(found.data.root)}),
                 run_dir_for, epochs, lambda cfg: cfg.train.epochs, "epoch")


_KINDS = {"run": _training, "pretraining": _pretraining}


def _candidates(cache: Path, kind: _Kind) -> list[tuple[Path, object]]:
    """Folders of ``kind`` in the cache with a checkpoint and no finished record,
    each with its config (a folder this code cannot read as one is left out)."""
    out = []
    for folder in sorted((cache / kind.folder).glob("*/")):
        if not (folder / kind.checkpoint).is_file() or (folder / "summary.json").exists():
            continue
        try:
            out.append((folder, kind.read_config(folder / "config.yaml")))
        except (SsferError, OSError):
            continue
    return out


def _read(p, folder: Path, cfg, cache: Path, kind: _Kind) -> Partial:
    from ssfer.io import load_weights_file

    ckpt = folder / kind.checkpoint
    written = dt.datetime.fromtimestamp(ckpt.stat().st_mtime, dt.timezone.utc)
    try:
        done = kind.done(load_weights_file(ckpt, map_location="cpu"))
    except (SsferError, KeyError, TypeError, ValueError) as e:
        return Partial(p.name, folder, None, kind.planned(cfg), kind.unit, written, False, str(e))
    try:
        resumes = kind.run_dir(cfg, cache).resolve() == folder.resolve()
        why = "" if resumes else "its folder is another cache key (other training code or other data files)"
    except SsferError as e:
        resumes, why = False, f"its cache key cannot be computed here ({e})"
    return Partial(p.name, folder, done, kind.planned(cfg), kind.unit, written, resumes, why)


def _partial(planned: list, root: Path, cache: Path, kind: _Kind) -> dict[str, Partial]:
    out: dict[str, Partial] = {}
    for folder, found in _candidates(cache, kind):
        want = found.hash()
        for p in planned:
            if p.name in out and out[p.name].resumes:
                continue
            try:
                cfg = kind.resolve(p, root, found)
            except SsferError:
                continue
            if cfg is not None and cfg.hash() == want:
                out[p.name] = _read(p, folder, cfg, cache, kind)
                break
    return out


def partial(planned: list, root: Path, cache_dir: Path | None = None, kind: str = "run") -> dict[str, Partial]:
    """The entries of ``planned`` (configs under ``root``) with a checkpoint in the
    run cache ``cache_dir`` (default ``$SSFER_CACHE`` or ``~/.cache/ssfer``), by
    name. ``kind`` is ``"run"`` (``recording.Planned``: steps trained) or
    ``"pretraining"`` (``pretraining_grid.PlannedPretraining``: epochs). A
    checkpoint belongs to an entry when its folder's config is the entry's; it
    resumes when the folder is also the entry's key here (the same training code,
    the same data files), as ``ssfer train`` and ``ssfer pretrain`` compute it."""
    from ssfer.io import cache_root

    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, not {kind!r}")
    return _partial(planned, root, Path(cache_dir) if cache_dir is not None else cache_root(), _KINDS[kind]())
