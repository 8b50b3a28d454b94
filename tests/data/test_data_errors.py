"""Bad input fails loudly, naming the file, the row and what was expected."""
import csv

import pytest

import fixtures_data as fx
from ssfer.data import DataError, load_dataset


def _raf_label_file(tmp_path, text):
    fx.build_rafdb(tmp_path)
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text(text)
    return str(tmp_path / "EmoLabel" / "list_patition_label.txt")


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


@pytest.mark.parametrize("line, expect", [
    ("train_00001.jpg", r"list_patition_label.txt:2: expected '<train\|test>_NNNNN.jpg <1..7>'"),
    ("train_00001.jpg five", r":2: label 'five' is not an integer 1..7"),
    ("valid_00001.jpg 3", r":2: image name 'valid_00001.jpg' does not start with train_ or test_"),
])
def test_rafdb_malformed_lines(tmp_path, line, expect):
    _raf_label_file(tmp_path, f"train_00002.jpg 1\n{line}\n")
    with pytest.raises(DataError, match=expect):
        load_dataset("rafdb", tmp_path, "train", cache_dir=False)


def test_rafdb_unknown_label_value(tmp_path):
    _raf_label_file(tmp_path, "train_00001.jpg 1\n\ntrain_00002.jpg 8\n")
    with pytest.raises(DataError, match=r"list_patition_label.txt:3: label 8 outside 1..7"):
        load_dataset("rafdb", tmp_path, "train", cache_dir=False)


def test_rafdb_missing_image_names_line_and_file(tmp_path):
    _raf_label_file(tmp_path, "train_00001.jpg 1\ntrain_99999.jpg 2\n")
    with pytest.raises(DataError, match=r":2: image file .*train_99999_aligned.jpg does not exist"):
        load_dataset("rafdb", tmp_path, "train", cache_dir=False)


def test_rafdb_no_label_file(tmp_path):
    with pytest.raises(DataError, match="no label file.*list_patition_label.txt"):
        load_dataset("rafdb", tmp_path, "train", cache_dir=False)


def test_truncated_image_is_named(tmp_path):
    fx.build_rafdb(tmp_path)
    fx.corrupt_truncate(tmp_path / "Image" / "aligned" / "test_00003_aligned.jpg")
    with pytest.raises(DataError, match=r"1 image\(s\) could not be decoded:\nImage/aligned/test_00003_aligned.jpg: "
                                        r"OSError: image file is truncated"):
        load_dataset("rafdb", tmp_path, "test", cache_dir=tmp_path / "cache")
    # nothing half-written is left to be mistaken for a cache entry
    assert not list((tmp_path / "cache").rglob("meta.json")) and not list((tmp_path / "cache").rglob("*.tmp"))


