"""``ssfer pretrain``: what it reads (no validation or test face), what it writes
(a record and weights that ``model.pretrained_path`` loads), and that it repeats
bit for bit, resumed or not (a real SIGKILL in the slow test)."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ssfer.pretrain.data as pretrain_data
from ssfer import codegraph
from ssfer.config import Config
from ssfer.data import DataError
from ssfer.errors import CheckpointError, NonFiniteLoss
from ssfer.model import model_for
from ssfer.pretrain.config import PretrainConfig
from ssfer.pretrain.loop import CHECKPOINT, Pretrainer
from ssfer.io import file_sha256
from ssfer.pretrain.record import PRETRAINER, WEIGHTS, PretrainRecord, run_key
from ssfer.pretrain.run import pretrain, run_dir_for

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "synthfer_pretrain.yaml"
# a few seconds on one core: 300 faces at 16 px, 8 steps an epoch
TINY = {"data.n_train": 300, "data.n_test": 40, "data.size": 16, "split.n_per_class": 1, "split.val_per_class": 3,
        "byol.projector_hidden": 32, "byol.projector_dim": 16, "byol.predictor_hidden": 32,
        "views.blur_sigma": [0.1, 0.5], "probe.k": 5, "probe.every": 1,
        "train.epochs": 3, "train.batch_size": 32, "train.log_every": 3, "train.progress": False}


def tiny(**more) -> PretrainConfig:
    return PretrainConfig.from_yaml(CONFIG).with_overrides({**TINY, **more})


@pytest.fixture(autouse=True)
def _own_cache_and_threads(tmp_path, monkeypatch):
    """Nothing here touches the user's cache; the thread count a config sets is put back."""
    monkeypatch.setenv("SSFER_CACHE", str(tmp_path / "default-cache"))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / WEIGHTS, weights_only=True)


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("seconds", "cpu_seconds")} for row in history]


# ---------------------------------------------------------------- what it reads

@pytest.mark.slow  # trains several steps or epochs, or grades notebooks
@pytest.mark.parametrize("validation", ["carved from train", "a split of its own"])
def test_no_validation_or_test_face_enters_pretraining(validation, monkeypatch):
    """By index: every face a step draws is a train face outside the split's
    validation part; by file: the test split is never read; by content: no face
    a step can draw is a validation or test face."""
    more = {} if validation == "carved from train" else {"split.val_per_class": 0, "data.val_split": "val"}
    cfg = tiny(**more)
    read = []
    load = pretrain_data.load_split_data
    monkeypatch.setattr(pretrain_data, "load_split_data", lambda c, split: (read.append(split), load(c, split))[1])
    trainer = Pretrainer(cfg)
    drawn = []
    positions = trainer.batch_positions
    monkeypatch.setattr(trainer, "batch_positions",
                        lambda step: (drawn.append(trainer.data.pool[positions(step).numpy()]), positions(step))[1])
    trainer.fit()

    d = trainer.data
    drawn = np.concatenate(drawn)
    assert len(drawn) == trainer.total_steps * cfg.train.batch_size
    assert "test" not in read and cfg.data.test_split not in read
    assert np.isin(drawn, d.pool).all()
    assert not np.isin(drawn, d.split.val).any()
    assert not np.isin(d.pool, d.split.val).any()
    assert len(d.pool) + len(d.split.val) == cfg.data.n_train  # the pool is all the rest of train
    # the step reads pool_x alone, and pool_x holds exactly the train faces at pool
    train = load(cfg.run_config(), "train")
    assert torch.equal(d.pool_x.cpu(), torch.from_numpy(train.images[d.pool]).permute(0, 3, 1, 2))
    # by content: no face in the pool is a validation or a test face
    pool = {bytes(face) for face in train.images[d.pool]}
    test = load(cfg.run_config(), "test")
    assert not pool & {bytes(face) for face in test.images}
    assert not pool & {bytes(face.permute(1, 2, 0).contiguous().numpy()) for face in d.val_x.cpu()}
    if validation == "carved from train":
        assert len(d.val_x) == 3 * d.num_classes and len(d.split.val) == len(d.val_x)


def test_a_labeled_bank_is_the_split_s_labeled_faces():
    trainer = Pretrainer(tiny(**{"probe.bank": "labeled"}))
    d = trainer.data
    assert len(d.bank_x) == len(d.split.labeled) == d.num_classes
    assert 0.0 <= trainer.probe() <= 1.0


# ---------------------------------------------------------------- what it writes

