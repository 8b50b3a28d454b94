"""FERPlus: FER2013 images with ten crowd votes each.

Images ``data/FER2013{Train,Valid,Test}/ferNNNNNNN.png``; votes from
``fer2013new.csv`` (default; Usage Training / PublicTest / PrivateTest) or the
per-folder ``label.csv``. Vote order: neutral, happiness, surprise, sadness,
anger, disgust, fear, contempt, unknown, NF.

Majority rule (FERPlus's own script): votes of 1 are outliers and count 0; the
label is the argmax when it holds more than half of the remaining votes; samples
whose majority is unknown or NF, or with no majority, are dropped (counted in
``FERData.dropped``). ``soft_labels`` is the raw vote share over the 8 classes.
"""
from __future__ import annotations

import csv
import os

import numpy as np

from .errors import DataError, Problems
from .manifest import Manifest, ManifestBuilder, resolve_split

CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
VOTE_COLUMNS = CLASSES + ("unknown", "NF")
FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
NO_MAJORITY, UNKNOWN_NF = "no majority", "unknown or NF"
NO_NAME = "no image name (fer2013new.csv)"
SOURCES = ("fer2013new", "label.csv")


def majority(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label, reason) per row of (N, 10) votes: label -1 where dropped.

    reason: 0 kept, 1 no majority, 2 majority unknown or NF.
    """
    v = np.where(votes <= 1, 0, votes)
    total = v.sum(axis=1)
    top = v.argmax(axis=1)
    has = 2 * v.max(axis=1) > total  # false when every vote was an outlier (total 0)
    emotion = top < len(CLASSES)
    label = np.where(has & emotion, top, -1)
    reason = np.where(~has, 1, np.where(emotion, 0, 2))
    return label.astype(np.int64), reason


def data_dir(root: str) -> str:
    for d in (os.path.join(root, "data"), root):
        if os.path.isdir(os.path.join(d, FOLDERS["train"])) or os.path.isdir(os.path.join(d, FOLDERS["test"])):
            return d
    raise DataError(f"ferplus: no data/FER2013Train or FER2013Test folder under {root}")


def _votes(fields: list[str], where: str, problems: Problems) -> list[int] | None:
    try:
        votes = [int(f) for f in fields]
    except ValueError:
        problems.error("malformed-row", where, f"votes {fields} are not all integers")
        return None
    if min(votes) < 0:
        problems.error("label-out-of-range", where, f"negative vote count in {votes}")
        return None
    if not any(votes):
        problems.error("label-out-of-range", where, "no votes at all (all ten counts are 0)")
        return None
    return votes


def _rows(root: str, split: str, labels: str, problems: Problems):
    """Yield (image name, votes, where) of the split's rows; also the label file."""
    if labels == "fer2013new":
        path = os.path.join(root, "fer2013new.csv")
        if not os.path.isfile(path):
            raise DataError(f"ferplus: {path} not found (or pass labels='label.csv')")
        expected = ["Usage", "Image name", *VOTE_COLUMNS]
    else:
        path = os.path.join(data_dir(root), FOLDERS[split], "label.csv")
        if not os.path.isfile(path):
            raise DataError(f"ferplus: {path} not found")
        expected = None
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if expected is not None and reader.line_num == 1:
                if [c.strip() for c in row] != expected:
                    raise DataError(f"{where}: expected the header {','.join(expected)}; got {','.join(row)}")
                continue
            if not row:
                continue
            if len(row) != 12:
                problems.error("malformed-row", where, f"{len(row)} fields, expected 12 "
                               + ("(Usage, Image name, 10 votes)" if expected else
                                  "(ferNNNNNNN.png, \"(x, y, w, h)\", 10 votes)"))
                continue
            if expected is not None:
                usage = row[0].strip()
                if usage not in USAGE:
                    problems.error("malformed-row", where, f"Usage {usage!r}, expected one of {list(USAGE)}")
                    continue
                if USAGE[usage] != split:
                    continue
                name = row[1].strip()
            else:
                name = row[0].strip()
                if not name:
                    problems.error("malformed-row", where, "empty image name")
                    continue
            rows.append((name, row[2:], where))
    return path, rows


def scan(root, split, problems: Problems, *, labels: str = "fer2013new") -> Manifest:
    """labels: 'fer2013new' (default; the totals papers report) or 'label.csv'."""
    root = os.fspath(root)
    split = resolve_split("ferplus", split, tuple(FOLDERS))
    if labels not in SOURCES:
        raise DataError(f"ferplus: labels must be one of {SOURCES}, got {labels!r}")
    folder = os.path.join(data_dir(root), FOLDERS[split])
    path, rows = _rows(root, split, labels, problems)
    b = ManifestBuilder("ferplus", split, root, CLASSES, problems)
    parsed = []
    for name, fields, where in rows:
        if not name:
            b.drop(NO_NAME)
            continue
        if os.sep in name or "/" in name or name in (".", ".."):
            problems.error("path-escapes-root", where, f"image name {name!r} must be a plain file name")
            continue
        votes = _votes(fields, where, problems)
        if votes is not None:
            parsed.append((name, votes, where))
    if parsed:
        votes = np.array([v for _, v, _ in parsed], dtype=np.int64)
        label, reason = majority(votes)
        emo = votes[:, :len(CLASSES)].astype(np.float32)
        soft = emo / np.maximum(emo.sum(axis=1, keepdims=True), 1)  # a kept row has emotion votes
        for (name, _, where), lab, why, sl in zip(parsed, label.tolist(), reason.tolist(), soft):
            if why == 1:
                b.drop(NO_MAJORITY)
            elif why == 2:
                b.drop(UNKNOWN_NF)
            else:
                b.add_file(os.path.join(folder, name), lab, where, soft=sl)
    return b.build(key_files=[path], native_size=(48, 48), native_channels=1)


def available_splits(root, **_opts) -> tuple[str, ...]:
    d = data_dir(os.fspath(root))
    return tuple(s for s, f in FOLDERS.items() if os.path.isdir(os.path.join(d, f)))
