"""Run folders that are missing or damaged, a relative data root read from two
working folders, and Ctrl-C: each ends in one line naming the folder, file or
step, with a non-zero exit, and loses nothing that was written before."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssfer.cli import main as cli_main
from ssfer.config import Config
from ssfer.errors import RunFolderError
from ssfer.record import RunRecord
from ssfer.train import run, run_dir_for
from ssfer.train.loop import CHECKPOINT
from child_signals import default_sigint


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and not any("Traceback" in line for line in err), err
    return err[-1]


def grey_faces(root: Path, split: str, per_class: dict[str, int], size: int = 16, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for cls, n in per_class.items():
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(root / split / cls / f"{i}.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished tiny run, copied afresh for each test that damages it."""
    ov = {"data.n_train": 400, "data.n_test": 70, "data.size": 32, "model.name": "test_resnet",
          "split.n_per_class": 4, "train.steps": 4, "train.batch_size": 8, "train.mu": 2, "train.log_every": 2,
          "train.eval_every": 2, "train.progress": False, "train.device": "cpu", "algo.name": "supervised"}
    cache = tmp_path_factory.mktemp("trained")
    return ov, run(Config.default().with_overrides(ov), cache_dir=cache).run_dir


@pytest.fixture
def faces(tmp_path):
    root = tmp_path / "faces"
    grey_faces(root, "test", {"happy": 3, "sad": 3})
    return root


def _copy(trained, tmp_path) -> Path:
    rd = tmp_path / "runs" / trained[1].name
    shutil.copytree(trained[1], rd)
    return rd


# ---------------------------------------------------------------- eval of a damaged run folder

def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt_second_row(path: Path) -> None:
    rows = path.read_text().splitlines()
    path.write_text("\n".join([rows[0], rows[1][:-7], *rows[2:]]) + "\n")


@pytest.mark.parametrize("damage, expect", [
    (lambda rd: shutil.rmtree(rd), "{rd}: no such run folder"),
    (lambda rd: (rd / "model.pt").unlink(),
     "{rd}: the run has no model.pt (its teacher's weights); retrain the run (`ssfer train ... --force`)"),
    (lambda rd: _truncate(rd / "summary.json"), "{rd}/summary.json:"),
    (lambda rd: (rd / "summary.json").unlink(), "{rd}: not a finished run (no summary.json)"),
    (lambda rd: _corrupt_second_row(rd / "metrics.jsonl"), "{rd}/metrics.jsonl:2: not JSON (truncated or corrupt?)"),
    (lambda rd: (rd / "metrics.jsonl").unlink(), "{rd}/metrics.jsonl: missing from the run folder"),
    (lambda rd: (rd / "config.yaml").unlink(), "{rd}/config.yaml: cannot read the config file"),
    (lambda rd: (rd / "environment.json").write_text("{"), "{rd}/environment.json:1: not JSON"),
], ids=["no folder", "no model.pt", "truncated summary.json", "no summary.json", "corrupt metrics.jsonl",
        "no metrics.jsonl", "no config.yaml", "corrupt environment.json"])
def test_eval_of_a_damaged_run_folder_is_one_line_naming_the_file(damage, expect, trained, faces, tmp_path,
                                                                   monkeypatch, capsys):
    """Before: a FileNotFoundError, JSONDecodeError or ValueError traceback."""
    rd = _copy(trained, tmp_path)
    damage(rd)
    left = digests(rd) if rd.exists() else {}
    monkeypatch.setenv("SSFER_CACHE", str(tmp_path / "cache"))
    assert cli_main(["eval", str(rd), "--dataset", "folder", "--root", str(faces)]) == 1
    assert one_line(capsys).startswith("ssfer: run folder error: " + expect.format(rd=rd))
    assert (digests(rd) if rd.exists() else {}) == left  # the folder is left as it was
    assert not (tmp_path / "cache").exists()  # named before any data set was decoded


def test_run_record_load_raises_the_run_folder_error():
    with pytest.raises(RunFolderError, match="/no/such/run: no such run folder"):
        RunRecord.load("/no/such/run")


