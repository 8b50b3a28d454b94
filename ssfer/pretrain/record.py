"""Pretraining records and their cache keys.

A pretraining folder holds what a training run's does (``ssfer.record``):
``config.yaml``, ``metrics.jsonl`` (the loss every ``train.log_every`` steps,
the probe's validation accuracy every ``probe.every`` epochs), ``environment.json``,
``summary.json`` (written last: its presence marks a finished run), and, in
place of a model, ``backbone.pt``: the online encoder's state_dict, weights only,
which ``model.pretrained_path`` loads. ``checkpoint.pt`` lives there while a
run is in flight. Every file is written atomically.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ssfer import codegraph
from ssfer.errors import ConfigError, RunFolderError, WriteError
from ssfer.io import atomic_write_json, atomic_write_text, write_error
from ssfer.pretrain.config import PretrainConfig
from ssfer.record import data_fingerprint

# what ``ssfer pretrain`` trains with; the key covers it and every ssfer module it imports
PRETRAINER = "ssfer.pretrain.loop"
WEIGHTS = "backbone.pt"
REBUILD = "ssfer pretrain --config config.yaml"  # config.yaml: the one in the record's folder


def pretraining_code_digest() -> str:
    """Digest of the pretraining loop's code and all it imports (docstrings and
    comments left out): the trainer of fine-tuning runs is not among it."""
    return codegraph.code_digest(codegraph.closure([PRETRAINER]))


def run_key(cfg: PretrainConfig) -> str:
    """A pretraining's cache key: its config, the data it reads, the code."""
    data = data_fingerprint(cfg.run_config())
    return hashlib.sha256((cfg.hash() + pretraining_code_digest() + (data or "")).encode()).hexdigest()[:20]


@dataclass
class PretrainRecord:
    """What a finished pretraining leaves: config, history, summary, environment."""

    config: PretrainConfig
    history: list[dict]
    summary: dict
    run_dir: Path | None = None
    environment: dict = field(default_factory=dict)

    @property
    def weights(self) -> Path:
        """The backbone's weights file (for ``model.pretrained_path``)."""
        if self.run_dir is None:
            raise RunFolderError("this pretraining record was not saved to a folder; it has no weights file")
        return self.run_dir / WEIGHTS

    def probe_curve(self) -> list[dict]:
        """The probe's rows: epoch, step, validation kNN accuracy, seconds."""
        return [row for row in self.history if "probe_accuracy" in row]

    def save(self, run_dir: Path) -> None:
        """Write the record, ``summary.json`` last; if a write fails, the files this
        call wrote are removed again (as ``ssfer.record.RunRecord.save``)."""
        written: list[Path] = []
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "summary.json").unlink(missing_ok=True)
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
                if path.name != "config.yaml":
                    path.unlink(missing_ok=True)
            if isinstance(e, WriteError):
                raise
            raise write_error(run_dir, e) from e
        self.run_dir = run_dir

    @classmethod
    def load(cls, run_dir: str | Path, weights: bool = True) -> PretrainRecord:
        """The record in ``run_dir``; a ``RunFolderError`` naming the file when it
        is missing, unfinished or damaged. ``weights=False``: a record without its
        weights, as ``results/`` keeps it."""
        run_dir = Path(run_dir)
        if not (run_dir / "summary.json").exists():
            raise RunFolderError(f"{run_dir}: not a finished pretraining (no summary.json)")
        if weights and not (run_dir / WEIGHTS).exists():
            raise RunFolderError(f"{run_dir / WEIGHTS}: missing from the pretraining folder")
        try:
            config = PretrainConfig.from_yaml(run_dir / "config.yaml")
        except ConfigError as e:
            raise RunFolderError(str(e)) from e
        env = run_dir / "environment.json"
        return cls(config=config, history=_parse(run_dir / "metrics.jsonl", lines=True),
                   summary=_parse(run_dir / "summary.json"), run_dir=run_dir,
                   environment=_parse(env) if env.exists() else {})


def _parse(path: Path, lines: bool = False):
    """The JSON in ``path`` (``lines``: one object a line), or a ``RunFolderError`` naming it."""
    try:
        text = path.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()] if lines else json.loads(text)
    except FileNotFoundError:
        raise RunFolderError(f"{path}: missing from the pretraining folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunFolderError(f"{path}: cannot be read (truncated or corrupt?): {e}") from e
