"""The real FER2013 and FERPlus: counts equal the shared data README, the check
finds its known faults. Needs ../shared/data (or $SSFER_SHARED_DATA)."""
import numpy as np
import pytest

from ssfer.data import decode, load_dataset
from ssfer.data.check import check_dataset
from ssfer.data.registry import scan

pytestmark = [pytest.mark.realdata, pytest.mark.slow]  # unpacks and decodes two tars of 36k faces

FER_CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
# README of the restored copy (155 train images without an original were dropped),
# here in FER2013 code order: angry, disgust, fear, happy, sad, surprise, neutral
FER_COUNTS = {"train": [3972, 431, 4078, 7185, 4796, 3159, 4933], "test": [958, 111, 1024, 1774, 1247, 831, 1233]}

FERPLUS_CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FERPLUS = {  # per split: 8 class counts, unknown or NF, no majority
    "fer2013new": {"train": ([8740, 7287, 3149, 3014, 2100, 119, 532, 119], 78, 3423),
                   "val": ([1182, 865, 415, 351, 287, 24, 62, 13], 13, 367),
                   "test": ([1090, 893, 396, 384, 273, 18, 83, 16], 11, 410)},
    "label.csv": {"train": ([8733, 7284, 3136, 3022, 2098, 116, 536, 120], 79, 3434),
                  "val": ([1180, 862, 411, 348, 289, 25, 60, 16], 11, 377),
                  "test": ([1083, 892, 394, 382, 269, 16, 86, 15], 11, 425)},
}
FERPLUS_TOTALS = {"fer2013new": (25060, 3199, 3153), "label.csv": (25045, 3191, 3137)}


def test_fer2013_loads_with_readme_counts_and_reopens_from_cache(fer2013_root, real_cache, monkeypatch):
    for split, counts in FER_COUNTS.items():
        d = load_dataset("fer2013", fer2013_root, split, cache_dir=real_cache)
        assert d.class_names == FER_CLASSES
        assert d.images.shape == (sum(counts), 48, 48, 1)
        assert d.class_counts().tolist() == counts
    monkeypatch.setattr(decode, "decode_manifest", lambda *a, **k: pytest.fail("decoded twice"))
    again = load_dataset("fer2013", fer2013_root, "train", cache_dir=real_cache)
    blank = again.paths.index("train/angry/Training_10131352.jpg")
    assert isinstance(again.images, np.memmap) and again.images[blank].max() == 0


def test_fer2013_check_finds_blank_images_and_duplicates(fer2013_root):
    r = check_dataset("fer2013", fer2013_root)
    sm = r["summary"]
    assert r["ok"] and sm["errors"] == 0
    assert {s: v["total"] for s, v in r["splits"].items()} == {"train": 28554, "test": 7178}
    assert [r["splits"]["train"]["per_class"][c] for c in FER_CLASSES] == FER_COUNTS["train"]
    assert sm["blank_images"] + sm["flat_images"] == 13
    blank = {p["path"] for p in r["problems"] if p["kind"] in ("blank-image", "flat-image")}
    assert "train/angry/Training_10131352.jpg" in blank
    assert (sm["duplicate_files"], sm["duplicate_groups"], sm["cross_class_duplicate_groups"]) == (3708, 1646, 96)
    assert sm["cross_split_duplicate_groups"] == 546
    # the restored train pixels have the test split's contrast: no shift to report
    assert "contrast-shift" not in sm["by_kind"]
    assert abs(r["contrast"]["train"]["median_std"] - r["contrast"]["test"]["median_std"]) < 1.0


@pytest.mark.parametrize("labels", ["fer2013new", "label.csv"])
def test_ferplus_count_tables(ferplus_root, labels):
    for split, (counts, unknown, nomaj) in FERPLUS[labels].items():
        m = scan("ferplus", ferplus_root, split, labels=labels)
        assert m.class_names == FERPLUS_CLASSES
        assert np.bincount(m.labels, minlength=8).tolist() == counts
        assert m.dropped["unknown or NF"] == unknown and m.dropped["no majority"] == nomaj
    assert tuple(len(scan("ferplus", ferplus_root, s, labels=labels)) for s in ("train", "val", "test")) \
        == FERPLUS_TOTALS[labels]


def test_ferplus_check_reproduces_the_readme(ferplus_root):
    # counts and rows only: the image checks are the same code the FER2013 test runs
    r = check_dataset("ferplus", ferplus_root, images=False)
    assert r["ok"] and r["summary"]["images_checked"] is False
    for split, (counts, unknown, nomaj) in FERPLUS["fer2013new"].items():
        s = r["splits"][split]
        assert [s["per_class"][c] for c in FERPLUS_CLASSES] == counts
        assert (s["dropped"]["unknown or NF"], s["dropped"]["no majority"]) == (unknown, nomaj)
    assert sum(s["dropped"]["no image name (fer2013new.csv)"] for s in r["splits"].values()) == 173
    # the four names listed on two rows: three kept twice as labelled rows, fer0033120 once (its other row is NF)
    rows = sorted(p["path"].rsplit("/", 1)[-1] for p in r["problems"] if p["kind"] == "duplicate-row")
    assert rows == ["fer0006953.png", "fer0008403.png", "fer0011785.png"]


def test_ferplus_loads_soft_labels(ferplus_root, real_cache):
    d = load_dataset("ferplus", ferplus_root, "test", cache_dir=real_cache)
    assert d.images.shape == (3153, 48, 48, 1) and d.soft_labels.shape == (3153, 8)
    np.testing.assert_allclose(d.soft_labels.sum(1), 1.0, rtol=1e-6)
    # the majority class always holds the biggest share of the raw votes
    assert np.mean(d.soft_labels.argmax(1) == d.labels) > 0.99


def test_leak_free_view_drops_the_test_copies_of_train_images(fer2013_root, ferplus_root, real_cache):
    from ssfer.train.data import leaked

    found = {}
    for name, root in (("fer2013", fer2013_root), ("ferplus", ferplus_root)):
        train, test = (load_dataset(name, root, s, cache_dir=real_cache) for s in ("train", "test"))
        found[name] = int(leaked(test, train).sum())
    # FER2013: 546 duplicate groups cross train/test (the check above), holding 581 test files;
    # FERPlus: of its 502 groups across Train/Valid/Test, 259 kept test images have a kept train copy
    assert found == {"fer2013": 581, "ferplus": 259}