def test_model_weights_of_another_network_are_named(trained, faces, tmp_path, capsys):
    rd = _copy(trained, tmp_path)
    torch.save({"head.weight": torch.zeros(3, 3)}, rd / "model.pt")
    assert cli_main(["eval", str(rd), "--dataset", "folder", "--root", str(faces)]) == 1
    assert one_line(capsys).startswith(f"ssfer: checkpoint error: {rd / 'model.pt'}: does not fit the run's "
                                       "network (test_resnet): Error(s) in loading state_dict")


def test_train_over_a_cached_run_with_a_corrupt_log_names_it_and_force_trains_it_again(trained, tmp_path, capsys):
    """Before: a ValueError traceback, with no word of ``--force``."""
    ov, _ = trained
    rd = _copy(trained, tmp_path)
    assert rd == run_dir_for(Config.default().with_overrides(ov), tmp_path)
    _corrupt_second_row(rd / "metrics.jsonl")
    damaged = digests(rd)
    argv = ["train", "--cache-dir", str(tmp_path)] + [a for k, v in ov.items() for a in ("--set", f"{k}={v}")]
    assert cli_main(argv) == 1
    line = one_line(capsys)
    assert line.startswith(f"ssfer: run folder error: {rd / 'metrics.jsonl'}:2: not JSON (truncated or corrupt?)")
    assert line.endswith("the cached run is damaged: `ssfer train ... --force` (or `run(..., force=True)`) "
                         "trains it again")
    assert digests(rd) == damaged  # nothing is removed until asked
    assert cli_main([*argv, "--force"]) == 0
    capsys.readouterr()
    assert RunRecord.load(rd).history_without_timing() == RunRecord.load(trained[1]).history_without_timing()


# ---------------------------------------------------------------- a relative data root

def test_a_relative_data_root_from_another_folder_never_returns_the_first_folders_run(tmp_path, monkeypatch,
                                                                                       capsys):
    """Before: the run cache keyed ``data.root`` as typed, so ``faces`` in B returned
    the run trained on A's ``faces`` (exit 0), whatever B holds."""
    a, b, cache = tmp_path / "A", tmp_path / "B", tmp_path / "cache"
    for folder, seed in ((a, 0), (b, 1)):
        folder.mkdir()
    classes = {"happy": 6, "sad": 6, "neutral": 6}
    grey_faces(a / "faces", "train", classes, seed=0)
    grey_faces(a / "faces", "test", {c: 2 for c in classes}, seed=10)
    monkeypatch.setenv("SSFER_CACHE", str(cache))
    ov = {"data.dataset": "folder", "data.root": "faces", "data.size": 16, "model.name": "test_resnet",
          "split.n_per_class": 2, "train.steps": 2, "train.batch_size": 4, "train.mu": 2, "train.log_every": 1,
          "train.eval_every": 0, "train.progress": False, "train.device": "cpu", "algo.name": "supervised"}
    argv = ["train", "--cache-dir", str(cache)] + [a for k, v in ov.items() for a in ("--set", f"{k}={v}")]

    monkeypatch.chdir(a)
    assert cli_main(argv) == 0
    in_a = Path(json.loads(capsys.readouterr().out)["run_dir"])
    trained_in_a = digests(in_a)

    monkeypatch.chdir(b)  # no faces here: the same command is a data error, not A's run
    assert cli_main(argv) == 1
    assert one_line(capsys) == f"ssfer: data error: folder: data set root {b / 'faces'} does not exist"
    assert sorted(p.name for p in (cache / "runs").iterdir() if p.is_dir()) == [in_a.name]

    grey_faces(b / "faces", "train", classes, seed=1)  # other faces under the same name: another run
    grey_faces(b / "faces", "test", {c: 2 for c in classes}, seed=11)
    assert cli_main(argv) == 0
    in_b = Path(json.loads(capsys.readouterr().out)["run_dir"])
    assert in_b != in_a and RunRecord.load(in_b).summary["resumed"] is False
    assert digests(in_a) == trained_in_a  # A's run is untouched

    monkeypatch.chdir(a)  # and A's command still finds A's run
    assert cli_main(argv) == 0
    assert Path(json.loads(capsys.readouterr().out)["run_dir"]) == in_a


