"""Each official layout, read from tiny generated copies."""
import numpy as np
import pytest

import fixtures_data as fx
from ssfer.classes import RAFDB_ORDER
from ssfer.data import DATASETS, DataError, FERData, load_dataset, to_canonical


@pytest.mark.parametrize("label_file", ["EmoLabel/list_patition_label.txt", "EmoLabel/list_partition_label.txt"])
def test_rafdb_both_label_file_names(tmp_path, label_file):
    expected = fx.build_rafdb(tmp_path / "raf", label_file)
    for split in ("train", "test"):
        d = load_dataset("rafdb", tmp_path / "raf", split, cache_dir=tmp_path / "cache")
        assert d.class_names == RAFDB_ORDER
        assert d.images.shape == (len(expected[split]), 100, 100, 3) and d.images.dtype == np.uint8
        # label file order is reversed on disk; samples come in label-file order
        assert sorted(d.labels.tolist()) == sorted(expected[split])
        assert d.class_counts().tolist() == (fx.RAF_TRAIN if split == "train" else fx.RAF_TEST)
        assert all(p.startswith(f"Image/aligned/{split}_") and p.endswith("_aligned.jpg") for p in d.paths)


def test_rafdb_resize_and_grey(tmp_path):
    fx.build_rafdb(tmp_path)
    d = load_dataset("rafdb", tmp_path, "test", size=(24, 32), channels=1, cache_dir=False)
    assert d.images.shape == (8, 24, 32, 1)


def test_fer2013_csv(tmp_path):
    rows = fx.build_fer2013_csv(tmp_path)
    names = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
    for split, usage in (("train", "Training"), ("val", "PublicTest"), ("test", "PrivateTest")):
        d = load_dataset("fer2013", tmp_path, split, cache_dir=tmp_path / "c")
        mine = [(code, px) for u, code, px in rows if u == usage]
        assert d.class_names == names
        assert d.labels.tolist() == [c for c, _ in mine]
        # csv pixels are exact: no codec in between
        np.testing.assert_array_equal(d.images[..., 0], np.stack([px for _, px in mine]))
    assert load_dataset("fer2013", tmp_path, "PublicTest", cache_dir=False).split == "val"


