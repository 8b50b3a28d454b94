"""FER2013: ``fer2013.csv`` (emotion, pixels, Usage) or the Kaggle folders.

Codes 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral.
Splits: the csv has train (Training), val (PublicTest), test (PrivateTest);
the Kaggle folders have train and test (= PublicTest + PrivateTest).
"""
from __future__ import annotations

import csv
import os

import numpy as np

from .errors import DataError, Problems
from .folder import find_split_dir, scan_class_folders, split_dirs, word_or_code_resolver
from .manifest import Manifest, check_not_empty, resolve_split

CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
CODES = {str(i): c for i, c in enumerate(CLASSES)}
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
CSV_NAMES = ("fer2013.csv", "fer2013/fer2013.csv")


def _csv_path(root: str) -> str | None:
    if os.path.isfile(root) and root.lower().endswith(".csv"):
        return root
    for rel in CSV_NAMES:
        if os.path.isfile(os.path.join(root, rel)):
            return os.path.join(root, rel)
    return None


def detect_layout(root: str, layout: str = "auto") -> str:
    if layout in ("csv", "folder"):
        return layout
    if layout != "auto":
        raise DataError(f"fer2013: layout must be 'auto', 'csv' or 'folder', got {layout!r}")
    if _csv_path(root):
        return "csv"
    if os.path.isdir(os.path.join(root, "train")):
        return "folder"
    raise DataError(f"fer2013: {root} has neither {' nor '.join(CSV_NAMES)} nor train/<class>/ folders")


def scan(root, split, problems: Problems, *, layout: str = "auto") -> Manifest:
    """layout: 'auto' (csv if present, else folders), 'csv' or 'folder'."""
    root = os.fspath(root)
    if detect_layout(root, layout) == "folder":
        split, split_dir = find_split_dir("fer2013", root, split)
        return scan_class_folders("fer2013", root, split, split_dir, CLASSES,
                                  word_or_code_resolver(CLASSES, CODES), problems,
                                  native_size=(48, 48), native_channels=1)
    return _scan_csv(root, resolve_split("fer2013", split, ("train", "val", "test")), problems)


def _scan_csv(root: str, split: str, problems: Problems) -> Manifest:
    path = _csv_path(root)
    if path is None:
        raise DataError(f"fer2013: no {' or '.join(CSV_NAMES)} under {root}")
    base = os.path.dirname(path) if os.path.isfile(root) else root
    name = os.path.relpath(path, base)
    sources, labels, display = [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if not {"emotion", "pixels", "Usage"} <= set(header):
            raise DataError(f"{path}:1: expected a header with columns emotion, pixels, Usage; got {header}")
        ie, ip, iu = header.index("emotion"), header.index("pixels"), header.index("Usage")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row:
                continue
            if len(row) != len(header):
                problems.error("malformed-row", where, f"{len(row)} fields, expected {len(header)} ({header})")
                continue
            usage = row[iu].strip()
            if usage not in USAGE:
                problems.error("malformed-row", where, f"Usage {usage!r}, expected one of {list(USAGE)}")
                continue
            code = row[ie].strip()
            if not code.lstrip("-").isdigit():
                problems.error("malformed-row", where, f"emotion {code!r} is not an integer 0..6")
                continue
            if not 0 <= int(code) <= 6:
                problems.error("label-out-of-range", where, f"emotion {code} outside 0..6")
                continue
            if USAGE[usage] != split:
                continue
            sources.append(row[ip])
            labels.append(int(code))
            display.append(f"{name}:{reader.line_num}")
    m = Manifest(name="fer2013", split=split, root=base, class_names=CLASSES, sources=sources,
                 labels=np.asarray(labels, dtype=np.int64), display=display, kind="pixels",
                 key_files=[path], native_size=(48, 48), native_channels=1, pixel_shape=(48, 48))
    check_not_empty(m, problems)
    return m


def available_splits(root, *, layout: str = "auto", **_opts) -> tuple[str, ...]:
    root = os.fspath(root)
    if detect_layout(root, layout) == "csv":
        return ("train", "val", "test")
    dirs = split_dirs(root)  # other folders beside train/test are not splits of FER2013
    return tuple(s for s in ("train", "val", "test") if s in dirs)
