import os
import re
from pathlib import Path

import pytest

from ssfer.references import DATASETS, REFERENCES, references

REPO = Path(__file__).resolve().parents[1]
# the design notes sit beside the shared data ($SSFER_SHARED_DATA, default ../shared/data)
DESIGN = Path(os.environ.get("SSFER_SHARED_DATA", REPO.parent / "shared" / "data")).parent / "DESIGN.md"


def test_rows_filter_by_dataset_and_unknown_names_are_refused():
    raf = references("RAF-DB")
    assert len(raf) == 7 and all(s.startswith("RAF-DB, ") for s in raf["setting"])
    assert raf.loc[raf["method"].str.startswith("Ada-CM"), "accuracy (%)"].item() == 84.42
    both = references("AffectNet-7", "AffectNet-8")
    assert len(both) == 11 and not both["method"].str.contains("Ada-CM").any()
    assert len(references()) == len(REFERENCES) and set(DATASETS) == {"RAF-DB", "FERPlus", "AffectNet-7", "AffectNet-8"}
    with pytest.raises(ValueError, match=r"no published reference for \['RAFDB'\]"):
        references("RAFDB")


def test_every_bib_key_exists():
    bib = (REPO / "book" / "references.bib").read_text()
    for r in REFERENCES:
        assert re.search(r"@\w+\{" + re.escape(r.cite) + ",", bib), r.cite


@pytest.mark.skipif(not DESIGN.exists(), reason=f"no {DESIGN} beside the checkout to compare with")
def test_numbers_match_the_design_table():
    """Every accuracy typed here appears in DESIGN §3, and every number there is typed here."""
    section = DESIGN.read_text().split("## 3.")[1].split("## 4.")[0]
    design = sorted(float(x) for x in re.findall(r"\b\d\d\.\d\d\b", section))
    assert sorted(r.accuracy for r in REFERENCES) == design