def test_fer2013_kaggle_folders_by_word_and_by_code(tmp_path):
    fx.build_class_folders(tmp_path / "words", fx.FER_FOLDERS, size=(48, 48), channels=1)
    codes = {s: {str(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"].index(k)): v
                 for k, v in f.items()} for s, f in fx.FER_FOLDERS.items()}
    fx.build_class_folders(tmp_path / "codes", codes, size=(48, 48), channels=1)
    for sub in ("words", "codes"):
        d = load_dataset("fer2013", tmp_path / sub, "train", cache_dir=False)
        # FER2013 code order, not folder sort order: anger, disgust, fear, happiness, sadness, surprise, neutral
        assert d.class_counts().tolist() == [2, 1, 1, 3, 2, 1, 1]
        assert d.images.shape == (11, 48, 48, 1)


def test_affectnet_csv_seven_and_eight_classes_with_face_crop(tmp_path):
    fx.build_affectnet_csv(tmp_path, train_header=True, val_header=False)
    d7 = load_dataset("affectnet", tmp_path, "train", size=8, cache_dir=False)
    assert d7.class_names == ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger")
    assert d7.labels.tolist() == [0, 1, 2, 3, 4, 5, 6, 1, 1]
    assert d7.dropped == {"contempt (7-class)": 1, "none (code 8)": 1, "uncertain (code 9)": 1,
                          "no-face (code 10)": 1}
    # the crop holds only the box, filled with 200 + code: the background (10) is gone
    assert d7.images.shape == (9, 8, 8, 3)
    np.testing.assert_array_equal(d7.images[:, :, :, 0].reshape(9, -1).min(1), 200 + d7.labels)
    np.testing.assert_array_equal(d7.images[:, :, :, 0].reshape(9, -1).max(1), 200 + d7.labels)
    d8 = load_dataset("affectnet", tmp_path, "test", num_classes=8, size=8, cache_dir=False)
    assert d8.class_names[-1] == "contempt" and d8.labels.tolist() == list(range(8)) and d8.dropped == {}
    full = load_dataset("affectnet", tmp_path, "validation", crop=False, cache_dir=False, size=(40, 60))
    assert full.images[0, 0, 0, 0] == 10  # uncropped: background corner


def test_affectnet_validation_csv_with_header_and_train_without(tmp_path):
    fx.build_affectnet_csv(tmp_path, train_header=False, val_header=True)
    assert len(load_dataset("affectnet", tmp_path, "train", size=8, cache_dir=False)) == 9
    assert len(load_dataset("affectnet", tmp_path, "test", size=8, cache_dir=False)) == 7


def test_affectnet_val_split_name_is_refused_with_advice(tmp_path):
    fx.build_affectnet_csv(tmp_path)
    with pytest.raises(DataError, match="carve a validation split"):
        load_dataset("affectnet", tmp_path, "val", size=8, cache_dir=False)


@pytest.mark.parametrize("naming", ["code", "word"])
def test_affectnet_folders(tmp_path, naming):
    words = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt", "None",
             "Uncertain", "NoFace"]
    counts = [2, 3, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    folders = {(str(i) if naming == "code" else w): k for i, (w, k) in enumerate(zip(words, counts))}
    fx.build_class_folders(tmp_path, {"train": folders, "val": {k: 1 for k in folders}}, size=(16, 16))
    d = load_dataset("affectnet", tmp_path, "train", cache_dir=False)
    assert d.class_counts().tolist() == counts[:7]
    assert sum(d.dropped.values()) == 4 and len(d.dropped) == 4
    d8 = load_dataset("affectnet", tmp_path, "test", num_classes=8, cache_dir=False)  # "val" folder
    assert d8.class_counts().tolist() == [1] * 8


def test_ferplus_fer2013new_majority_and_soft_labels(tmp_path):
    fx.build_ferplus(tmp_path)
    d = load_dataset("ferplus", tmp_path, "train", cache_dir=tmp_path / "c")
    assert d.class_names == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    assert [p.rsplit("/", 1)[1] for p in d.paths] == ["fer0000001.png", "fer0000002.png", "fer0000004.png"]
    assert d.labels.tolist() == [0, 1, 7]
    assert d.dropped == {"no majority": 3, "unknown or NF": 1, "no image name (fer2013new.csv)": 1}
    np.testing.assert_allclose(d.soft_labels[0], [0.75, 0, 0.125, 0.125, 0, 0, 0, 0])
    np.testing.assert_allclose(d.soft_labels[2], [0, 0, 0, 0, 0, 0, 0, 1])
    assert load_dataset("ferplus", tmp_path, "valid", cache_dir=False).labels.tolist() == [2, 6]
    assert load_dataset("ferplus", tmp_path, "test", cache_dir=False).labels.tolist() == [3, 5]


def test_ferplus_label_csv_source_differs_where_its_votes_differ(tmp_path):
    fx.build_ferplus(tmp_path, label_csv_changes={"fer0000006.png": [5, 0, 2, 0, 0, 0, 2, 0, 0, 0]})
    new = load_dataset("ferplus", tmp_path, "train", cache_dir=False)
    per_folder = load_dataset("ferplus", tmp_path, "train", labels="label.csv", cache_dir=False)
    assert len(new) == 3 and len(per_folder) == 4  # 5 of 9 is a majority
    assert per_folder.labels.tolist() == [0, 1, 7, 0]
    assert per_folder.dropped == {"no majority": 2, "unknown or NF": 1}


def test_folder_with_explicit_class_map(tmp_path):
    fx.build_class_folders(tmp_path, {"train": {"a": 2, "b": 1, "skip": 2}, "test": {"a": 1, "b": 1}})
    cmap = {"b": "happy", "a": "anger", "skip": None}
    d = load_dataset("folder", tmp_path, "train", class_map=cmap, cache_dir=False)
    assert d.class_names == ("happiness", "anger")  # class map order, not folder sort order
    assert d.labels.tolist() == [1, 1, 0]
    assert d.dropped == {"excluded by class_map: skip": 2}
    with pytest.raises(DataError, match="'a' is not a known class"):
        load_dataset("folder", tmp_path, "train", cache_dir=False)  # 'a' is no class word


def test_folder_by_words_keeps_one_order_across_splits(tmp_path):
    # test lacks 'sad': its labels must still index the same class list as train
    fx.build_class_folders(tmp_path, {"train": {"sad": 1, "Happy": 2, "angry": 1}, "test": {"Happy": 1, "angry": 1}})
    tr = load_dataset("folder", tmp_path, "train", cache_dir=False)
    te = load_dataset("folder", tmp_path, "test", cache_dir=False)
    assert tr.class_names == te.class_names == ("happiness", "sadness", "anger")
    assert te.labels.tolist() == [0, 2] and tr.class_counts().tolist() == [2, 1, 1]


def test_folder_needs_size_when_images_differ(tmp_path):
    fx.build_class_folders(tmp_path, {"train": {"happy": 1}}, size=(20, 20))
    fx.write_image(tmp_path / "train" / "happy" / "z_big.jpg", fx.noise(30, 30, 3))
    with pytest.raises(DataError, match="z_big.jpg.*pass size="):
        load_dataset("folder", tmp_path, "train", cache_dir=False)
    assert load_dataset("folder", tmp_path, "train", size=10, cache_dir=False).images.shape == (2, 10, 10, 3)


def test_to_canonical_reports_classes_absent_from_target(tmp_path):
    fx.build_ferplus(tmp_path)
    d = load_dataset("ferplus", tmp_path, "train", cache_dir=False)
    with pytest.warns(UserWarning, match="1 samples of classes absent"):
        r = to_canonical(d, RAFDB_ORDER)
    assert r.class_names == RAFDB_ORDER
    assert r.labels.tolist() == [RAFDB_ORDER.index("neutral"), RAFDB_ORDER.index("happiness")]
    assert r.dropped["class contempt not in target classes"] == 1
    assert r.dropped["no majority"] == 3  # earlier drops are kept
    np.testing.assert_allclose(r.soft_labels[0, RAFDB_ORDER.index("neutral")], 0.75)
    np.testing.assert_allclose(r.soft_labels.sum(1), 1.0)


def test_registry_names_and_unknown_options(tmp_path):
    assert set(DATASETS) == {"rafdb", "affectnet", "fer2013", "ferplus", "folder", "synthfer"}
    fx.build_rafdb(tmp_path)
    assert isinstance(DATASETS["rafdb"](tmp_path, "test", cache_dir=False), FERData)
    with pytest.raises(DataError, match="unknown option.*'labels'"):
        load_dataset("rafdb", tmp_path, "test", labels="x")
    with pytest.raises(DataError, match="unknown data set 'raf'"):
        load_dataset("raf", tmp_path, "test")
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load_dataset("rafdb", tmp_path, "dev")


def test_synthfer_is_delegated(monkeypatch):
    import sys
    import types

    calls = {}

    def fake(split, **kw):
        calls.update(kw, split=split)
        return "sentinel"

    monkeypatch.setitem(sys.modules, "ssfer.data.synthfer", types.SimpleNamespace(load_synthfer=fake))
    assert load_dataset("synthfer", None, "train", size=32, n=10, seed=3) == "sentinel"
    assert calls == {"split": "train", "size": 32, "n": 10, "seed": 3}  # channels=None is not passed
