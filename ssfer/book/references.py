"""Published reference accuracies, typed once for every chapter.

Each row: method, dataset, setting, top-1 accuracy in %, and its source as a
``book/references.bib`` key plus where the number is printed. The DTA+SNL
paper's own table values were not available and are deliberately absent.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    method: str
    dataset: str      # "RAF-DB", "FERPlus", "AffectNet-7", "AffectNet-8"
    setting: str      # the label budget, in the source's own terms
    accuracy: float   # top-1 test accuracy, %
    cite: str         # book/references.bib key
    where: str        # where the number is printed


_SSFER = ("SSFER, MAE ViT", "ssfer2024", "SSFER README")
_SUP = [
    ("ResNet-18, fully supervised", "farzaneh2021dacl", "DACL README", {"RAF-DB": 86.54, "AffectNet-7": 63.86}),
    ("DAN, fully supervised", "wen2023dan", "DAN paper", {"RAF-DB": 89.70, "AffectNet-7": 65.69, "AffectNet-8": 62.09}),
    ("POSTER++, fully supervised", "mao2023posterpp", "POSTER++ paper",
     {"RAF-DB": 92.21, "AffectNet-7": 67.49, "AffectNet-8": 63.77}),
]
_SSFER_ROWS = {
    "RAF-DB": (("5 % labeled", 80.96), ("10 % labeled", 85.07), ("25 % labeled", 88.23)),
    "FERPlus": (("5 % labeled", 81.77), ("10 % labeled", 83.95), ("25 % labeled", 85.82)),
    "AffectNet-7": (("1 % labeled", 59.08), ("5 % labeled", 64.02), ("10 % labeled", 65.37)),
    "AffectNet-8": (("1 % labeled", 53.85), ("5 % labeled", 60.17), ("10 % labeled", 61.65)),
}

REFERENCES: tuple[Reference, ...] = (
    Reference("Ada-CM, ResNet-18 (MS-Celeb pre-trained)", "RAF-DB", "4000 labels", 84.42, "li2022adacm",
              "Ada-CM repository"),
    *(Reference(_SSFER[0], ds, setting, acc, _SSFER[1], _SSFER[2])
      for ds, rows in _SSFER_ROWS.items() for setting, acc in rows),
    *(Reference(method, ds, "all labels", acc, cite, where)
      for method, cite, where, accs in _SUP for ds, acc in accs.items()),
)
DATASETS = tuple(dict.fromkeys(r.dataset for r in REFERENCES))


def references(*datasets: str):
    """The rows for ``datasets`` (all when none is named) as a pandas DataFrame
    with the columns method, setting ("<dataset>, <budget>"), accuracy (%) and source."""
    import pandas as pd

    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        raise ValueError(f"no published reference for {unknown}; known: {list(DATASETS)}")
    rows = [r for r in REFERENCES if not datasets or r.dataset in datasets]
    order = {d: i for i, d in enumerate(datasets or DATASETS)}
    rows.sort(key=lambda r: (r.method.endswith("fully supervised"), order[r.dataset]))
    return pd.DataFrame({
        "method": [r.method for r in rows],
        "setting": [f"{r.dataset}, {r.setting}" for r in rows],
        "accuracy (%)": [r.accuracy for r in rows],
        "source": [f"{r.cite} ({r.where})" for r in rows],
    })