@pytest.mark.slow  # trains several steps or epochs, or grades notebooks
def test_pretraining_writes_a_record_and_weights_fine_tuning_loads(tmp_path):
    cfg = tiny()
    rec = pretrain(cfg, cache_dir=tmp_path)
    rd = rec.run_dir
    assert rd == run_dir_for(cfg, tmp_path) and rd.parent.name == "pretrain" and rd.name == run_key(cfg)
    assert {p.name for p in rd.iterdir()} == {"config.yaml", "metrics.jsonl", "summary.json", "environment.json",
                                              WEIGHTS}
    assert PretrainConfig.from_yaml(rd / "config.yaml").hash() == cfg.hash()
    s = rec.summary
    assert s["epochs"] == 3 and s["steps"] == 3 * s["steps_per_epoch"] and s["resumed"] is False
    assert 0.0 <= s["probe_accuracy"] <= 1.0 and s["seconds"] > 0 and s["cpu_seconds"] > 0
    assert s["weights_sha256"] == file_sha256(rd / WEIGHTS) and s["rebuild"].startswith("ssfer pretrain --config")
    assert s["n_pool"] == 300 - 21 and s["n_val"] == 21
    curve = rec.probe_curve()
    assert [row["epoch"] for row in curve] == [1, 2, 3] and curve[-1]["probe_accuracy"] == s["probe_accuracy"]
    losses = [row for row in rec.history if "loss" in row]
    assert losses and all(np.isfinite(row["loss"]) for row in losses) and losses[-1]["step"] == s["steps"]
    env = json.loads((rd / "environment.json").read_text())
    assert env["code_fingerprint"] and "command" in env

    # the same call again loads the cached record
    again = pretrain(cfg, cache_dir=tmp_path)
    assert again.summary == s and PretrainRecord.load(rd).history == rec.history

    # fine-tuning's loader takes every body tensor, and the attention's, as they were trained
    fine = Config.from_dict({"data": cfg.to_dict()["data"],
                             "model": {**cfg.to_dict()["model"], "pretrained_path": str(rec.weights)}})
    model = model_for(fine, num_classes=7)
    report = model.load_report
    assert report.body_matched == report.body_total > 0
    assert not report.missing and not report.unexpected and not report.shape_mismatch
    weights, state = _weights(rd), model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())
    assert any(k.startswith("attention.") for k in weights)


def test_the_cpu_profile_network_loads_into_the_cpu_fine_tuning_config(tmp_path):
    """configs/ferplus_pretrain_cpu.yaml builds the network of
    configs/ferplus_fraction_10_cpu.yaml: same tensor names and shapes."""
    pre = PretrainConfig.from_yaml(REPO / "configs" / "ferplus_pretrain_cpu.yaml")
    fine = Config.from_yaml(REPO / "configs" / "ferplus_fraction_10_cpu.yaml")
    assert pre.model == fine.model and pre.data.size == fine.data.size == 48 and pre.data.channels == 1
    assert pre.split == fine.split and pre.data.val_split == fine.data.val_split == "val"
    assert (pre.train.batch_size, pre.train.device, pre.train.threads) == (128, "cpu", 1)
    from ssfer.pretrain.byol import BYOL

    torch.manual_seed(0)
    byol = BYOL(model_for(pre.run_config(), 8), 32, 16, 32)
    path = tmp_path / "backbone.pt"
    torch.save(byol.backbone_state(), path)
    model = model_for(fine.with_overrides({"model.pretrained_path": str(path)}), 8)
    assert model.load_report.fraction == 1.0 and not model.load_report.unexpected


def test_the_pretraining_configs_load_and_the_real_one_names_its_placeholder_root():
    synth = PretrainConfig.from_yaml(CONFIG)
    assert synth.data.dataset == "synthfer" and synth.split.val_per_class > 0
    real = PretrainConfig.from_yaml(REPO / "configs" / "ferplus_pretrain_cpu.yaml")
    assert real.data.root.startswith("/path/to/")
    with pytest.raises(DataError, match=re.escape(real.data.root)):
        run_key(real)  # the data fingerprint reads the data set's file lists first
    for cfg in (synth, real):
        assert PretrainConfig.from_dict(cfg.to_dict()).hash() == cfg.hash()  # the YAML round-trips


def test_the_key_covers_config_and_pretraining_code_but_not_the_fine_tuning_trainer():
    modules = codegraph.closure([PRETRAINER])
    assert {"ssfer.pretrain.loop", "ssfer.pretrain.byol", "ssfer.pretrain.views", "ssfer.model.backbone",
            "ssfer.views"} <= set(modules)
    assert not [m for m in modules if m.startswith("ssfer.train")]  # editing the trainer re-keys no pretraining
    cfg = tiny()
    assert run_key(cfg) == run_key(tiny(**{"train.progress": True}))
    assert run_key(cfg) != run_key(tiny(**{"views.crop_scale": [0.5, 1.0]}))


# ---------------------------------------------------------------- bit for bit

@pytest.mark.slow  # trains several steps or epochs, or grades notebooks
def test_the_same_config_twice_gives_the_same_weights(tmp_path):
    a = pretrain(tiny(), cache_dir=tmp_path / "a")
    b = pretrain(tiny(), cache_dir=tmp_path / "b")
    assert _same_weights(_weights(a.run_dir), _weights(b.run_dir))
    assert _without_timing(a.history) == _without_timing(b.history)
    c = pretrain(tiny(**{"train.seed": 1}), cache_dir=tmp_path / "c")
    assert not _same_weights(_weights(a.run_dir), _weights(c.run_dir))


