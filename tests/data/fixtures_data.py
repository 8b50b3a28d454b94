"""Tiny data sets in each official on-disk layout, written into a tmp folder.

Every image is seeded noise (so no two are alike unless a test wants it) and
each builder returns what a correct loader must find.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from PIL import Image

_counter = [0]


def noise(h: int, w: int, channels: int = 1, seed: int | None = None) -> np.ndarray:
    if seed is None:
        _counter[0] += 1
        seed = _counter[0]
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(30, 226, size=shape, dtype=np.uint8)


def write_image(path, arr: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.save(path, quality=95)
    else:
        img.save(path)
    return path


# ------------------------------------------------------------------ RAF-DB

RAF_TRAIN = [3, 1, 2, 4, 2, 1, 3]  # per label 1..7
RAF_TEST = [1, 1, 1, 2, 1, 1, 1]


def build_rafdb(root, label_file: str = "EmoLabel/list_patition_label.txt") -> dict:
    root = Path(root)
    lines, expected = [], {"train": [], "test": []}
    for split, counts in (("train", RAF_TRAIN), ("test", RAF_TEST)):
        n = 0
        for label, k in enumerate(counts, 1):
            for _ in range(k):
                n += 1
                name = f"{split}_{n:05d}.jpg"
                lines.append(f"{name} {label}")
                write_image(root / "Image" / "aligned" / f"{split}_{n:05d}_aligned.jpg", noise(100, 100, 3))
                expected[split].append(label - 1)
    # the official file lists train then test; shuffle order should not matter
    lf = root / label_file
    lf.parent.mkdir(parents=True, exist_ok=True)
    lf.write_text("\n".join(lines[::-1]) + "\n")
    return expected


# ------------------------------------------------------------------ AffectNet

AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"]


def build_affectnet_csv(root, *, train_header: bool = True, val_header: bool = False) -> dict:
    """Train: codes 0..10, one image each (+ two more happy); val: codes 0..7.

    Each image is 40x60 (h x w) with a face box (10, 5, 20, 30): (x, y, w, h);
    the box is filled with value 200 + code (grey), the rest with 10.
    """
    root = Path(root)
    rows = {"training.csv": [], "validation.csv": []}
    codes = {"training.csv": list(range(11)) + [1, 1], "validation.csv": list(range(8))}
    for fname, cs in codes.items():
        for i, code in enumerate(cs):
            rel = f"{100 + i}/{fname[:3]}_{i:03d}.png"
            arr = np.full((40, 60, 3), 10, np.uint8)
            arr[5:35, 10:30] = 200 + code
            write_image(root / "Manually_Annotated_Images" / rel, arr)
            rows[fname].append([rel, 10, 5, 20, 30, "1.0;2.0;3.0", code, 0.5, -0.25])
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    for fname, header in (("training.csv", train_header), ("validation.csv", val_header)):
        with open(lists / fname, "w", newline="") as f:
            w = csv.writer(f)
            if header:
                w.writerow(AFFECTNET_HEADER)
            w.writerows(rows[fname])
    return codes


def build_class_folders(root, splits: dict[str, dict[str, int]], size=(32, 32), channels=3,
                        ext=".jpg") -> None:
    """``<root>/<split>/<folder>/img_N<ext>`` with the given counts per folder."""
    root = Path(root)
    for split, folders in splits.items():
        for folder, k in folders.items():
            for i in range(k):
                write_image(root / split / folder / f"img_{i}{ext}", noise(*size, channels))


# ------------------------------------------------------------------ FER2013

FER_USAGE = [("Training", 0), ("Training", 3), ("Training", 3), ("Training", 6), ("Training", 1),
             ("PublicTest", 2), ("PublicTest", 4), ("PrivateTest", 5), ("PrivateTest", 3)]


def build_fer2013_csv(root) -> list[tuple[str, int, np.ndarray]]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    with open(root / "fer2013.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for usage, code in FER_USAGE:
            px = noise(48, 48)
            w.writerow([code, " ".join(map(str, px.ravel())), usage])
            out.append((usage, code, px))
    return out


FER_FOLDERS = {"train": {"angry": 2, "disgust": 1, "fear": 1, "happy": 3, "neutral": 1, "sad": 2, "surprise": 1},
               "test": {"angry": 1, "disgust": 1, "fear": 1, "happy": 1, "neutral": 1, "sad": 1, "surprise": 1}}


# ------------------------------------------------------------------ FERPlus

# votes: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
FERPLUS_ROWS = {
    "train": [
        ("fer0000000.png", [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]),   # 1 dropped -> 4 of 9 : no majority
        ("fer0000001.png", [6, 0, 1, 1, 0, 0, 0, 0, 2, 0]),   # 6 of 8 -> neutral
        ("fer0000002.png", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),  # happiness
        ("fer0000003.png", [0, 0, 0, 0, 0, 0, 0, 0, 2, 8]),   # NF -> dropped
        ("fer0000004.png", [0, 0, 0, 0, 0, 0, 0, 5, 1, 4]),   # 5 of 9 -> contempt
        ("fer0000005.png", [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),   # all outliers -> no majority
        ("fer0000006.png", [3, 0, 2, 0, 0, 0, 2, 0, 0, 0]),   # 3 of 7 -> no majority
    ],
    "val": [("fer0000007.png", [0, 0, 7, 0, 0, 0, 3, 0, 0, 0]),   # surprise
            ("fer0000008.png", [0, 0, 0, 0, 0, 0, 9, 0, 1, 0])],  # fear
    "test": [("fer0000009.png", [0, 0, 0, 8, 2, 0, 0, 0, 0, 0]),   # sadness
             ("fer0000010.png", [0, 0, 0, 0, 0, 9, 0, 0, 0, 1])],  # disgust
}
FERPLUS_FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
FERPLUS_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


def build_ferplus(root, *, label_csv_changes: dict | None = None) -> None:
    """Both label sources; ``label_csv_changes`` {name: votes} makes label.csv differ
    from fer2013new.csv, as the real files do."""
    root = Path(root)
    new_rows = [["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger",
                 "disgust", "fear", "contempt", "unknown", "NF"]]
    for split, rows in FERPLUS_ROWS.items():
        folder = root / "data" / FERPLUS_FOLDERS[split]
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "label.csv", "w", newline="") as f:
            w = csv.writer(f)
            for name, votes in rows:
                write_image(folder / name, noise(48, 48))
                v = (label_csv_changes or {}).get(name, votes)
                w.writerow([name, "(0, 0, 48, 48)", *v])
                new_rows.append([FERPLUS_USAGE[split], name, *votes])
        new_rows.append([FERPLUS_USAGE[split], "", *([1] * 10)])  # the rows with no image name
    with open(root / "fer2013new.csv", "w", newline="") as f:
        csv.writer(f).writerows(new_rows)


def corrupt_truncate(path, keep: float = 0.5) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:int(len(data) * keep)])


def bump_mtime(path, seconds: float = 10.0) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + int(seconds * 1e9)))
