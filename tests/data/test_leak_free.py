"""The leak-free test view: test images whose byte-identical copy is in train are
found by the same digest the data check groups duplicates with, and a run
reports its test metrics both with and without them."""
import shutil

import numpy as np
import torch

import fixtures_data as fx
from ssfer.config import Config
from ssfer.data import load_dataset
from ssfer.data.check import check_dataset
from ssfer.train.data import leaked, prepare
from ssfer.train.loop import Trainer


def _fer_with_copies(root):
    fx.build_class_folders(root, fx.FER_FOLDERS, size=(48, 48), channels=1, ext=".png")
    shutil.copy(root / "train" / "happy" / "img_0.png", root / "test" / "happy" / "img_9.png")
    shutil.copy(root / "train" / "fear" / "img_0.png", root / "test" / "surprise" / "img_9.png")  # and relabeled
    shutil.copy(root / "test" / "sad" / "img_0.png", root / "test" / "sad" / "img_8.png")  # test-only copy: no leak
    return root


def test_leaked_marks_exactly_the_test_copies_of_train_images(tmp_path):
    root = _fer_with_copies(tmp_path / "fer")
    train = load_dataset("fer2013", root, "train", cache_dir=tmp_path / "cache")
    test = load_dataset("fer2013", root, "test", cache_dir=tmp_path / "cache")
    mask = leaked(test, train)
    assert sorted(p for p, m in zip(test.paths, mask) if m) == ["test/happy/img_9.png", "test/surprise/img_9.png"]
    # the data check counts the same two groups as crossing the split
    assert check_dataset("fer2013", root)["summary"]["cross_split_duplicate_groups"] == 2
    # digests survive the cache: a second load reads them back
    again = load_dataset("fer2013", root, "test", cache_dir=tmp_path / "cache")
    assert again.digests == test.digests and isinstance(again.images, np.memmap)


def test_a_run_reports_the_published_and_the_leak_free_test_view(tmp_path, monkeypatch):
    monkeypatch.setenv("SSFER_CACHE", str(tmp_path / "cache"))
    root = _fer_with_copies(tmp_path / "fer")
    cfg = Config.default().with_overrides({
        "data.dataset": "fer2013", "data.root": str(root), "data.size": 16, "split.protocol": "all",
        "algo.name": "supervised", "model.name": "test_resnet", "train.steps": 2, "train.batch_size": 4,
        "train.eval_every": 0, "train.log_every": 1, "train.progress": False, "train.device": "cpu"})
    data = prepare(cfg, torch.device("cpu"))
    assert data.test_leaked.tolist().count(True) == 2 and len(data.test_y) == 10
    s = Trainer(cfg, data=data).fit().summary
    lf = s["test_leak_free"]
    assert (lf["n_removed"], lf["n"]) == (2, 8)
    assert np.asarray(lf["confusion"]).sum() == 8 and np.asarray(s["confusion"]).sum() == 10


def test_synthfer_has_no_digests_and_no_leak_free_view(tiny_overrides):
    cfg = Config.default().with_overrides({**tiny_overrides, "algo.name": "supervised", "train.steps": 2})
    rec = Trainer(cfg).fit()
    assert "test_leak_free" not in rec.summary
