"""Run records: one directory per run, keyed by its full config and the code that trains it.

A run directory holds ``config.yaml``, ``metrics.jsonl`` (one JSON object per
logged step), ``summary.json`` (written last: its presence marks a finished
run), ``environment.json``, ``split/`` (the label split's index files),
``model.pt`` (the teacher's final weights) and, while a run is in flight,
``checkpoint.pt``. Every file is written atomically, so an interrupted run
never leaves a half-written file that a later load would trust.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from ssfer import codegraph
from ssfer.config import Config
from ssfer.errors import ConfigError, RunFolderError, WriteError
from ssfer.io import atomic_write_json, atomic_write_text, file_sha256, write_error

# what ``ssfer.train.run`` trains with; the run key covers it and what it imports
TRAINER = "ssfer.train.loop"


def training_modules() -> list[str]:
    """The modules whose code can change a run's numbers: the trainer and every
    ``ssfer`` module it imports, transitively, found in their source (not a list
    kept by hand). The CLI, the notebook tooling, results and evaluation are not
    among them, so editing those retrains nothing."""
    return codegraph.closure([TRAINER])


def training_code_digest() -> str:
    """Digest of the code of ``training_modules()``, docstrings and comments left
    out: part of every run key, and the ``code_fingerprint`` of its record."""
    return codegraph.code_digest(training_modules())


def run_key(cfg: Config) -> str:
    """A run's cache key: its config, the data it reads (``data_fingerprint``), the
    weights it starts from (``weights_fingerprint``) and the code that trains it.
    Each part adds nothing where it does not apply, so the keys of runs without
    pretrained weights are what they were."""
    data, weights = data_fingerprint(cfg), weights_fingerprint(cfg)
    return hashlib.sha256((cfg.hash() + training_code_digest() + (data or "")
                           + (weights or "")).encode()).hexdigest()[:20]


def weights_fingerprint(cfg: Config) -> str | None:
    """The sha256 of the file at ``model.pretrained_path`` (None when unset): a run
    started from other weights under the same path (a pretraining run again, a
    file replaced) is another run."""
    path = cfg.model.pretrained_path
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.pretrained_path: no file at {path}")
    return file_sha256(path)


def data_fingerprint(cfg: Config) -> str | None:
    """What a run's data set is, beyond the words of its config: ``data.root``
    resolved (a relative root names another folder from another working folder)
    and, for every split the run reads, the key its decoded images are cached
    under (each image's path, size and mtime, the label files', the labels).
    So a run trained on other data is never taken from the cache for this one.

    None for SynthFER, which the config draws; a ``DataError`` when the data set
    cannot be read, before anything is trained or loaded."""
    from ssfer.data import cache
    from ssfer.data.registry import scan

    d = cfg.data
    if d.dataset == "synthfer":
        return None
    root = os.path.abspath(os.fspath(d.root))
    h = hashlib.sha256(root.encode())
    for split in dict.fromkeys(s for s in ("train", d.test_split, d.val_split) if s):
        h.update(cache.cache_key(scan(d.dataset, root, split, **d.options), None, None).encode())
    return h.hexdigest()


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def cpu_kind(env: dict) -> str:
    """The CPU kind an ``environment()`` record names: instruction set and model
    ("not recorded" for runs from before they were). A run repeats bit for bit
    only on its own kind."""
    cpu = env.get("cpu_capability")
    return f"{cpu}, {env.get('cpu_model') or '?'}" if cpu else "not recorded"


def this_cpu_kind() -> str:
    """This machine's CPU kind, as ``cpu_kind`` names a recorded run's."""
    import torch

    return cpu_kind({"cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_model": _cpu_model()})


def environment() -> dict:
    """Versions, device and commit: enough to say where a number came from."""
    import torch

    pkgs = {}
    for name in ("torch", "torchvision", "timm", "numpy", "scikit-learn", "ssfer"):
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pkgs[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=codegraph.PACKAGE_DIR, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": pkgs,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cpu_threads": torch.get_num_threads(),
        # runs repeat bit for bit only on the same instruction set (and CPU kind)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_model": _cpu_model(),
        "git_commit": commit,
        "code_fingerprint": training_code_digest(),
        "command": " ".join(sys.argv),
    }


@dataclass
class RunRecord:
    """What a finished run leaves: its config, per-step history and final summary."""

    config: Config
    history: list[dict]
    summary: dict
    run_dir: Path | None = None
    environment: dict = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        return self.summary["class_names"]

    def history_without_timing(self) -> list[dict]:
        """The history less its wall-clock times: what two runs of one config share."""
        return [{k: v for k, v in row.items() if k != "train_seconds"} for row in self.history]

    def history_frame(self):
        """The history as a pandas DataFrame (one row per logged step)."""
        import pandas as pd

        return pd.DataFrame(self.history)

    def save(self, run_dir: Path) -> None:
        """Write the record; ``summary.json`` last, as its presence marks the run
        finished. If a write fails (``WriteError``), the files this call wrote are
        removed again: the folder never shows a record that is only partly new."""
        written: list[Path] = []
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "summary.json").unlink(missing_ok=True)  # a forced rerun's old one
            for name, write, value in (
                    ("config.yaml", atomic_write_text, self.config.to_yaml()),
                    ("metrics.jsonl", atomic_write_text,
                     "".join(json.dumps(h, allow_nan=False) + "\n" for h in self.history)),
                    ("environment.json", atomic_write_json, self.environment),
                    ("summary.json", atomic_write_json, self.summary)):
                write(run_dir / name, value)
                written.append(run_dir / name)
        except OSError as e:
            for path in written:
                if path.name != "config.yaml":  # the run's config is valid whatever else failed
                    path.unlink(missing_ok=True)
            if isinstance(e, WriteError):
                raise
            raise write_error(run_dir, e) from e
        self.run_dir = run_dir

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunRecord":
        """The record in ``run_dir``; a ``RunFolderError`` naming the folder and the
        file when it is missing, unfinished or damaged."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise RunFolderError(f"{run_dir}: " + ("not a folder" if run_dir.exists() else "no such run folder"))
        if not (run_dir / "summary.json").exists():
            raise RunFolderError(f"{run_dir}: not a finished run (no summary.json)")
        try:
            config = Config.from_yaml(run_dir / "config.yaml")  # its errors name the file
        except ConfigError as e:
            raise RunFolderError(str(e)) from e
        env_path = run_dir / "environment.json"
        return cls(
            config=config,
            history=_read_jsonl(run_dir / "metrics.jsonl"),
            summary=_read_json(run_dir / "summary.json"),
            run_dir=run_dir,
            environment=_read_json(env_path) if env_path.exists() else {},
        )


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise RunFolderError(f"{path}: missing from the run folder") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunFolderError(f"{path}: cannot be read ({getattr(e, 'strerror', None) or e})") from e


def _read_json(path: Path) -> dict:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise RunFolderError(f"{path}:{e.lineno}: not JSON (truncated or corrupt?): {e.msg}") from e


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(_read_text(path).split("\n"), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise RunFolderError(f"{path}:{n}: not JSON (truncated or corrupt?): {e.msg}") from e
    return rows
