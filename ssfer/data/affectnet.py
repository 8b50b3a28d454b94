"""AffectNet: the official CSV lists with face boxes, or class-per-folder copies.

Official: ``Manually_Annotated_file_lists/{training,validation}.csv`` with
columns subDirectory_filePath, face_x, face_y, face_width, face_height,
facial_landmarks, expression, valence, arousal (validation.csv often has no
header), images under ``Manually_Annotated_Images/``. Codes 0 Neutral, 1 Happy,
2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt, 8 None,
9 Uncertain, 10 No-Face; 7 classes drop 7-10, 8 classes drop 8-10.
The validation set is the test set (500 images per class).

Folder copies: ``<root>/<train|val|test>/<class>/`` with class folders named by
code ("0".."10") or by word ("happy", "Anger", "contempt", "none", ...).
"""
from __future__ import annotations

import csv
import os

from ..classes import canonical_name
from .errors import DataError, Problems
from .folder import scan_class_folders, split_dirs
from .manifest import Manifest, ManifestBuilder, inside_root

CODE_CLASSES = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt")
EXCLUDED = {8: "none", 9: "uncertain", 10: "no-face"}
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
           "facial_landmarks", "expression", "valence", "arousal")
LISTS = "Manually_Annotated_file_lists"
CSV_FILES = {"train": "training.csv", "test": "validation.csv"}
IMAGE_DIRS = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images", "Manually_Annotated")
DROP_WORDS = {"none": EXCLUDED[8], "uncertain": EXCLUDED[9], "noface": EXCLUDED[10],
              "no-face": EXCLUDED[10], "no_face": EXCLUDED[10], "nonface": EXCLUDED[10]}


def class_names(num_classes: int) -> tuple[str, ...]:
    if num_classes not in (7, 8):
        raise DataError(f"affectnet: num_classes must be 7 or 8, got {num_classes!r}")
    return CODE_CLASSES[:num_classes]


def code_target(code: int, num_classes: int) -> int | str:
    """Class index of an expression code, or the reason it is dropped."""
    if code < num_classes:
        return code
    if code == 7:
        return "contempt (7-class)"
    return f"{EXCLUDED[code]} (code {code})"


def _split(split: str) -> str:
    key = str(split).strip().lower()
    if key in ("test", "validation"):
        return "test"
    if key in ("train", "training"):
        return "train"
    if key in ("val", "valid"):
        raise DataError("affectnet: its validation set is the test set (split='test'); for model "
                        "selection carve a validation split from train (ssfer.data.splits)")
    raise DataError(f"affectnet: unknown split {split!r}; expected 'train' or 'test' (= validation.csv)")


def detect_layout(root: str, layout: str = "auto") -> str:
    if layout in ("csv", "folder"):
        return layout
    if layout != "auto":
        raise DataError(f"affectnet: layout must be 'auto', 'csv' or 'folder', got {layout!r}")
    if os.path.isdir(os.path.join(root, LISTS)):
        return "csv"
    if os.path.isdir(os.path.join(root, "train")):
        return "folder"
    raise DataError(f"affectnet: {root} has neither {LISTS}/ nor train/<class>/ folders")


def scan(root, split, problems: Problems, *, num_classes: int = 7, crop: bool = True,
         layout: str = "auto", images_dir: str | None = None) -> Manifest:
    """num_classes: 7 or 8. crop: cut the face box out (csv layout).
    layout: 'auto', 'csv' or 'folder'. images_dir: where the csv paths start
    (default: the first of Manually_Annotated_Images, ... that exists)."""
    root = os.fspath(root)
    names = class_names(num_classes)
    split = _split(split)
    if detect_layout(root, layout) == "folder":
        return _scan_folder(root, split, names, problems)
    return _scan_csv(root, split, names, problems, crop=crop, images_dir=images_dir)


def _image_dir(root: str, images_dir: str | None) -> str:
    if images_dir is not None:
        d = images_dir if os.path.isabs(images_dir) else os.path.join(root, images_dir)
        if not os.path.isdir(d):
            raise DataError(f"affectnet: images_dir {d} is not a folder")
        return d
    for rel in IMAGE_DIRS:
        if os.path.isdir(os.path.join(root, rel)):
            return os.path.join(root, rel)
    raise DataError(f"affectnet: no image folder under {root}; expected one of {list(IMAGE_DIRS)} "
                    "(or pass images_dir=)")


