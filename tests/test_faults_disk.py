"""A full disk, for real: a small tmpfs mounted by the test (CI runs as root),
filled by what ``ssfer`` writes or by the test itself. Each test checks the
one line the command ends with, its exit code, that nothing already written
was lost, and that no temporary file is left: the disk is as free as before.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssfer.cli import main as cli_main
from ssfer.config import Config
from ssfer.data import decode, load_dataset
from ssfer.errors import DiskFull
from ssfer.record import RunRecord
from ssfer.train import run, run_dir_for
from ssfer.train.loop import CHECKPOINT


@contextlib.contextmanager
def small_disk(path: Path, size: str, read_only: bool = False):
    """A tmpfs of ``size`` (mount's spelling: 64k, 8m) at ``path``, unmounted after;
    ``read_only``: mounted read-only, which even root cannot write."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (CI runs as root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)]).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)  # a map still open: detach it


def free_blocks(path: Path) -> int:
    return os.statvfs(path).f_bfree


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def fill(path: Path) -> Path:
    """Fill the file system of ``path`` to the last block with one file; returns it."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)
    return filler


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def last_line(capsys) -> list[str]:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and not any("Traceback" in line for line in err), err
    return err


def grey_faces(root: Path, split: str, per_class: dict[str, int], size: int = 32, seed: int = 0) -> None:
    """``root/<split>/<class>/<i>.png``: grey noise faces of a folder-per-class data set."""
    rng = np.random.default_rng(seed)
    for cls, n in per_class.items():
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(root / split / cls / f"{i}.png")


@pytest.fixture
def finished_run(tiny_overrides, tmp_path):
    return run(Config.default().with_overrides({**tiny_overrides, "algo.name": "supervised"}),
               cache_dir=tmp_path / "runs")


# ---------------------------------------------------------------- the decode cache

@pytest.mark.parametrize("parallel", [False, True], ids=["one process", "worker processes"])
def test_full_disk_while_decoding_names_the_cache_and_the_space_and_leaves_the_disk_as_free(
        parallel, finished_run, tmp_path, monkeypatch, capsys):
    """Before: SIGBUS (exit 135, no message) or a BrokenProcessPool traceback, and a
    hidden ``.images.npy.*.tmp`` that kept the disk full."""
    faces = tmp_path / "faces"
    grey_faces(faces, "train", {"happy": 70, "sad": 60})  # 130 images of 32x32x1: 130 KiB decoded
    if parallel:
        monkeypatch.setattr(decode, "PARALLEL_MIN", 1)
        monkeypatch.setattr(decode, "CHUNK", 16)
    run_files = digests(finished_run.run_dir)
    argv = ["eval", str(finished_run.run_dir), "--dataset", "folder", "--root", str(faces), "--split", "train"]
    with small_disk(tmp_path / "disk", "64k") as disk:
        monkeypatch.setenv("SSFER_CACHE", str(disk))
        before = free_blocks(disk)
        assert cli_main(argv) == 1
        err = last_line(capsys)
        assert len(err) == 1, err
        assert err[0].startswith(f"ssfer: write error: decode cache {disk}: no room for the decoded images of "
                                 "folder/train (130 images): 130.0 KiB needed, 64.0 KiB free (No space left "
                                 "on device); free some space there or point SSFER_CACHE at a disk with room"), err
        assert files_under(disk) == [] and free_blocks(disk) == before
    assert digests(finished_run.run_dir) == run_files  # the run evaluated is untouched
    monkeypatch.setenv("SSFER_CACHE", str(tmp_path / "roomy"))  # the same command, with room
    assert cli_main(argv) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 130


def test_a_decoding_process_that_dies_is_one_line_and_caches_nothing(finished_run, tmp_path, monkeypatch, capsys):
    """A worker killed outright (as the out-of-memory killer does) breaks the pool:
    before, a ``BrokenProcessPool`` traceback."""
    faces = tmp_path / "faces"
    grey_faces(faces, "train", {"happy": 20, "sad": 20})
    monkeypatch.setattr(decode, "PARALLEL_MIN", 1)
    monkeypatch.setattr(decode, "CHUNK", 8)
    monkeypatch.setattr(decode, "default_workers", lambda: 2)
    monkeypatch.setattr(decode, "_decode_chunk_to_file", _killed)  # the forked workers see it too
    monkeypatch.setenv("SSFER_CACHE", str(tmp_path / "cache"))
    argv = ["eval", str(finished_run.run_dir), "--dataset", "folder", "--root", str(faces), "--split", "train"]
    assert cli_main(argv) == 1
    err = last_line(capsys)
    assert err[-1].startswith("ssfer: data error: folder/train: a process reading its images died abruptly "), err
    assert err[-1].endswith("nothing was cached, and the same command decodes them again"), err
    assert files_under(tmp_path / "cache") == []


def _killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def test_full_disk_in_the_library_raises_disk_full_and_an_earlier_entry_stays(tmp_path):
    faces = tmp_path / "faces"
    grey_faces(faces, "train", {"happy": 20, "sad": 20})
    grey_faces(faces, "test", {"happy": 3, "sad": 3})
    with small_disk(tmp_path / "disk", "64k") as disk:
        test = load_dataset("folder", faces, "test", cache_dir=disk, workers=1)  # 6 KiB: fits
        kept = files_under(disk)
        fill(disk)
        before = free_blocks(disk)
        with pytest.raises(DiskFull, match=rf"decode cache {disk}: no room .* folder/train \(40 images\)"):
            load_dataset("folder", faces, "train", cache_dir=disk, workers=1)
        assert free_blocks(disk) == before and files_under(disk) == sorted([*kept, "filler"])
        again = load_dataset("folder", faces, "test", cache_dir=disk)  # the earlier entry still reads
        np.testing.assert_array_equal(np.asarray(again.images), np.asarray(test.images))
        del test, again  # close the maps before the disk goes


# ---------------------------------------------------------------- the run folder

def _argv(cache: Path, overrides: dict) -> list[str]:
    argv = ["train", "--cache-dir", str(cache)]
    for k, v in overrides.items():
        argv += ["--set", f"{k}={json.dumps(v)}"]
    return argv


def test_a_checkpoint_larger_than_the_disk_is_a_write_error_naming_it(tiny_overrides, tmp_path, capsys):
    """The issue's repro: a 2 MiB tmpfs as --cache-dir, where the first checkpoint
    (3 MB) does not fit. Before: ``RuntimeError: [enforce fail at inline_container.cc...]``."""
    ov = {**tiny_overrides, "train.steps": 4, "train.ckpt_every": 2, "algo.name": "fixmatch"}
    with small_disk(tmp_path / "disk", "2m") as disk:
        rd = run_dir_for(Config.default().with_overrides(ov), disk)
        assert cli_main(_argv(disk, ov)) == 1
        err = last_line(capsys)
        assert err[-1] == (f"ssfer: write error: {rd / CHECKPOINT}: cannot write (No space left on device); "
                           "nothing half-written was left behind"), err
        left = files_under(rd)
        assert not [n for n in left if n.endswith(".tmp")] and CHECKPOINT not in left, left
        assert "summary.json" not in left and "config.yaml" in left


@pytest.mark.slow  # trains several steps or epochs, or grades notebooks
@pytest.mark.parametrize("victim", [CHECKPOINT, "model.pt"])
def test_full_disk_at_a_save_keeps_the_last_checkpoint_and_the_rerun_ends_as_an_uninterrupted_run(
        victim, tiny_overrides, tmp_path, monkeypatch, capsys):
    """The disk fills (the test fills it) just before the second checkpoint, or
    before the teacher's weights, is written: the write error names the file,
    the checkpoint before it is kept, and once there is room the same command
    resumes and ends with the record of a run never stopped."""
    import ssfer.train.loop as loop

    ov = {**tiny_overrides, "algo.name": "fixmatch", "train.ckpt_every": 2, "train.threads": 1}
    cfg = Config.default().with_overrides(ov)
    real_save, saves, filled = loop._save_atomic, [], []

    disk = tmp_path / "disk"

    def save(obj, path):
        saves.append(path.name)
        if path.name == victim and saves.count(victim) == (2 if victim == CHECKPOINT else 1) and not filled:
            filled.append(fill(disk))
        real_save(obj, path)

    monkeypatch.setattr(loop, "_save_atomic", save)
    threads = torch.get_num_threads()
    try:
        with small_disk(disk, "12m"):  # room for two checkpoints (4.4 MiB each) at once
            rd = run_dir_for(cfg, disk)
            assert cli_main(_argv(disk, ov)) == 1
            err = last_line(capsys)
            assert err[-1] == (f"ssfer: write error: {rd / victim}: cannot write (No space left on device); "
                               "nothing half-written was left behind"), err
            left = files_under(rd)
            assert not [n for n in left if n.endswith(".tmp")], left
            assert "summary.json" not in left and "model.pt" not in left and "metrics.jsonl" not in left
            kept = torch.load(rd / CHECKPOINT, weights_only=True)  # whole, and the one before the fault
            assert kept["step"] == (2 if victim == CHECKPOINT else 4)
            filled[0].unlink()  # room again: the same command
            assert cli_main(_argv(disk, ov)) == 0, capsys.readouterr().err
            capsys.readouterr()
            resumed = RunRecord.load(rd)
            reference = run(cfg, cache_dir=tmp_path / "reference")
            assert resumed.summary["resumed"] is True and not (rd / CHECKPOINT).exists()
            assert resumed.history_without_timing() == reference.history_without_timing()
            for k in ("accuracy", "macro_f1", "confusion"):
                assert resumed.summary[k] == reference.summary[k]
    finally:
        torch.set_num_threads(threads)


def test_a_read_only_cache_is_a_write_error_naming_the_file_before_anything_is_trained_or_decoded(
        finished_run, tiny_overrides, tmp_path, monkeypatch, capsys):
    """A read-only file system (as root, the only folder root cannot write):
    ``ssfer train`` with it as --cache-dir, ``ssfer eval`` with it as SSFER_CACHE."""
    faces = tmp_path / "faces"
    grey_faces(faces, "test", {"happy": 3, "sad": 3})
    cfg = Config.default().with_overrides(tiny_overrides)
    with small_disk(tmp_path / "ro", "1m", read_only=True) as ro:
        rd = run_dir_for(cfg, ro)
        assert cli_main(_argv(ro, tiny_overrides)) == 1
        assert last_line(capsys)[-1] == (f"ssfer: write error: {rd}.lock: cannot write (Read-only file system); "
                                         "nothing half-written was left behind")
        monkeypatch.setenv("SSFER_CACHE", str(ro))
        assert cli_main(["eval", str(finished_run.run_dir), "--dataset", "folder", "--root", str(faces)]) == 1
        line = last_line(capsys)[-1]
        assert line.startswith(f"ssfer: write error: {ro}/folder/test-32x32-c1-") and \
               line.endswith("/images.npy: cannot write (Read-only file system); nothing half-written was left behind")
        assert files_under(ro) == []
