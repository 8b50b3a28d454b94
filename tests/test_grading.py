"""ssfer labs release / grade: nbgrader hands the labs out and grades a folder of
submissions built here from the lab sources (solutions, untouched, partly wrong,
tests deleted, an endless loop, a corrupt file)."""
from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")

from ssfer import cli
from ssfer.book.teaching import grading, labs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LAB_DIR = REPO / "notebooks" / "labs"
LAB1, LAB2 = "lab1_thresholds", "lab2_negative_learning"
FULL = {LAB1: {"ex1": "5"}, LAB2: {"ex1": "5", "ex2": "5"}}  # autograded points of each exercise


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release")
    assert cli.main(["labs", "release", str(out)]) == 0
    return out


def _ids(nb) -> list[str | None]:
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]


def submission(released: Path, lab: str, solved: tuple[str, ...] = (), edit=None) -> nbformat.NotebookNode:
    """The released notebook with the source's solution (code, model answer) filled
    into the exercises ``solved``."""
    nb = nbformat.read(released / lab / f"{lab}.ipynb", as_version=4)
    src = nbformat.read(LAB_DIR / f"{lab}.ipynb", as_version=4)
    by_id = dict(zip(_ids(src), src.cells))
    for cell, gid in zip(nb.cells, _ids(nb)):
        if gid and gid.endswith(("_solution", "_answer")) and gid.split("_")[0] in solved:
            cell.source = by_id[gid].source
    if edit:
        edit(nb)
    return nb


def put(folder: Path, student: str, lab: str, nb: nbformat.NotebookNode) -> None:
    (folder / student).mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / student / f"{lab}.ipynb")


