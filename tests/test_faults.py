"""What happens when things go wrong: each row of the fault table (book/faults.md) has its test here
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

def test_truncated_checkpoint_is_named_and_restart_discards_it(tiny_overrides, tmp_path, capsys):
    cfg, rd = _interrupted_run(tiny_overrides, tmp_path)
    ckpt = rd / CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"{ckpt}: cannot be read \(truncated or corrupt\?\).*--restart"):
        run(cfg, cache_dir=tmp_path)
    argv = cli_argv({**tiny_overrides, "train.ckpt_every": 2}, tmp_path)
    assert cli_main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"ssfer: checkpoint error: {ckpt}: cannot be read") and "Traceback" not in err
    assert not (rd / "summary.json").exists()
    rec = run(cfg, cache_dir=tmp_path, restart=True)     # the way out the message names
    assert rec.summary["resumed"] is False and rec.summary["steps"] == cfg.train.steps
    assert (rd / "summary.json").exists() and not ckpt.exists()


def test_restart_through_the_cli(tiny_overrides, tmp_path, capsys):
    _, rd = _interrupted_run(tiny_overrides, tmp_path)
    (rd / CHECKPOINT).write_bytes(b"not a checkpoint")
    assert cli_main(cli_argv({**tiny_overrides, "train.ckpt_every": 2}, tmp_path, "--restart")) == 0
    assert json.loads(capsys.readouterr().out)["run_dir"] == str(rd)
    assert RunRecord.load(rd).summary["resumed"] is False


def test_foreign_pickle_as_checkpoint_is_refused_and_runs_no_code(tiny_overrides, tmp_path):
    cfg, rd = _interrupted_run(tiny_overrides, tmp_path)
    marker = tmp_path / "code-ran"
    torch.save({"config_hash": cfg.hash(), "step": _RunsCode(marker)}, rd / CHECKPOINT)
    with pytest.raises(CheckpointError, match=rf"{rd / CHECKPOINT}: refused to load: it holds Python objects "
                                              r"\(posix.system\).*none was run"):
        run(cfg, cache_dir=tmp_path)
    assert not marker.exists()


def test_foreign_pickle_as_model_weights_is_refused_and_runs_no_code(tiny_overrides, tmp_path):
    from ssfer.evaluate import load_teacher

    rec = run(cfg_of(tiny_overrides, **{"algo.name": "supervised"}), cache_dir=tmp_path)
    marker = tmp_path / "code-ran"
    torch.save({"head.weight": _RunsCode(marker)}, rec.run_dir / "model.pt")
    with pytest.raises(CheckpointError, match=rf"{rec.run_dir / 'model.pt'}: refused to load"):
        load_teacher(RunRecord.load(rec.run_dir), torch.device("cpu"))
    assert not marker.exists()


# ---------------------------------------------------------------- kill -9

def _train_process(overrides, cache, env):
    argv = [sys.executable, "-m", "ssfer.cli", "train", "--cache-dir", str(cache)]
    for k, v in overrides.items():
        argv += ["--set", f"{k}={json.dumps(v)}"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _record_without_timing(run_dir: Path) -> tuple[list, dict]:
    rec = RunRecord.load(run_dir)
    return rec.history_without_timing(), {k: v for k, v in rec.summary.items() if k not in ("train_seconds", "resumed")}


@pytest.mark.slow  # trains in two subprocesses and once here
def test_kill_9_mid_run_then_rerun_gives_the_uninterrupted_record(tmp_path):
    """A real SIGKILL of ``ssfer train`` in a subprocess (no chance to clean up), then the same command again."""
    ov = {"data.n_train": 300, "data.n_test": 70, "data.size": 16, "model.name": "test_resnet",
          "split.n_per_class": 4, "algo.name": "dta_snl", "train.steps": 30, "train.batch_size": 8,
          "train.mu": 2, "train.log_every": 4, "train.eval_every": 10, "train.ckpt_every": 2,
          "train.threads": 1, "train.progress": False, "train.device": "cpu"}
    cfg = Config.default().with_overrides(ov)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSFER_CACHE": str(tmp_path / "cache")}
    victim = _train_process(ov, tmp_path / "victim", env)
    rd = run_dir_for(cfg, tmp_path / "victim")
    deadline = time.monotonic() + 120
    while not (rd / CHECKPOINT).exists():
        assert victim.poll() is None, f"finished before a checkpoint was seen: {victim.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert not (rd / "summary.json").exists() and (rd / CHECKPOINT).exists()

    again = _train_process(ov, tmp_path / "victim", env)          # the same command again
    threads = torch.get_num_threads()
    try:  # the uninterrupted run, here meanwhile (train.threads=1 as in the subprocesses)
        reference = run(cfg, cache_dir=tmp_path / "reference")
    finally:
        torch.set_num_threads(threads)
    assert again.wait(timeout=300) == 0, again.communicate()[1][-3000:]
    again.communicate()
    assert RunRecord.load(rd).summary["resumed"] is True
    assert _record_without_timing(rd) == _record_without_timing(reference.run_dir)
    assert not (rd / CHECKPOINT).exists()


@pytest.mark.slow  # starts a subprocess to hold the lock
def test_a_run_lock_held_by_a_killed_process_is_free_at_once(tmp_path):
    """The run lock is the OS's lock on an open file: a ``kill -9`` of the process
    training the run frees it, so the next ``run`` of that config proceeds (and
    resumes from the checkpoint) instead of waiting for a process that is gone."""
    import threading

    from filelock import FileLock, Timeout

    from ssfer.train import run_lock

    rd = tmp_path / "runs" / "k"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from ssfer.train import run_lock\n"
                               "with run_lock(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(600)",
         str(rd)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Timeout):  # held while the holder lives: the check below can fail
            FileLock(rd.with_name("k.lock"), timeout=0.5).acquire()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.communicate()
    entered = threading.Event()

    def take():
        with run_lock(rd):
            entered.set()

    waiter = threading.Thread(target=take, daemon=True)
    waiter.start()
    assert entered.wait(timeout=30), "the lock of a killed process still blocks"


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


@pytest.mark.parametrize("victim", ["metrics.jsonl", "summary.json"])
def test_full_disk_while_the_record_is_written_leaves_nothing_half_written(victim, tiny_overrides, tmp_path,
                                                                            monkeypatch, capsys):
    real_fdopen = os.fdopen

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        return _FullDisk(f) if f"/.{victim}." in os.readlink(f"/proc/self/fd/{fd}") else f

    cfg = cfg_of(tiny_overrides, **{"algo.name": "supervised", "train.ckpt_every": 2})
    rd = run_dir_for(cfg, tmp_path)
    monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(WriteError, match=rf"{rd / victim}: cannot write \(No space left on device\)"):
        run(cfg, cache_dir=tmp_path)
    assert cli_main(cli_argv({**tiny_overrides, "algo.name": "supervised", "train.ckpt_every": 2}, tmp_path)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"ssfer: write error: {rd / victim}: cannot write")
    left = sorted(p.name for p in rd.iterdir())
    assert "summary.json" not in left and "metrics.jsonl" not in left, left
    assert not [n for n in left if n.endswith(".tmp")], left
    assert CHECKPOINT in left  # the last checkpoint is kept: a rerun resumes from it
    monkeypatch.setattr(os, "fdopen", real_fdopen)  # space again
    rec = run(cfg, cache_dir=tmp_path)
    assert rec.summary["resumed"] is True and (rd / "summary.json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the full-disk test covers this path")
def test_read_only_run_folder_is_named_before_training(tiny_overrides, tmp_path):
    cfg = cfg_of(tiny_overrides, **{"algo.name": "supervised"})
    rd = run_dir_for(cfg, tmp_path)
    rd.mkdir(parents=True)
    rd.chmod(0o555)
    try:
        with pytest.raises(WriteError, match=str(rd)):
            run(cfg, cache_dir=tmp_path)
        assert list(rd.iterdir()) == []
    finally:
        rd.chmod(0o755)


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


@pytest.mark.parametrize("log_every, caught_at", [(2, 6), (4, 6)])  # at a log step; at a checkpoint step
def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(log_every, caught_at, tiny_overrides,
                                                                          tmp_path, monkeypatch):
    cfg = cfg_of(tiny_overrides, **{"algo.name": "fixmatch", "train.steps": 8, "train.eval_every": 0,
                                    "train.log_every": log_every, "train.ckpt_every": 2})
    rd = run_dir_for(cfg, tmp_path)
    _nan_from_step(monkeypatch, 5)
    with pytest.raises(NonFiniteLoss, match=rf"steps \d\.\.{caught_at} .*total=nan.*{rd / CHECKPOINT} \(step 4\)"):
        run(cfg, cache_dir=tmp_path)
    ckpt = torch.load(rd / CHECKPOINT, weights_only=True)
    assert ckpt["step"] == 4 and all(torch.isfinite(v).all() for v in ckpt["student"].values())
    for name in ("summary.json", "metrics.jsonl", "model.pt"):
        assert not (rd / name).exists(), name


def test_non_finite_loss_is_one_line_from_the_cli_and_a_traceback_with_debug(tiny_overrides, tmp_path,
                                                                              monkeypatch, capsys):
    _nan_from_step(monkeypatch, 2)
    argv = cli_argv({**tiny_overrides, "algo.name": "supervised"}, tmp_path)
    assert cli_main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ssfer: training stopped: non-finite loss or weights in steps 1..2 (mean loss")
    assert not any("Traceback" in line for line in err)
    with pytest.raises(NonFiniteLoss):
        cli_main(["--debug", *argv])
    with pytest.raises(NonFiniteLoss):
        cli_main([*argv, "--debug"])


# ---------------------------------------------------------------- data errors from the command

def test_data_error_is_one_line_from_the_cli(tmp_path, capsys):
    config = Path(__file__).parents[1] / "configs" / "synthfer_dta_snl.yaml"
    argv = ["train", "--cache-dir", str(tmp_path), "--config", str(config), "--set", "data.n_train=400"]
    assert cli_main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "ssfer: data error: class 'fear' has 9 train samples; asked for 10 labeled + 0 val"
    assert not any("Traceback" in line for line in err)


def test_every_test_the_fault_table_names_exists():
    """A renamed or deleted test must not leave the table pointing at nothing.
    ``::name`` in a cell means a test of the file named before it in that cell."""
    import ast
    import re

    repo = Path(__file__).resolve().parents[1]
    rows = [line for line in (repo / "book" / "faults.md").read_text().splitlines()
            if line.startswith("| ") and "test" in line.rsplit("|", 2)[-2]]
    assert len(rows) >= 12, "the fault table lost rows"
    named, missing = 0, []
    for row in rows[1:]:  # rows[0] is the header
        path = None
        for ref in re.findall(r"`((?:tests/[\w/]+\.py)?::\w+)`", row.rsplit("|", 2)[-2]):
            file, name = ref.split("::")
            path = file or path
            tree = ast.parse((repo / path).read_text())
            tests = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            named += 1
            if name not in tests:
                missing.append(f"{path}::{name}")
    assert named >= 30 and missing == [], missing
