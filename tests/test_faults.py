"""What happens when things go wrong: each row of README's fault table has its test here
(or names the test elsewhere that shows it)."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssfer.cli import main as cli_main
from ssfer.config import Config
from ssfer.errors import CheckpointError, NonFiniteLoss, WriteError
from ssfer.record import RunRecord
from ssfer.train import run, run_dir_for
from ssfer.train.loop import CHECKPOINT, Trainer


def cfg_of(tiny, **more):
    return Config.default().with_overrides({**tiny, **more})


def cli_argv(tiny, cache, *extra):
    argv = ["train", "--cache-dir", str(cache), *extra]
    for k, v in tiny.items():
        argv += ["--set", f"{k}={json.dumps(v)}"]
    return argv


class _RunsCode:
    """Unpickling this calls os.system: what a booby-trapped file in a shared cache would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _interrupted_run(tiny, tmp_path, **more):
    cfg = cfg_of(tiny, **{"train.ckpt_every": 2, **more})
    rd = run_dir_for(cfg, tmp_path)
    assert Trainer(cfg, rd).fit(stop_after=3) is None
    assert (rd / CHECKPOINT).exists()
    return cfg, rd


# ---------------------------------------------------------------- checkpoints

# ---------------------------------------------------------------- kill -9

def _train_process(overrides, cache, env):
    argv = [sys.executable, "-m", "ssfer.cli", "train", "--cache-dir", str(cache)]
    for k, v in overrides.items():
        argv += ["--set", f"{k}={json.dumps(v)}"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _record_without_timing(run_dir: Path) -> tuple[list, dict]:
    rec = RunRecord.load(run_dir)
    return rec.history, {k: v for k, v in rec.summary.items() if k not in ("train_seconds", "resumed")}


# ---------------------------------------------------------------- the run folder

class _FullDisk:
    """A file object that writes half of what it is given, then fails as a full disk does."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)


# ---------------------------------------------------------------- non-finite loss

def _nan_from_step(monkeypatch, step):
    import ssfer.train.loop as loop

    real = loop.supervised_loss
    calls = []

    def loss(*args, **kwargs):
        calls.append(1)
        out = real(*args, **kwargs)
        return out * float("nan") if len(calls) >= step else out

    monkeypatch.setattr(loop, "supervised_loss", loss)


# ---------------------------------------------------------------- data errors from the command

def test_data_error_is_one_line_from_the_cli(tmp_path, capsys):
    config = Path(__file__).parents[1] / "configs" / "synthfer_dta_snl.yaml"
    argv = ["train", "--cache-dir", str(tmp_path), "--config", str(config), "--set", "data.n_train=400"]
    assert cli_main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "ssfer: data error: class 'fear' has 9 train samples; asked for 10 labeled + 0 val"
    assert not any("Traceback" in line for line in err)