def read_csv(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(path, newline="") as f:
        return {(r["student"], r["lab"]): r for r in csv.DictReader(f)}


def test_release_writes_student_notebooks_readmes_and_an_instructor_folder(released):
    for lab in (LAB1, LAB2, "lab3_ablation"):
        text = (released / lab / f"{lab}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "Rubric" not in text
        assert "raise NotImplementedError()" in text and "YOUR ANSWER HERE" in text
        readme = (released / lab / "README.md").read_text()
        assert "**Time on task.**" in readme and f"jupyter lab {lab}.ipynb" in readme
        assert (released / "instructor" / "source" / lab / f"{lab}.ipynb").read_text().count("BEGIN HIDDEN TESTS")
        # the book's student page is the notebook the students get
        book_page = labs.student_version(LAB_DIR / f"{lab}.ipynb")
        handed_out = nbformat.read(released / lab / f"{lab}.ipynb", as_version=4)
        assert [c.source for c in book_page.cells] == [c.source for c in handed_out.cells]
    assert (released / "instructor" / "gradebook.db").exists()


def _wrong_loss_and_no_tests(nb):
    # ex2 passes its visible checks but ignores `eps` (the hidden tests try eps=1e-3),
    # its test cells are replaced by `pass` and ex1's deleted: grading must restore them
    nb.cells = [c for c, gid in zip(nb.cells, _ids(nb)) if gid not in ("ex1_checks", "ex1_hidden")]
    for cell, gid in zip(nb.cells, _ids(nb)):
        if gid == "ex2_solution":
            cell.source = re.sub(r"# YOUR CODE HERE\n\s*raise NotImplementedError\(\)",
                                 "p = torch.softmax(student_logits.float(), dim=1)\n"
                                 "    log1m = torch.log((1.0 - p).clamp_min(1e-6))\n"
                                 "    return -(neg_mask * log1m).sum() / neg_mask.sum().clamp_min(1.0)", cell.source)
        elif cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code":
            cell.source = "pass"


def _endless_loop(nb):
    for cell, gid in zip(nb.cells, _ids(nb)):
        if gid == "ex1_solution":
            cell.source = re.sub(r"# YOUR CODE HERE\n\s*raise NotImplementedError\(\)", "while True:\n            pass",
                                 cell.source)


@pytest.fixture(scope="module")
def graded(released, tmp_path_factory):
    sub = tmp_path_factory.mktemp("submitted")
    for lab in (LAB1, LAB2):
        put(sub, "alice", lab, submission(released, lab, solved=("ex1", "ex2", "ex3")))
    put(sub, "bob", LAB1, submission(released, LAB1))
    put(sub, "carol", LAB2, submission(released, LAB2, solved=("ex1",), edit=_wrong_loss_and_no_tests))
    (sub / "frank").mkdir()
    (sub / "frank" / f"{LAB1}.ipynb").write_text('{"cells": [ this is not JSON')
    (sub / "frank" / f"{LAB2}.pdf").write_bytes(b"%PDF-1.4")
    out = tmp_path_factory.mktemp("grades") / "grades.csv"
    assert cli.main(["labs", "grade", str(sub), "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_the_solution_gets_full_marks_on_every_autograded_exercise(graded):
    rows = read_csv(graded)
    for lab, full in FULL.items():
        row = rows["alice", lab]
        assert {ex: row[ex] for ex in full} == full and row["status"] == "ok", row
        assert row["total"] == str(sum(int(v) for v in full.values()))
    # the hand-graded answers await the teacher; an unanswered one scores 0 at once
    assert rows["alice", LAB1]["ex2"] == "" and rows["alice", LAB2]["ex3"] == ""
    assert rows["bob", LAB1]["ex2"] == "0"
    html = (graded.parent / "feedback" / "alice" / f"{LAB1}.html").read_text()
    assert "Score: 2.0 / 2.0" in html and "Score: 3.0 / 3.0" in html  # visible checks, hidden tests
    assert (graded.parent / "nbgrader" / "gradebook.db").exists()
    header = graded.read_text().splitlines()[0]
    assert header == "student,lab,ex1,ex2,ex3,total,status"


@pytest.mark.slow
def test_the_untouched_student_notebook_gets_zero_without_stopping_the_grader(graded):
    row = read_csv(graded)["bob", LAB1]
    assert row["ex1"] == "0" and row["total"] == "0" and row["status"] == "ok"


@pytest.mark.slow
def test_deleted_tests_are_restored_and_one_wrong_exercise_keeps_the_others_points(graded):
    row = read_csv(graded)["carol", LAB2]
    # ex1 right: 5, from its restored tests (deleted, nbgrader alone leaves it to be
    # graded by hand); ex2 passes the 2 visible points, fails the 3 hidden ones (the
    # `pass` cells would have given it all 5)
    assert (row["ex1"], row["ex2"], row["total"], row["status"]) == ("5", "2", "7", "ok"), row


@pytest.mark.slow
def test_a_corrupt_or_foreign_file_gets_a_row_saying_so(graded):
    rows = read_csv(graded)
    assert rows["frank", LAB1]["status"] == "not a notebook" and rows["frank", LAB1]["total"] == ""
    assert rows["frank", LAB2]["status"] == "not a notebook"


@pytest.mark.slow
def test_an_endless_loop_times_out_and_the_other_students_are_graded(released, tmp_path):
    sub = tmp_path / "submitted"
    put(sub, "erin", LAB1, submission(released, LAB1, edit=_endless_loop))
    put(sub, "bob", LAB1, submission(released, LAB1))
    out = tmp_path / "grades.csv"
    assert cli.main(["labs", "grade", str(sub), "--out", str(out), "--timeout", "40"]) == 0
    rows = read_csv(out)
    assert rows["erin", LAB1]["status"] == "timed out" and rows["erin", LAB1]["ex1"] == "0"
    assert rows["bob", LAB1]["status"] == "ok" and rows["bob", LAB1]["total"] == "0"


def test_deleted_cells_are_put_back_where_they_were():
    released = nbformat.v4.new_notebook()
    for gid, md in (("a", {"locked": True}), ("ex1_solution", {"solution": True}), ("ex1_checks", {"grade": True}),
                    ("b", {"locked": True}), ("ex2_checks", {"grade": True})):
        cell = nbformat.v4.new_code_cell(f"# {gid}")
        cell.metadata["nbgrader"] = {"grade_id": gid, **md}
        released.cells.append(cell)
    sub = nbformat.from_dict(released)
    mine = nbformat.v4.new_code_cell("x = 1  # the student's own cell")
    sub.cells = [sub.cells[1], mine, sub.cells[3]]        # deleted a, ex1_checks and ex2_checks
    assert grading.restore_deleted_cells(sub, released) == ["a", "ex1_checks", "ex2_checks"]
    assert [c.source for c in sub.cells] == ["# a", "# ex1_solution", "# ex1_checks", "x = 1  # the student's own cell",
                                             "# b", "# ex2_checks"]
    assert grading.restore_deleted_cells(sub, released) == []


def test_bad_folders_and_options_are_named(tmp_path, capsys):
    assert cli.main(["labs", "grade", str(tmp_path / "nowhere"), "--out", str(tmp_path / "g.csv")]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["labs", "grade", str(tmp_path / "empty")]) == 2
    assert "no submission" in capsys.readouterr().err
    with pytest.raises(grading.GradingError, match="--timeout 0"):
        grading.grade(tmp_path, tmp_path / "g.csv", timeout=0)
    assert cli.main(["labs", "release", str(tmp_path / "r"), "--labs", str(tmp_path / "empty")]) == 2
    assert "no lab source" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "empty")