def test_unreadable_image_is_named(tmp_path):
    fx.build_rafdb(tmp_path)
    (tmp_path / "Image" / "aligned" / "test_00002_aligned.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="test_00002_aligned.jpg: UnidentifiedImageError"):
        load_dataset("rafdb", tmp_path, "test", cache_dir=False)


@pytest.mark.parametrize("bad, expect", [
    ("../outside.png", r"training.csv:3: path '../outside.png' leads outside"),
    ("/etc/passwd", r"training.csv:3: absolute path '/etc/passwd'"),
])
def test_affectnet_paths_escaping_root(tmp_path, bad, expect):
    fx.build_affectnet_csv(tmp_path)
    path = tmp_path / "Manually_Annotated_file_lists" / "training.csv"
    rows = list(csv.reader(open(path)))
    rows[2][0] = bad
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(DataError, match=expect):
        load_dataset("affectnet", tmp_path, "train", size=8, cache_dir=False)


@pytest.mark.parametrize("col, value, expect", [
    (6, "11", r"validation.csv:2: expression code 11 outside 0..10"),
    (6, "happy", r"validation.csv:2: expression 'happy' is not an integer code 0..10"),
    (1, "x", r"validation.csv:2: face_x, face_y, face_width, face_height must be numbers"),
    (3, "0", r"validation.csv:2: face box width/height 0x30 must be positive"),
])
def test_affectnet_bad_rows(tmp_path, col, value, expect):
    fx.build_affectnet_csv(tmp_path, val_header=False)
    path = tmp_path / "Manually_Annotated_file_lists" / "validation.csv"
    rows = list(csv.reader(open(path)))
    rows[1][col] = value
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(DataError, match=expect):
        load_dataset("affectnet", tmp_path, "test", size=8, cache_dir=False)


def test_affectnet_short_row(tmp_path):
    fx.build_affectnet_csv(tmp_path)
    path = tmp_path / "Manually_Annotated_file_lists" / "training.csv"
    with open(path, "a") as f:
        f.write("999/x.png,1,2\n")
    with pytest.raises(DataError, match=r"training.csv:15: 3 fields, expected 9: subDirectory_filePath"):
        load_dataset("affectnet", tmp_path, "train", size=8, cache_dir=False)


def test_fer2013_csv_bad_rows(tmp_path):
    fx.build_fer2013_csv(tmp_path)
    path = tmp_path / "fer2013.csv"
    lines = path.read_text().splitlines()
    for i, (new, expect) in enumerate([
        (lines[1].replace("Training", "Trainig"), r"fer2013.csv:2: Usage 'Trainig', expected one of"),
        ("7," + lines[1].split(",", 1)[1], r"fer2013.csv:2: emotion 7 outside 0..6"),
        ("0,1 2 3,Training", r"fer2013.csv:2: ValueError: 3 pixel values, expected 48x48 = 2304"),
        ("0,1 2 x,Training", r"fer2013.csv:2: ValueError: pixels are not all integers"),
    ]):
        path.write_text("\n".join([lines[0], new, *lines[2:]]) + "\n")
        with pytest.raises(DataError, match=expect):
            load_dataset("fer2013", tmp_path, "train", cache_dir=False)


def test_fer2013_csv_wrong_header(tmp_path):
    (tmp_path / "fer2013.csv").write_text("label,pixels,Usage\n0,1 2,Training\n")
    with pytest.raises(DataError, match=r"fer2013.csv:1: expected a header with columns emotion, pixels, Usage"):
        load_dataset("fer2013", tmp_path, "train", cache_dir=False)


def test_ferplus_bad_votes_and_missing_image(tmp_path):
    fx.build_ferplus(tmp_path)
    path = tmp_path / "fer2013new.csv"
    text = path.read_text()
    path.write_text(text.replace("Training,fer0000002.png,0,10,", "Training,fer0000002.png,0,ten,"))
    with pytest.raises(DataError, match=r"fer2013new.csv:4: votes .* are not all integers"):
        load_dataset("ferplus", tmp_path, "train", cache_dir=False)
    path.write_text(text)
    (tmp_path / "data" / "FER2013Valid" / "fer0000008.png").unlink()
    with pytest.raises(DataError, match=r"fer2013new.csv:\d+: image file .*FER2013Valid/fer0000008.png does not exist"):
        load_dataset("ferplus", tmp_path, "val", cache_dir=False)
    label_csv = tmp_path / "data" / "FER2013Test" / "label.csv"
    label_csv.write_text(label_csv.read_text() + "fer0000011.png,\"(0, 0, 48, 48)\",1,2\n")
    with pytest.raises(DataError, match=r"FER2013Test/label.csv:3: 4 fields, expected 12"):
        load_dataset("ferplus", tmp_path, "test", labels="label.csv", cache_dir=False)


def test_unknown_class_folder(tmp_path):
    fx.build_class_folders(tmp_path, {"train": {"angry": 1, "bored": 1}, "test": {"angry": 1}}, size=(48, 48))
    with pytest.raises(DataError, match=r"train/bored: class folder 'bored' is not a known class"):
        load_dataset("fer2013", tmp_path, "train", cache_dir=False)


def test_empty_split_names_what_was_dropped(tmp_path):
    fx.build_class_folders(tmp_path, {"train": {"NoFace": 2, "None": 1}, "test": {"happy": 1}}, size=(8, 8))
    with pytest.raises(DataError, match=r"affectnet split 'train' has no samples \(\{'no-face \(folder NoFace\)': 2, "
                                        r"'none \(folder None\)': 1\} dropped\)"):
        load_dataset("affectnet", tmp_path, "train", cache_dir=False)


def test_empty_class_folder_split(tmp_path):
    (tmp_path / "train" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="split 'train' has no samples"):
        load_dataset("folder", tmp_path, "train", cache_dir=False)


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("fer2013", tmp_path / "nope", "train")
