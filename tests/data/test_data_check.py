"""``ssfer data check``: counts, every kind of problem, JSON shape, exit codes."""
import json
import shutil

import numpy as np
import pytest

import fixtures_data as fx
from ssfer.data import DataError
from ssfer.cli import main as _cli
from ssfer.data.check import check_dataset, format_report


@pytest.fixture
def faulty_fer(tmp_path):
    """FER2013 folders with 2 blank/flat images, 2 duplicate groups (1 cross-class)."""
    root = tmp_path / "fer"
    fx.build_class_folders(root, fx.FER_FOLDERS, size=(48, 48), channels=1, ext=".png")
    fx.write_image(root / "train" / "angry" / "img_0.png", np.zeros((48, 48), np.uint8))  # blank
    flat = np.full((48, 48), 128, np.uint8)
    flat[0, :3] = 130
    fx.write_image(root / "train" / "sad" / "img_1.png", flat)  # flat, std < 2
    shutil.copy(root / "train" / "happy" / "img_0.png", root / "train" / "happy" / "img_9.png")
    shutil.copy(root / "train" / "happy" / "img_0.png", root / "test" / "happy" / "img_9.png")
    shutil.copy(root / "train" / "fear" / "img_0.png", root / "test" / "surprise" / "img_9.png")
    return root


def test_counts_and_warnings_only(faulty_fer):
    r = check_dataset("fer2013", faulty_fer)
    assert r["dataset"] == "fer2013" and r["ok"] is True
    assert r["splits"]["train"] == {"total": 12, "dropped": {}, "per_class": {
        "anger": 2, "disgust": 1, "fear": 1, "happiness": 4, "sadness": 2, "surprise": 1, "neutral": 1}}
    assert r["splits"]["test"]["total"] == 9
    sm = r["summary"]
    assert (sm["errors"], sm["blank_images"], sm["flat_images"]) == (0, 1, 1)
    # happy img_0 x3 (train, train copy, test copy) and fear/surprise x2
    assert (sm["duplicate_groups"], sm["duplicate_files"], sm["cross_class_duplicate_groups"]) == (2, 5, 1)
    assert sm["cross_split_duplicate_groups"] == 2  # both groups reach into test
    [cross] = [p for p in r["problems"] if p["kind"] == "duplicate-cross-class"]
    assert cross == {"kind": "duplicate-cross-class", "path": "test/surprise/img_9.png", "severity": "warning",
                     "detail": "identical images filed as test/surprise/img_9.png (surprise), "
                               "train/fear/img_0.png (fear)"}
    [blank] = [p for p in r["problems"] if p["kind"] == "blank-image"]
    assert blank["path"] == "train/angry/img_0.png" and blank["detail"] == "all pixels 0"
    assert _cli(["data", "check", "fer2013", str(faulty_fer)]) == 0


def test_no_images_mode_counts_without_opening_images(faulty_fer, monkeypatch):
    from ssfer.data import decode

    monkeypatch.setattr(decode, "inspect_manifest", lambda *a, **k: pytest.fail("opened images"))
    r = check_dataset("fer2013", faulty_fer, images=False)
    assert r["splits"]["train"]["total"] == 12 and r["problems"] == []
    assert r["summary"]["images_checked"] is False and r["summary"]["duplicate_groups"] == 0
    assert _cli(["data", "check", "fer2013", str(faulty_fer), "--no-images"]) == 0