def test_the_run_key_follows_the_data_not_only_its_path(tmp_path):
    grey_faces(tmp_path / "faces", "train", {"happy": 4, "sad": 4})
    grey_faces(tmp_path / "faces", "test", {"happy": 2, "sad": 2})
    cfg = Config.default().with_overrides({"data.dataset": "folder", "data.root": str(tmp_path / "faces")})
    before = run_dir_for(cfg, tmp_path)
    img = tmp_path / "faces" / "train" / "sad" / "0.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(img)
    os.utime(img, ns=(img.stat().st_atime_ns, img.stat().st_mtime_ns + 10 ** 9))
    assert run_dir_for(cfg, tmp_path) != before


# ---------------------------------------------------------------- Ctrl-C

def _train_process(overrides, cache, env):
    argv = [sys.executable, "-m", "ssfer.cli", "train", "--cache-dir", str(cache)]
    for k, v in overrides.items():
        argv += ["--set", f"{k}={json.dumps(v)}"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=default_sigint)


@pytest.mark.slow  # trains in two subprocesses and once here
def test_ctrl_c_names_the_last_checkpoint_exits_130_and_the_same_command_resumes(tmp_path):
    """A real SIGINT to ``ssfer train``. Before: a 20-line KeyboardInterrupt
    traceback and exit 1, without a word of the checkpoint kept."""
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
    os.kill(victim.pid, signal.SIGINT)
    _, err = victim.communicate(timeout=120)
    assert victim.returncode == 130, err[-3000:]
    lines = err.strip().splitlines()
    assert not any("Traceback" in line for line in lines), err[-3000:]
    m = re.fullmatch(rf"ssfer: interrupted: training interrupted after step (\d+) of 30; the last checkpoint, "
                     rf"{re.escape(str(rd / CHECKPOINT))} \(step (\d+)\), is kept: the same command resumes from it",
                     lines[-1])
    assert m, lines[-1]
    assert torch.load(rd / CHECKPOINT, weights_only=True)["step"] == int(m.group(2)) <= int(m.group(1))
    left = sorted(p.name for p in rd.iterdir())
    assert "summary.json" not in left and not [n for n in left if n.endswith(".tmp")], left

    again = _train_process(ov, tmp_path / "victim", env)  # the same command again
    threads = torch.get_num_threads()
    try:  # the uninterrupted run, here meanwhile (train.threads=1 as in the subprocesses)
        reference = run(cfg, cache_dir=tmp_path / "reference")
    finally:
        torch.set_num_threads(threads)
    assert again.wait(timeout=300) == 0, again.communicate()[1][-3000:]
    again.communicate()
    resumed = RunRecord.load(rd)
    assert resumed.summary["resumed"] is True
    assert resumed.history_without_timing() == reference.history_without_timing()
    assert {k: v for k, v in resumed.summary.items() if k not in ("train_seconds", "resumed")} == \
           {k: v for k, v in reference.summary.items() if k not in ("train_seconds", "resumed")}


def test_ctrl_c_before_a_checkpoint_says_the_same_command_starts_again(tmp_path, monkeypatch, capsys,
                                                                            ctrl_c_raises):
    """A real SIGINT to this process, sent from the first training step, for the
    words of a run with no checkpoint yet."""
    import ssfer.train.loop as loop

    ov = {"data.n_train": 300, "data.n_test": 40, "data.size": 16, "model.name": "test_resnet",
          "split.n_per_class": 2, "algo.name": "supervised", "train.steps": 4, "train.batch_size": 4,
          "train.log_every": 2, "train.eval_every": 0, "train.progress": False, "train.device": "cpu"}

    def interrupted(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)  # Python raises KeyboardInterrupt here, as soon as the signal lands
        raise AssertionError("no SIGINT arrived")

    monkeypatch.setattr(loop.Trainer, "train_step", interrupted)
    argv = ["train", "--cache-dir", str(tmp_path)] + [a for k, v in ov.items() for a in ("--set", f"{k}={v}")]
    assert cli_main(argv) == 130
    rd = run_dir_for(Config.default().with_overrides(ov), tmp_path)
    assert one_line(capsys) == ("ssfer: interrupted: training interrupted after step 0 of 4; no checkpoint had been "
                                "saved (train.ckpt_every=0): the same command trains the run from the start")
    assert not (rd / "summary.json").exists()
