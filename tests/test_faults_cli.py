"""The smaller faults of the command line: each is one line and a non-zero exit
where nothing that was asked was done, and nothing is written on the way."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssfer.cli import main as cli_main
from ssfer.data import decode


def one_line(capsys) -> tuple[str, str]:
    """(the last line of stderr, stdout); stderr holds no traceback."""
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert err and not any("Traceback" in line for line in err), err
    return err[-1], cap.out


def grey_faces(root: Path, split: str, per_class: dict[str, int], size: int = 16) -> None:
    rng = np.random.default_rng(0)
    for cls, n in per_class.items():
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(root / split / cls / f"{i}.png")


# ---------------------------------------------------------------- ssfer bench

@pytest.mark.parametrize("flag, value, expect", [
    ("--rounds", "0", "--rounds: must be at least 1, got 0"),
    ("--steps-per-round", "-1", "--steps-per-round: must be at least 1, got -1"),
    ("--threads", "-2", "--threads: must be at least 0, got -2"),
    ("--views-seconds", "0", "--views-seconds: must be positive, got 0.0"),
    ("--model", "resnet10", "model.name: timm has no model 'resnet10'; nearest: resnet10t"),
])
def test_bench_refuses_counts_that_measure_nothing(flag, value, expect, capsys):
    """Before: ``--rounds 0`` a StatisticsError traceback, ``--steps-per-round -1``
    negative step times with exit 0."""
    assert cli_main(["bench", "--device", "cpu", "--no-flops", flag, value]) == 2
    line, out = one_line(capsys)
    assert line.startswith(f"ssfer: config error: {expect}") and out == ""


# ---------------------------------------------------------------- the config

def test_a_config_file_giving_a_key_twice_is_refused_naming_the_key_and_line(tmp_path, capsys):
    """Before: the run trained with the last value, silently."""
    config = tmp_path / "twice.yaml"
    config.write_text("algo:\n  name: supervised\ntrain:\n  steps: 30\n  lr: 0.01\n  steps: 40\n")
    assert cli_main(["train", "--cache-dir", str(tmp_path / "cache"), "--config", str(config)]) == 2
    line, _ = one_line(capsys)
    assert line == f"ssfer: config error: {config}:6: key 'steps' is given twice (first on line 4); keep one"
    assert not (tmp_path / "cache").exists()


def test_a_config_file_that_is_not_text_is_a_config_error(tmp_path, capsys):
    config = tmp_path / "weights.yaml"
    config.write_bytes(b"\x80\x02}q\x00(X\x04\x00\x00\x00head")
    assert cli_main(["train", "--cache-dir", str(tmp_path / "cache"), "--config", str(config)]) == 2
    line, _ = one_line(capsys)
    assert line.startswith(f"ssfer: config error: {config}: not a text file (invalid start byte at byte 0)")


def test_a_model_name_timm_does_not_know_is_refused_with_the_nearest_before_any_data_loads(tmp_path, monkeypatch,
                                                                                             capsys):
    """Before: a timm traceback, after the data set had been decoded."""
    grey_faces(tmp_path / "faces", "train", {"happy": 4, "sad": 4})
    grey_faces(tmp_path / "faces", "test", {"happy": 2, "sad": 2})
    monkeypatch.setenv("SSFER_CACHE", str(tmp_path / "cache"))
    argv = ["train", "--cache-dir", str(tmp_path / "cache"), "--set", "data.dataset=folder",
            "--set", f"data.root={tmp_path / 'faces'}", "--set", "model.name=resnet10"]
    assert cli_main(argv) == 2
    line, _ = one_line(capsys)
    assert line == "ssfer: config error: model.name: timm has no model 'resnet10'; nearest: resnet10t, resnet101, " \
                   "resnet101s, resnet101d"
    assert not (tmp_path / "cache").exists()  # no run folder, and nothing decoded


# ---------------------------------------------------------------- ssfer data check

def test_data_check_names_an_unidentifiable_image_by_its_file(tmp_path, capsys):
    """Before: ``cannot identify image file <_io.BytesIO object at 0x...>``."""
    grey_faces(tmp_path, "train", {"happy": 2, "sad": 2})
    bad = tmp_path / "train" / "sad" / "1.png"
    bad.write_bytes(b"not an image at all")
    assert cli_main(["data", "check", "folder", str(tmp_path)]) == 1
    report = capsys.readouterr().out
    assert f"unreadable-image: train/sad/1.png: UnidentifiedImageError: cannot identify image file '{bad}'" in report
    assert "BytesIO" not in report


def _killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_data_check_process_that_dies_is_one_line(tmp_path, monkeypatch, capsys):
    """A worker killed outright: before, a ``BrokenProcessPool`` traceback."""
    grey_faces(tmp_path, "train", {"happy": 6, "sad": 6})
    monkeypatch.setattr(decode, "PARALLEL_MIN", 1)
    monkeypatch.setattr(decode, "CHUNK", 4)
    monkeypatch.setattr(decode, "_inspect_range", _killed)  # the forked workers see it too
    assert cli_main(["data", "check", "folder", str(tmp_path), "--workers", "2"]) == 2
    line, out = one_line(capsys)
    assert line.startswith("ssfer: data error: folder/train: a process reading its images died abruptly (")
    assert line.endswith("); the same command checks them again") and out == ""


def test_data_check_of_a_data_set_it_cannot_check_is_one_line(capsys):
    assert cli_main(["data", "check", "synthfer", "/anywhere"]) == 2
    line, out = one_line(capsys)
    assert line == "ssfer: data error: synthfer is generated from a seed, not read from disk: nothing to check"
    assert out == ""


# ---------------------------------------------------------------- Ctrl-C outside training

def test_ctrl_c_while_decoding_is_one_line_exit_130_and_leaves_no_cache_entry(tmp_path, monkeypatch, capsys,
                                                                              ctrl_c_raises):
    """A real SIGINT to this process while ``ssfer data``'s decode cache is being
    written (here, by ``ssfer eval``): before, a KeyboardInterrupt traceback."""
    from ssfer.config import Config
    from ssfer.train import run

    rec = run(Config.default().with_overrides({
        "data.n_train": 300, "data.n_test": 40, "data.size": 16, "model.name": "test_resnet",
        "split.n_per_class": 2, "algo.name": "supervised", "train.steps": 2, "train.batch_size": 4,
        "train.log_every": 1, "train.eval_every": 0, "train.progress": False, "train.device": "cpu"}),
        cache_dir=tmp_path / "runs")
    grey_faces(tmp_path / "faces", "test", {"happy": 3, "sad": 3})
    real = decode._decode_range

    def decode_range(out, start, sources, *args):
        real(out, start, sources[:1], *args)  # one image is in the file when the signal lands
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)
        raise AssertionError("no SIGINT arrived")

    monkeypatch.setattr(decode, "_decode_range", decode_range)
    monkeypatch.setenv("SSFER_CACHE", str(tmp_path / "cache"))
    assert cli_main(["eval", str(rec.run_dir), "--dataset", "folder", "--root", str(tmp_path / "faces")]) == 130
    line, out = one_line(capsys)
    assert line == "ssfer: interrupted: stopped by Ctrl-C; every file is written whole or not at all, so nothing " \
                   "half-written was left" and out == ""
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