@pytest.mark.slow  # trains several steps or epochs, or grades notebooks
def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    cfg = tiny()
    whole = pretrain(cfg, cache_dir=tmp_path / "whole")
    rd = run_dir_for(cfg, tmp_path / "cut")
    first = Pretrainer(cfg, rd)
    assert first.fit(stop_after=first.steps_per_epoch + 3) is None  # mid-way through the second epoch
    assert torch.load(rd / CHECKPOINT, weights_only=True)["step"] == first.steps_per_epoch
    rec = Pretrainer(cfg, rd).fit()
    assert rec.summary["resumed"] is True and not (rd / CHECKPOINT).exists()
    assert _same_weights(_weights(rd), _weights(whole.run_dir))
    assert _without_timing(rec.history) == _without_timing(whole.history)


@pytest.mark.slow  # trains several steps or epochs, or grades notebooks
def test_a_checkpoint_of_another_config_is_refused_and_restart_discards_it(tmp_path):
    rd = tmp_path / "run"
    other = Pretrainer(tiny(**{"train.seed": 5}), rd)
    other.fit(stop_after=other.steps_per_epoch)
    with pytest.raises(CheckpointError, match=r"belongs to a different config.*ssfer pretrain --restart"):
        Pretrainer(tiny(), rd).fit()
    assert Pretrainer(tiny(), rd).fit(restart=True).summary["resumed"] is False


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from ssfer.pretrain import byol

    cfg = tiny()
    rd = run_dir_for(cfg, tmp_path)
    first = Pretrainer(cfg, rd)
    first.fit(stop_after=first.steps_per_epoch)  # one epoch, its checkpoint written
    monkeypatch.setattr(byol, "byol_loss", lambda p, z: (p * float("nan")).sum())
    with pytest.raises(NonFiniteLoss, match=r"non-finite BYOL loss.*\(step 8\), is kept; lower train\.lr"):
        pretrain(cfg, cache_dir=tmp_path)
    assert not (rd / "summary.json").exists() and not (rd / WEIGHTS).exists()
    assert torch.load(rd / CHECKPOINT, weights_only=True)["step"] == first.steps_per_epoch


@pytest.mark.parametrize("progress", [True, False])
def test_the_progress_bar_shows_the_loss_unless_turned_off(progress, capsys):
    Pretrainer(tiny(**{"train.epochs": 1, "train.progress": progress})).fit()
    err = capsys.readouterr().err
    assert ("byol" in err and "loss=" in err) is progress


def _cli(*args: str, cache: Path) -> list[str]:
    """``ssfer pretrain ...`` in a fresh interpreter, as a user types it."""
    return [sys.executable, "-m", "ssfer", "pretrain", *args, "--cache-dir", str(cache)]


@pytest.mark.slow  # trains several steps or epochs, or grades notebooks
def test_the_command_prints_where_the_weights_are(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(tiny(**{"train.epochs": 1}).to_yaml())
    done = subprocess.run(_cli("--config", str(path), cache=tmp_path / "cache"), capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert Path(out["weights"]).is_file() and out["fine_tune_with"] == f"--set model.pretrained_path={out['weights']}"
    assert "run directory: " in done.stderr


@pytest.mark.slow  # pretrains in two subprocesses and once here
def test_kill_9_mid_run_then_the_same_command_gives_the_uninterrupted_weights(tmp_path):
    """A real SIGKILL of ``ssfer pretrain`` (no chance to clean up) after its first
    epoch's checkpoint, then the same command again."""
    cfg = tiny(**{"data.n_train": 600, "split.val_per_class": 5, "train.epochs": 4, "train.threads": 1})
    path = tmp_path / "p.yaml"
    path.write_text(cfg.to_yaml())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cache = tmp_path / "victim"
    rd = run_dir_for(cfg, cache)
    victim = subprocess.Popen(_cli("--config", str(path), cache=cache), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not (rd / CHECKPOINT).exists():
        assert victim.poll() is None, f"finished before a checkpoint was seen: {victim.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert not (rd / "summary.json").exists() and (rd / CHECKPOINT).exists()

    again = subprocess.Popen(_cli("--config", str(path), cache=cache), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    reference = pretrain(cfg, cache_dir=tmp_path / "reference")  # meanwhile, uninterrupted, here
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    rec = PretrainRecord.load(rd)
    assert rec.summary["resumed"] is True and not (rd / CHECKPOINT).exists()
    assert _same_weights(_weights(rd), _weights(reference.run_dir))
    assert (rd / WEIGHTS).read_bytes() == (reference.run_dir / WEIGHTS).read_bytes()
    assert _without_timing(rec.history) == _without_timing(reference.history)
