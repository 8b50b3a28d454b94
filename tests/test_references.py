import re
from pathlib import Path

import pytest

from ssfer.book.references import DATASETS, REFERENCES, references

REPO = Path(__file__).resolve().parents[1]
# the book's page on data, evidence and speed holds the published table the chapters quote
DESIGN = REPO / "book" / "design.md"


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


def test_numbers_match_the_books_published_table():
    """Every accuracy typed in ssfer/book/references.py appears in the book's table of
    published numbers (book/design.md), and every number there is typed here."""
    section = DESIGN.read_text().split("## Published reference numbers")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) > 2, "no table under '## Published reference numbers'"
    design = sorted(float(x) for x in re.findall(r"\b\d\d\.\d\d\b", "\n".join(rows)))
    assert sorted(r.accuracy for r in REFERENCES) == design


def test_every_citation_of_the_book_is_in_the_bibliography_and_names_are_well_formed():
    bib = (REPO / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    pages = [*(REPO / "book").glob("*.md"), *(REPO / "notebooks").rglob("*.ipynb")]
    cited = {k.strip() for p in pages for group in re.findall(r"\{cite[pt]?\}`([^`]+)`", p.read_text())
             for k in group.split(",")}
    assert cited and cited <= keys, sorted(cited - keys)
    for m in re.finditer(r"@\w+\{([^,]+),(.*?)\n\}", bib, re.S):
        key, body = m.groups()
        author = re.search(r"author\s*=\s*\{(.*)\},?\s*$", body, re.M).group(1)
        assert "authors}" not in author.lower(), f"{key}: a placeholder author"
        for name in re.split(r"\s+and\s+", author):
            assert name.startswith("{") or "," in name or name == "others", f"{key}: {name!r} is not 'Last, First'"


@pytest.mark.parametrize("word", ["FixMatch", "FlexMatch", "FreeMatch", "NLNL", "CBAM", "AffectNet", "RandAugment",
                                  "DropBlock", "POSTER++"])
def test_capitals_of_names_in_titles_are_protected(word):
    # BibTeX styles lower-case titles ("Fixmatch"); braces keep a name's capitals
    bib = (REPO / "book" / "references.bib").read_text()
    titles = re.findall(r"title\s*=\s*\{(.*)\},?\s*$", bib, re.M)
    holding = [t for t in titles if word in t]
    assert holding and all("{" + word + "}" in t for t in holding), holding
