"""Variants of the labs (``ssfer labs release --variant N``): the asked constants
drawn from N in the student notebook, the hidden tests and the reference
answers alike, so that the published solution fails every variant but its own."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")

from ssfer import cli  # noqa: E402
from ssfer.book.teaching import judge, labs, variants  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LAB_DIR = REPO / "notebooks" / "labs"
LABS = ["lab1_thresholds", "lab2_negative_learning", "lab3_ablation"]


def _source(lab: str) -> nbformat.NotebookNode:
    return nbformat.read(LAB_DIR / f"{lab}.ipynb", as_version=4)


def _ids(nb):
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]


@pytest.mark.parametrize("lab", LABS)
def test_every_variant_draws_every_knob_away_from_the_published_value(lab):
    published = variants.draw(lab, 0)
    for n in range(1, 8):
        drawn = variants.draw(lab, n)
        assert drawn.keys() == published.keys()
        assert all(drawn[k] != published[k] for k in drawn), (n, drawn)
        nb = variants.variant(_source(lab), lab, n)   # every knob still finds every place it is written
        assert nb.metadata["ssfer"]["lab_variant"] == n
    assert variants.draw(lab, 3) == variants.draw(lab, 3)
    same = variants.variant(_source(lab), lab, 0)
    assert [c.source for c in same.cells] == [c.source for c in _source(lab).cells]


def test_the_student_notebook_asks_the_drawn_constants():
    n = 2
    drawn = variants.draw("lab1_thresholds", n)
    student = nbformat.writes(labs.student_version(variants.variant(_source("lab1_thresholds"), "lab1_thresholds", n)))
    start, (lo, hi) = drawn["ramp start"], drawn["floor and ceiling"]
    assert f"min(1,\\\\ {start:g} + t)" in student and "0.5 + t" not in student
    assert f"tau_min: float = {lo:g}" in student and f"tau_max: float = {hi:g}" in student
    lab2 = variants.draw("lab2_negative_learning", n)
    student = nbformat.writes(labs.student_version(variants.variant(_source("lab2_negative_learning"),
                                                                    "lab2_negative_learning", n)))
    assert f"{lab2['clamp']:.0e}".replace("e-0", "e-") in student and "1e-6" not in student
    assert f"except its {lab2['classes never negated']} most probable classes" in student


def test_a_changed_source_is_refused_not_half_rewritten():
    nb = _source("lab1_thresholds")
    for cell in nb.cells:
        cell.source = cell.source.replace("0.5 + t", "t + 0.5")
    with pytest.raises(labs.LabError, match="ramp start"):
        variants.variant(nb, "lab1_thresholds", 1)
    with pytest.raises(labs.LabError, match="already variant 1"):
        variants.variant(variants.variant(_source("lab1_thresholds"), "lab1_thresholds", 1), "lab1_thresholds", 2)


def _answers(nb, tmp_path: Path, name: str, strict: bool = True) -> dict:
    path = tmp_path / f"{name}.jsonl"
    judge.run_cells(nb, path, name, strict=strict)
    return judge.read_answers(path)


def _with_published_solutions(nb: nbformat.NotebookNode, lab: str) -> nbformat.NotebookNode:
    """Variant ``nb`` with the published source's solution cells pasted in, as a student
    who found the public book's solution would hand it in."""
    published = dict(zip(_ids(_source(lab)), _source(lab).cells))
    out = nbformat.from_dict(nb)
    for cell, gid in zip(out.cells, _ids(out)):
        if gid and gid.endswith("_solution"):
            cell.source = published[gid].source
    return out


@pytest.mark.parametrize("lab", ["lab1_thresholds", "lab2_negative_learning", "lab3_ablation"])
def test_the_published_solution_fails_another_variants_hidden_tests_and_passes_its_own(lab, tmp_path):
    published = _source(lab)
    own = _answers(published, tmp_path, "published")
    cells = list(judge.autograded_cells(published))
    assert all(v.passed for v in judge.verdicts(own, _answers(published, tmp_path, "again"), cells).values())
    other = variants.variant(published, lab, 5)
    reference = _answers(other, tmp_path, "variant")
    copied = _answers(_with_published_solutions(other, lab), tmp_path, "copied", strict=False)
    got = judge.verdicts(copied, reference, cells)
    knobbed = {"lab1_thresholds": {"ex1"}, "lab2_negative_learning": {"ex1", "ex2"}, "lab3_ablation": {"ex2"}}[lab]
    for gid, v in got.items():
        if gid.endswith("_hidden"):
            assert v.passed == (gid.split("_")[0] not in knobbed), (gid, v)


@pytest.mark.slow
def test_a_graded_variant_fails_the_published_solution_and_passes_its_own(tmp_path):
    from test_grading import needs_sandbox, put, read_csv

    needs_sandbox()
    lab, n = "lab1_thresholds", 3
    handout, course = tmp_path / "handout", tmp_path / "instructor"
    assert cli.main(["labs", "release", str(handout), "--instructor", str(course), "--variant", str(n)]) == 0
    start = variants.draw(lab, n)["ramp start"]
    assert re.search(rf"min\(1,\\+ {start:g} \+ t\)", (handout / lab / f"{lab}.ipynb").read_text())
    own_source = course / "source" / lab / f"{lab}.ipynb"
    for student, source in (("copier", LAB_DIR / f"{lab}.ipynb"), ("solver", own_source)):
        nb = nbformat.read(handout / lab / f"{lab}.ipynb", as_version=4)
        solved = dict(zip(_ids(nbformat.read(source, as_version=4)), nbformat.read(source, as_version=4).cells))
        for cell, gid in zip(nb.cells, _ids(nb)):
            if gid == "ex1_solution":
                cell.source = solved[gid].source
        put(tmp_path / "submitted", student, lab, nb)
    out = tmp_path / "grades" / "grades.csv"
    assert cli.main(["labs", "grade", str(tmp_path / "submitted"), "--out", str(out), "--labs", str(course)]) == 0
    rows = read_csv(out)
    assert rows["solver", lab]["ex1"] == "5", rows
    assert rows["copier", lab]["ex1"] in ("0", "2"), rows   # the hidden tests' 3 points are lost
    html = (out.parent / "feedback" / "copier" / f"{lab}.html").read_text()
    assert "Score: 0.0 / 3.0" in html
