"""RAF-DB basic: ``EmoLabel/list_patition_label.txt`` + ``Image/aligned``.

Label lines read ``train_00001.jpg 5`` with 1..7 = Surprise, Fear, Disgust,
Happiness, Sadness, Anger, Neutral; the split is the name's prefix.
"""
from __future__ import annotations

import os

from ..classes import RAFDB_ORDER
from .errors import DataError, Problems
from .manifest import Manifest, ManifestBuilder, resolve_split

# The official file name is misspelt; some copies fix it.
LABEL_FILES = ("EmoLabel/list_patition_label.txt", "EmoLabel/list_partition_label.txt",
               "list_patition_label.txt", "list_partition_label.txt")
SPLITS = ("train", "test")


def label_file(root: str) -> str:
    for rel in LABEL_FILES:
        path = os.path.join(root, rel)
        if os.path.isfile(path):
            return path
    raise DataError(f"rafdb: no label file under {root}; expected one of {list(LABEL_FILES)}")


def scan(root, split, problems: Problems, *, aligned: bool = True) -> Manifest:
    """aligned: the 100x100 aligned faces (``Image/aligned/<stem>_aligned.jpg``);
    False reads ``Image/original/<name>`` (sizes vary: pass size=)."""
    root = os.fspath(root)
    split = resolve_split("rafdb", split, SPLITS)
    lf = label_file(root)
    b = ManifestBuilder("rafdb", split, root, RAFDB_ORDER, problems)
    with open(lf, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{lf}:{lineno}"
            parts = line.split()
            if len(parts) != 2 or not parts[0].lower().endswith((".jpg", ".jpeg", ".png")):
                problems.error("malformed-row", where,
                               f"expected '<train|test>_NNNNN.jpg <1..7>', got {line.strip()!r}")
                continue
            fname, code = parts
            if not fname.startswith(("train_", "test_")):
                problems.error("malformed-row", where, f"image name {fname!r} does not start with train_ or test_")
                continue
            if not code.isdigit():
                problems.error("malformed-row", where, f"label {code!r} is not an integer 1..7")
                continue
            if not 1 <= int(code) <= 7:
                problems.error("label-out-of-range", where, f"label {code} outside 1..7")
                continue
            if not fname.startswith(split + "_"):
                continue
            stem = os.path.splitext(fname)[0]
            img = (os.path.join(root, "Image", "aligned", f"{stem}_aligned.jpg") if aligned
                   else os.path.join(root, "Image", "original", fname))
            b.add_file(img, int(code) - 1, where)
    return b.build(key_files=[lf], native_size=(100, 100) if aligned else None, native_channels=3)


def available_splits(root, **_opts) -> tuple[str, ...]:
    return SPLITS
