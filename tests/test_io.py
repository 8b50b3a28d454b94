"""ssfer.io: one cache root, files written whole or not at all."""
import errno
import os
from pathlib import Path

import numpy as np
import pytest

from ssfer.errors import WriteError
from ssfer.io import atomic_path, atomic_write, atomic_write_json, atomic_write_text, cache_root


def test_cache_root_expands_the_home_folder_and_defaults_to_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SSFER_CACHE", "~/runs")
    assert cache_root() == tmp_path / "runs"
    monkeypatch.setenv("SSFER_CACHE", "")
    assert cache_root() == tmp_path / ".cache" / "ssfer"
    monkeypatch.delenv("SSFER_CACHE")
    assert cache_root() == tmp_path / ".cache" / "ssfer"


def test_the_run_cache_and_the_data_cache_share_the_root(monkeypatch, tmp_path):
    from ssfer.config import Config
    from ssfer.train import run_dir_for

    monkeypatch.setenv("SSFER_CACHE", "~/c")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert run_dir_for(Config.default()).parent == tmp_path / "c" / "runs"


def test_writes_make_folders_and_replace_whole_files(tmp_path):
    p = tmp_path / "a" / "b.json"
    atomic_write_json(p, {"x": 1})
    atomic_write_text(p, "new\n")
    atomic_write(tmp_path / "arr.npy", lambda f: np.save(f, np.arange(3)))
    assert p.read_text() == "new\n" and np.load(tmp_path / "arr.npy").tolist() == [0, 1, 2]
    assert sorted(q.name for q in tmp_path.rglob("*")) == ["a", "arr.npy", "b.json"]


def test_a_failed_write_keeps_the_old_file_and_names_the_new_one(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")

    def full(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(WriteError, match=rf"{p}: cannot write \(No space left on device\)"):
        atomic_write(p, full)
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_a_block_that_raises_leaves_no_temporary_path(tmp_path):
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "x.npy") as tmp:
            Path(tmp).write_bytes(b"partial")
            raise KeyError("not an OSError: passed on as it is")
    assert os.listdir(tmp_path) == []
