"""Planned runs that are part-trained in a run cache: how far their checkpoint
got, and whether ``ssfer results record`` resumes it.

A recording session that stops (a closed laptop, a session's end) leaves each
unfinished run's ``checkpoint.pt`` in the cache; the next ``results record``
resumes it. ``results status`` reads these so that what it says is left, and
what that costs, counts the steps already trained. It reads configs and
checkpoints only, and computes a run key (which scans the data set's files)
only for a run whose checkpoint matches its config.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ssfer.config import Config
from ssfer.errors import SsferError


@dataclass(frozen=True)
class Partial:
    """One planned run's checkpoint in the cache."""
    name: str
    folder: Path
    step: int | None          # None when the checkpoint cannot be read
    steps: int
    written: dt.datetime      # the checkpoint's modification time, UTC
    resumes: bool             # the folder is the run's key under this code and data
    why_not: str = ""         # when it does not resume (or cannot be read): why

    def says(self) -> str:
        """The phrase ``results status`` appends to the run's line."""
        when = self.written.strftime("%Y-%m-%d %H:%M UTC")
        if self.step is None:
            return f"a checkpoint it cannot read ({self.why_not})"
        at = f"checkpoint at step {self.step:,} of {self.steps:,}, written {when}"
        return f"{at}; recording resumes from it" if self.resumes else f"{at}; recording starts over: {self.why_not}"


def _candidates(cache_dir: Path) -> list[tuple[Path, Config]]:
    """Run folders of the cache with a checkpoint and no finished record, each
    with its config (folders of other kinds, such as pretrainings, are left out)."""
    from ssfer.train.loop import CHECKPOINT

    out = []
    for folder in sorted((cache_dir / "runs").glob("*/")):
        if not (folder / CHECKPOINT).is_file() or (folder / "summary.json").exists():
            continue
        try:
            out.append((folder, Config.from_yaml(folder / "config.yaml")))
        except (SsferError, OSError):
            continue   # not a training run's folder, or not one this code reads: not ours to report
    return out


def _planned_config(p, root: Path, found: Config) -> Config | None:
    """``p``'s config with the data root (and weights) of the folder's config, the
    parts a grid leaves to the command line; None where it cannot be built."""
    weights = found.model.pretrained_path if p.pretraining else None
    if p.pretraining and weights is None:
        return None
    try:
        return p.resolve(root, {found.data.dataset: str(found.data.root)}, weights)
    except SsferError:
        return None


def partial_runs(planned: list, root: Path, cache_dir: Path | None = None) -> dict[str, Partial]:
    """The runs of ``planned`` (``recording.Planned``, configs under ``root``) with
    a checkpoint in the run cache ``cache_dir`` (default ``$SSFER_CACHE`` or
    ``~/.cache/ssfer``), by name. A checkpoint belongs to a run when its folder's
    config is the run's; it resumes when the folder is also the run's key here
    (the same training code, the same data files), as ``ssfer train`` computes it."""
    from ssfer.io import cache_root, load_weights_file
    from ssfer.train import run_dir_for
    from ssfer.train.loop import CHECKPOINT

    cache = Path(cache_dir) if cache_dir is not None else cache_root()
    out: dict[str, Partial] = {}
    for folder, found in _candidates(cache):
        want = found.hash()
        for p in planned:
            cfg = _planned_config(p, root, found)
            if cfg is None or cfg.hash() != want or (p.name in out and out[p.name].resumes):
                continue
            ckpt = folder / CHECKPOINT
            written = dt.datetime.fromtimestamp(ckpt.stat().st_mtime, dt.timezone.utc)
            try:
                step = int(load_weights_file(ckpt, map_location="cpu")["step"])
            except (SsferError, KeyError, TypeError, ValueError) as e:
                out[p.name] = Partial(p.name, folder, None, cfg.train.steps, written, False, str(e))
                break
            try:
                resumes = run_dir_for(cfg, cache).resolve() == folder.resolve()
                why = "" if resumes else "its folder is another run key (other training code or other data files)"
            except SsferError as e:
                resumes, why = False, f"its run key cannot be computed here ({e})"
            out[p.name] = Partial(p.name, folder, step, cfg.train.steps, written, resumes, why)
            break
    return out
