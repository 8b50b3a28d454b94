"""Decode once: the disk cache is hit, invalidated, and written atomically."""
import json

import numpy as np
import pytest

import fixtures_data as fx
from ssfer.data import cache, decode, load_dataset


def _refuse(*a, **k):
    raise AssertionError("decoded again although the cache should have been hit")


def test_second_load_reads_the_cache_without_decoding(tmp_path, monkeypatch):
    fx.build_rafdb(tmp_path / "raf")
    first = load_dataset("rafdb", tmp_path / "raf", "train", size=32, cache_dir=tmp_path / "c")
    monkeypatch.setattr(decode, "decode_manifest", _refuse)
    again = load_dataset("rafdb", tmp_path / "raf", "train", size=32, cache_dir=tmp_path / "c")
    assert isinstance(again.images, np.memmap) and again.images.mode == "r"
    np.testing.assert_array_equal(np.asarray(again.images), np.asarray(first.images))
    assert again.labels.tolist() == first.labels.tolist() and again.paths == first.paths
    # another size is another entry, so it must decode
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("rafdb", tmp_path / "raf", "train", size=16, cache_dir=tmp_path / "c")


def test_cache_entry_layout(tmp_path):
    fx.build_ferplus(tmp_path / "fp")
    d = load_dataset("ferplus", tmp_path / "fp", "train", cache_dir=tmp_path / "c")
    [entry] = (tmp_path / "c" / "ferplus").iterdir()
    assert entry.name.startswith("train-48x48-c1-")
    assert sorted(p.name for p in entry.iterdir()) == ["images.npy", "labels.npy", "meta.json", "soft_labels.npy"]
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["shape"] == [3, 48, 48, 1] and meta["dropped"]["no majority"] == 3
    np.testing.assert_array_equal(np.load(entry / "soft_labels.npy"), d.soft_labels)


def test_cache_is_invalidated_when_an_image_changes(tmp_path, monkeypatch):
    fx.build_rafdb(tmp_path)
    load_dataset("rafdb", tmp_path, "test", size=8, cache_dir=tmp_path / "c")
    img = tmp_path / "Image" / "aligned" / "test_00001_aligned.jpg"
    fx.write_image(img, np.zeros((100, 100, 3), np.uint8))
    fx.bump_mtime(img)
    d = load_dataset("rafdb", tmp_path, "test", size=8, cache_dir=tmp_path / "c")
    assert d.paths[0] == "Image/aligned/test_00008_aligned.jpg"  # label file lists test in reverse
    assert d.images[d.paths.index("Image/aligned/test_00001_aligned.jpg")].max() == 0
    assert len(list((tmp_path / "c" / "rafdb").iterdir())) == 2


def test_cache_is_invalidated_by_mtime_alone(tmp_path, monkeypatch):
    fx.build_class_folders(tmp_path, {"train": {"happy": 2, "sad": 1}}, size=(12, 12))
    load_dataset("folder", tmp_path, "train", cache_dir=tmp_path / "c")
    fx.bump_mtime(next((tmp_path / "train" / "sad").iterdir()))
    monkeypatch.setattr(decode, "decode_manifest", _refuse)
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("folder", tmp_path, "train", cache_dir=tmp_path / "c")


def test_cache_is_invalidated_when_labels_change(tmp_path, monkeypatch):
    fx.build_rafdb(tmp_path)
    load_dataset("rafdb", tmp_path, "test", cache_dir=tmp_path / "c")
    lf = tmp_path / "EmoLabel" / "list_patition_label.txt"
    lf.write_text(lf.read_text().replace("test_00001.jpg 1", "test_00001.jpg 2"))
    d = load_dataset("rafdb", tmp_path, "test", cache_dir=tmp_path / "c")
    assert d.class_counts().tolist() == [0, 2, 1, 2, 1, 1, 1]


def test_damaged_entry_is_rebuilt(tmp_path):
    fx.build_rafdb(tmp_path)
    load_dataset("rafdb", tmp_path, "test", size=8, cache_dir=tmp_path / "c")
    [entry] = (tmp_path / "c" / "rafdb").iterdir()
    (entry / "images.npy").write_bytes(b"garbage")
    d = load_dataset("rafdb", tmp_path, "test", size=8, cache_dir=tmp_path / "c")
    assert d.images.shape == (8, 8, 8, 3)


def test_default_cache_dir_follows_env(tmp_path, monkeypatch):
    from ssfer.io import cache_root

    monkeypatch.setenv("SSFER_CACHE", str(tmp_path / "envcache"))
    assert cache_root() == tmp_path / "envcache"
    fx.build_rafdb(tmp_path / "raf")
    load_dataset("rafdb", tmp_path / "raf", "test", size=8)
    assert len(list((tmp_path / "envcache" / "rafdb").iterdir())) == 1
    assert cache.clear_cache(name="rafdb") == 1
    monkeypatch.delenv("SSFER_CACHE")
    assert str(cache_root()).endswith(".cache/ssfer")


def test_parallel_decoding_matches_in_process(tmp_path, monkeypatch):
    fx.build_class_folders(tmp_path, {"train": {"happy": 9, "sad": 8}}, size=(20, 20))
    serial = load_dataset("folder", tmp_path, "train", size=10, cache_dir=tmp_path / "a", workers=1)
    monkeypatch.setattr(decode, "PARALLEL_MIN", 1)
    monkeypatch.setattr(decode, "CHUNK", 5)  # 4 chunks over 2 processes
    parallel = load_dataset("folder", tmp_path, "train", size=10, cache_dir=tmp_path / "b", workers=2)
    np.testing.assert_array_equal(np.asarray(parallel.images), np.asarray(serial.images))


def test_parallel_decoding_names_bad_file(tmp_path, monkeypatch):
    fx.build_class_folders(tmp_path, {"train": {"happy": 6}}, size=(20, 20))
    fx.corrupt_truncate(tmp_path / "train" / "happy" / "img_4.jpg")
    monkeypatch.setattr(decode, "PARALLEL_MIN", 1)
    monkeypatch.setattr(decode, "CHUNK", 2)
    with pytest.raises(Exception, match=r"train/happy/img_4.jpg: OSError"):
        load_dataset("folder", tmp_path, "train", cache_dir=tmp_path / "c", workers=2)