def _scan_csv(root, split, names, problems, *, crop, images_dir) -> Manifest:
    path = os.path.join(root, LISTS, CSV_FILES[split])
    if not os.path.isfile(path):
        raise DataError(f"affectnet: {path} not found")
    img_dir = _image_dir(root, images_dir)
    b = ManifestBuilder("affectnet", split, root, names, problems)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        cols = {c: i for i, c in enumerate(COLUMNS)}
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row:
                continue
            if reader.line_num == 1 and row[0].strip() == COLUMNS[0]:
                header = [c.strip() for c in row]
                missing = [c for c in COLUMNS[:7] if c not in header]
                if missing:
                    raise DataError(f"{where}: header lacks columns {missing}; expected {list(COLUMNS)}")
                cols = {c: header.index(c) for c in COLUMNS if c in header}
                continue
            if len(row) < 7 or len(row) < max(cols[c] for c in COLUMNS[:7]) + 1:
                problems.error("malformed-row", where, f"{len(row)} fields, expected {len(COLUMNS)}: "
                               f"{', '.join(COLUMNS)}")
                continue
            try:
                x, y, w, h = (int(float(row[cols[c]])) for c in COLUMNS[1:5])
            except ValueError:
                problems.error("malformed-row", where, "face_x, face_y, face_width, face_height must be "
                               f"numbers, got {[row[cols[c]] for c in COLUMNS[1:5]]}")
                continue
            code = row[cols["expression"]].strip()
            if not code.lstrip("-").isdigit():
                problems.error("malformed-row", where, f"expression {code!r} is not an integer code 0..10")
                continue
            code = int(code)
            if not 0 <= code <= 10:
                problems.error("label-out-of-range", where, f"expression code {code} outside 0..10")
                continue
            if crop and (w <= 0 or h <= 0):
                problems.error("malformed-row", where, f"face box width/height {w}x{h} must be positive")
                continue
            target = code_target(code, len(names))
            if isinstance(target, str):
                b.drop(target)
                continue
            img = inside_root(img_dir, row[cols["subDirectory_filePath"]].strip(), where, problems)
            if img is not None:
                b.add_file(img, target, where, box=(x, y, x + w, y + h) if crop else None)
    return b.build(key_files=[path], native_channels=3)


def _resolver(names: tuple[str, ...]):
    def resolve(folder: str):
        key = folder.strip().lower()
        if key.isdigit():
            code = int(key)
            if code > 10:
                raise KeyError("codes run 0..10")
            return code_target(code, len(names))
        if key in DROP_WORDS:
            return f"{DROP_WORDS[key]} (folder {folder})"
        try:
            cls = canonical_name(key)
        except ValueError:
            raise KeyError(f"expected a code 0..10 or a class word like {list(CODE_CLASSES)}") from None
        return code_target(CODE_CLASSES.index(cls), len(names))

    return resolve


def _folder_for(root: str, split: str) -> str:
    dirs = split_dirs(root)  # canonical name -> folder
    options = ["train"] if split == "train" else ["test", "val"]
    for key in options:
        if key in dirs:
            return os.path.join(root, dirs[key])
    raise DataError(f"affectnet: no folder for split {split!r} under {root}; found {sorted(dirs.values())}")


def _scan_folder(root, split, names, problems) -> Manifest:
    return scan_class_folders("affectnet", root, split, _folder_for(root, split), names,
                              _resolver(names), problems, native_channels=3)


def available_splits(root, *, layout: str = "auto", **_opts) -> tuple[str, ...]:
    root = os.fspath(root)
    if detect_layout(root, layout) == "csv":
        return tuple(s for s, f in CSV_FILES.items() if os.path.isfile(os.path.join(root, LISTS, f)))
    dirs = split_dirs(root)
    return tuple(s for s in ("train", "test") if s in dirs or (s == "test" and "val" in dirs))