def test_errors_make_a_nonzero_exit(faulty_fer, capsys):
    fx.corrupt_truncate(faulty_fer / "test" / "neutral" / "img_0.png")
    (faulty_fer / "train" / "bored").mkdir()
    (faulty_fer / "train" / "disgust" / "img_1.png").write_bytes(b"\x89PNG nonsense")
    code = _cli(["data", "check", "fer2013", str(faulty_fer), "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 1 and r["ok"] is False
    kinds = {(p["kind"], p["path"].rsplit("fer/", 1)[-1]) for p in r["problems"] if p["severity"] == "error"}
    assert kinds == {("truncated-image", "test/neutral/img_0.png"), ("unknown-label", "train/bored"),
                     ("unreadable-image", "train/disgust/img_1.png")}
    assert set(r) >= {"dataset", "splits", "problems"}
    assert all(set(p) == {"kind", "path", "detail", "severity"} for p in r["problems"])


def test_csv_rows_that_do_not_parse_are_collected(tmp_path):
    fx.build_fer2013_csv(tmp_path)
    lines = (tmp_path / "fer2013.csv").read_text().splitlines()
    lines[1] = "9," + lines[1].split(",", 1)[1]          # label out of range
    lines[2] = lines[2].rsplit(",", 1)[0] + ",Other"     # unknown Usage
    lines[3] = "3,1 2 3,Training"                       # too few pixels
    lines.append(lines[4])                              # same pixels twice, same class
    (tmp_path / "fer2013.csv").write_text("\n".join(lines) + "\n")
    r = check_dataset("fer2013", tmp_path)
    errs = sorted((p["kind"], p["path"].rsplit("/", 1)[-1]) for p in r["problems"] if p["severity"] == "error")
    assert errs == [("label-out-of-range", "fer2013.csv:2"), ("malformed-row", "fer2013.csv:3"),
                    ("malformed-row", "fer2013.csv:4")]
    assert r["splits"] == {
        "train": {"total": 4, "dropped": {}, "per_class": {"anger": 0, "disgust": 1, "fear": 0, "happiness": 1,
                                                           "sadness": 0, "surprise": 0, "neutral": 2}},
        "val": {"total": 2, "dropped": {}, "per_class": {"anger": 0, "disgust": 0, "fear": 1, "happiness": 0,
                                                         "sadness": 1, "surprise": 0, "neutral": 0}},
        "test": {"total": 2, "dropped": {}, "per_class": {"anger": 0, "disgust": 0, "fear": 0, "happiness": 1,
                                                          "sadness": 0, "surprise": 1, "neutral": 0}}}
    assert r["summary"]["duplicate_groups"] == 1 and r["summary"]["cross_class_duplicate_groups"] == 0


def test_ferplus_counts_dropped_and_repeated_rows(tmp_path):
    fx.build_ferplus(tmp_path)
    csv_path = tmp_path / "fer2013new.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(lines[:3] + [lines[2]] + lines[3:]) + "\n")  # fer0000001 listed twice
    r = check_dataset("ferplus", tmp_path, splits=["train"])
    assert r["splits"]["train"]["total"] == 4
    assert r["splits"]["train"]["per_class"]["neutral"] == 2
    assert r["splits"]["train"]["dropped"] == {"no majority": 3, "unknown or NF": 1,
                                               "no image name (fer2013new.csv)": 1}
    assert [p["kind"] for p in r["problems"]] == ["duplicate-row"]  # a row twice is not a duplicate image
    assert r["summary"]["by_kind"] == {"duplicate-row": 1} and r["summary"]["blank_images"] == 0
    assert "duplicate-row" in format_report(r) and format_report(r).endswith("result: OK (warnings only)")
    r2 = check_dataset("ferplus", tmp_path, labels="label.csv")
    assert list(r2["splits"]) == ["train", "val", "test"] and r2["splits"]["train"]["total"] == 3


def test_text_report_lists_classes_and_problems(faulty_fer):
    text = format_report(check_dataset("fer2013", faulty_fer))
    lines = text.splitlines()
    assert lines[1].split() == ["class", "train", "test"]
    assert lines[2].split() == ["anger", "2", "1"]
    assert ("duplicates: 5 files in 2 groups of byte-identical images; 1 groups under more than one class, "
            "2 in more than one split") in text
    assert lines[-1] == "result: OK (warnings only)"


def test_cli_options_and_usage_errors(tmp_path, capsys):
    fx.build_ferplus(tmp_path)
    assert _cli(["data", "check", "ferplus", str(tmp_path), "-o", "labels=label.csv", "--split", "val", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["options"] == {"labels": "label.csv"} and list(r["splits"]) == ["val"]
    assert _cli(["data", "check", "ferplus", str(tmp_path), "-o", "nope=1"]) == 2
    assert "--option nope: ferplus has no such option; known: labels" in capsys.readouterr().err
    with pytest.raises(DataError, match="nothing to check"):
        check_dataset("synthfer", tmp_path)


def test_missing_split_folder_is_an_error(tmp_path):
    fx.build_class_folders(tmp_path, {"train": {"happy": 1}}, size=(48, 48))
    r = check_dataset("fer2013", tmp_path, splits=["train", "test"])
    assert r["ok"] is False and r["problems"][0]["kind"] == "layout"
    assert "no folder for split 'test'" in r["problems"][0]["detail"]


def test_contrast_shift_between_splits_is_reported_and_equal_splits_are_not():
    from ssfer.data.check import contrast_shift, contrast_stats

    plain = contrast_stats([(40, 200, 30.0), (50, 190, 36.0), (30, 210, 40.0)])
    assert plain == {"median_std": 36.0, "full_range_share": 0.0}
    stretched = contrast_stats([(0, 255, 55.0), (1, 254, 50.0), (20, 230, 45.0)])
    assert stretched == {"median_std": 50.0, "full_range_share": round(2 / 3, 4)}
    msg = contrast_shift({"train": plain, "test": stretched})
    assert "train 36.0, test 50.0" in msg and "test 67%" in msg and "data.tone" in msg
    assert contrast_shift({"train": plain, "test": dict(plain)}) == ""
    assert contrast_shift({"train": plain}) == ""


def test_autocontrast_stretches_each_image_and_keeps_flat_ones():
    import numpy as np
    from PIL import Image, ImageOps

    from ssfer.data.preprocess import apply_tone

    x = np.zeros((3, 2, 2, 1), np.uint8)
    x[0, ..., 0] = [[50, 100], [150, 100]]       # 50..150 -> 0..255
    x[1] = 7                                     # flat: unchanged
    x[2, ..., 0] = [[0, 255], [128, 64]]         # already full range
    y = apply_tone(x, "autocontrast", chunk=2)
    assert y[0, ..., 0].tolist() == [[0, 127], [255, 127]]  # PIL truncates (100-50)*2.55 = 127.5
    assert (y[1] == 7).all() and (y[2] == x[2]).all()
    assert y.dtype == np.uint8 and x[0, 0, 0, 0] == 50  # input untouched
    pil = np.stack([np.asarray(ImageOps.autocontrast(Image.fromarray(i[..., 0]))) for i in x])[..., None]
    assert np.array_equal(y, pil)


def test_equalize_undoes_a_monotone_tone_curve():
    import numpy as np

    from PIL import Image, ImageOps

    from ssfer.data.preprocess import apply_tone, preprocess

    def equalize(images):
        return apply_tone(images, "equalize")

    rng = np.random.default_rng(0)
    x = rng.integers(40, 150, size=(4, 48, 48, 1), dtype=np.uint8)  # PIL leaves images under ~512 px as they are
    stretched = (2 * x.astype(np.int32) - 80).astype(np.uint8)  # 40..149 -> 0..218, one-to-one
    assert not np.array_equal(x, stretched)
    assert np.array_equal(equalize(x), equalize(stretched)) and not np.array_equal(equalize(x), x)
    assert np.array_equal(equalize(x)[..., 0], np.stack([np.asarray(ImageOps.equalize(Image.fromarray(i[..., 0])))
                                                          for i in x]))  # PIL's table exactly
    rgb = rng.integers(0, 256, size=(2, 48, 48, 3), dtype=np.uint8)
    assert np.array_equal(equalize(rgb), np.stack([np.asarray(ImageOps.equalize(Image.fromarray(i))) for i in rgb]))
    with pytest.raises(ValueError, match="data.tone='gamma'"):
        preprocess(None, tone="gamma")
