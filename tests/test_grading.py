"""ssfer labs release / grade: nbgrader hands the labs out and grades, each
submission in its own sandbox, a folder of submissions built here from the lab
sources: solutions, untouched, partly wrong, tests deleted, a corrupt file, and
hostile ones (patched asserts and library, snooping on the grader, a fork bomb,
a 20 GB allocation), all in one folder graded once."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")

from ssfer import cli  # noqa: E402
from ssfer.book.teaching import grading, labs, sandbox  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LAB_DIR = REPO / "notebooks" / "labs"
LAB1, LAB2 = "lab1_thresholds", "lab2_negative_learning"
FULL = {LAB1: {"ex1": "5"}, LAB2: {"ex1": "5", "ex2": "5"}}  # autograded points of each exercise
LIMITS = ["--memory", "6", "--processes", "64"]              # small, so that the hostile tests stay cheap


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release")
    assert cli.main(["labs", "release", str(out / "handout"), "--instructor", str(out / "instructor")]) == 0
    return out


def _ids(nb) -> list[str | None]:
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]


def submission(released: Path, lab: str, solved: tuple[str, ...] = (), edit=None,
               source: Path | None = None) -> nbformat.NotebookNode:
    """The released notebook with the solution (code, model answer) of ``source``
    (the published one by default) filled into the exercises ``solved``."""
    nb = nbformat.read(released / "handout" / lab / f"{lab}.ipynb", as_version=4)
    src = nbformat.read(source or LAB_DIR / f"{lab}.ipynb", as_version=4)
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


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the digest of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def in_solution(nb, ex: str, code: str, replace: str | None = None) -> None:
    """Put ``code`` at the top of exercise ``ex``'s solution cell; ``replace`` fills its
    ``# YOUR CODE HERE`` instead of ``raise NotImplementedError()``."""
    for cell, gid in zip(nb.cells, _ids(nb)):
        if gid == f"{ex}_solution":
            if replace is not None:
                cell.source = re.sub(r"# YOUR CODE HERE\n(\s*)raise NotImplementedError\(\)",
                                     lambda m: replace.replace("\n", "\n" + m.group(1)), cell.source)
            cell.source = code + "\n" + cell.source


def needs_sandbox():
    try:
        sandbox.Sandbox().check()
    except sandbox.SandboxError as e:
        pytest.skip(f"no sandbox on this machine: {e}")


# ------------------------------------------------------------------ the submissions
def _wrong_loss_and_no_tests(nb):
    # ex2 passes its visible checks but clamps at 1e-3, not 1e-6 (the hidden tests try a certain
    # student), its test cells are replaced by `pass` and ex1's deleted: grading must restore them
    nb.cells = [c for c, gid in zip(nb.cells, _ids(nb)) if gid not in ("ex1_checks", "ex1_hidden")]
    for cell, gid in zip(nb.cells, _ids(nb)):
        if gid == "ex2_solution":
            cell.source = re.sub(r"# YOUR CODE HERE\n\s*raise NotImplementedError\(\)",
                                 "p = torch.softmax(student_logits.float(), dim=1)\n"
                                 "    log1m = torch.log((1.0 - p).clamp_min(1e-3))\n"
                                 "    return -(neg_mask * log1m).sum() / neg_mask.sum().clamp_min(1.0)", cell.source)
        elif cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code":
            cell.source = "pass"


# A rule that does nothing, and everything a check in the kernel could lean on patched to agree:
# the assert functions of torch and numpy, a builtin, the library's reference class.
PATCHES = """\
import builtins, numpy, numpy.testing, torch, torch.testing
import ssfer.algo.thresholds
torch.testing.assert_close = lambda *a, **k: None
torch.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = numpy.testing.assert_array_equal = lambda *a, **k: None
builtins.all = lambda *a, **k: True
ssfer.algo.thresholds.DTAThreshold.update = lambda self, s: None
DTAThreshold = ssfer.algo.thresholds.DTAThreshold"""


def _snoop(targets: dict[str, str]) -> str:
    """Code that tries each way out of the sandbox and prints what it got, one line."""
    return f"""\
import json, os, signal, socket
T = {json.dumps(targets)}
got = {{}}
def attempt(name, f):
    try:
        f()
        got[name] = "done"
    except Exception as e:
        got[name] = "blocked: " + type(e).__name__
attempt("read another submission", lambda: open(T["other"]).read())
attempt("write another submission", lambda: open(T["other"], "a").write(" "))
attempt("read the gradebook", lambda: open(T["gradebook"], "rb").read())
attempt("write the gradebook", lambda: open(T["gradebook"], "ab").write(b"x"))
attempt("read the solutions", lambda: open(T["solutions"]).read())
attempt("read the instructor folder", lambda: os.listdir(T["instructor"]))
attempt("read the home folder", lambda: open(T["home_file"]).read())
attempt("write the home folder", lambda: open(T["home_new"], "w").write("x"))
attempt("read the grader's command line", lambda: open("/proc/%d/cmdline" % T["grader"]).read())
attempt("signal the grader", lambda: os.kill(T["grader"], 0))
attempt("kill its parent", lambda: os.kill(os.getppid(), signal.SIGKILL))
attempt("connect to the grader's machine", lambda: socket.create_connection(("127.0.0.1", T["port"]), 3))
attempt("connect to the internet", lambda: socket.create_connection(("1.1.1.1", 53), 3))
print("SNOOP " + json.dumps(got))"""


FORK_BOMB = """\
import os, time
for _ in range(500):      # bounded, in case the limit were missing; the limit (64) stops it first
    if os.fork() == 0:
        time.sleep(3600)
        os._exit(0)"""
HUGE = "import torch\nhog = torch.empty(20 * 2**30, dtype=torch.uint8)   # 20 GB"


@pytest.fixture(scope="module")
def home_files():
    """A file in the grader's home folder, and the name of one the hostile code tries to write."""
    home = Path(os.path.expanduser("~"))
    tag = uuid.uuid4().hex[:12]
    secret, written = home / f".ssfer-sandbox-secret-{tag}", home / f".ssfer-sandbox-written-{tag}"
    secret.write_text("the teacher's own file\n")
    yield secret, written
    secret.unlink(missing_ok=True)
    written.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def graded(released, tmp_path_factory, home_files):
    needs_sandbox()
    sub = tmp_path_factory.mktemp("submitted")
    out = tmp_path_factory.mktemp("grades") / "grades.csv"
    for lab in (LAB1, LAB2):
        put(sub, "alice", lab, submission(released, lab, solved=("ex1", "ex2", "ex3")))
    put(sub, "bob", LAB1, submission(released, LAB1))
    put(sub, "carol", LAB2, submission(released, LAB2, solved=("ex1",), edit=_wrong_loss_and_no_tests))
    (sub / "frank").mkdir()
    (sub / "frank" / f"{LAB1}.ipynb").write_text('{"cells": [ this is not JSON')
    (sub / "frank" / f"{LAB2}.pdf").write_bytes(b"%PDF-1.4")
    put(sub, "mallory", LAB1, submission(released, LAB1, edit=lambda nb: in_solution(nb, "ex1", PATCHES, "pass")))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    targets = {"other": str(sub / "alice" / f"{LAB1}.ipynb"), "gradebook": str(out.parent / "nbgrader" / "gradebook.db"),
               "solutions": str(LAB_DIR / f"{LAB1}.ipynb"), "instructor": str(released / "instructor"),
               "home_file": str(home_files[0]), "home_new": str(home_files[1]), "grader": os.getpid(),
               "port": listener.getsockname()[1]}
    put(sub, "eve", LAB1, submission(released, LAB1, solved=("ex1",), edit=lambda nb: in_solution(nb, "ex1", _snoop(targets))))
    put(sub, "forky", LAB1, submission(released, LAB1, edit=lambda nb: in_solution(nb, "ex1", FORK_BOMB)))
    put(sub, "hog", LAB1, submission(released, LAB1, edit=lambda nb: in_solution(nb, "ex1", HUGE)))
    put(sub, "dies", LAB1, submission(released, LAB1, edit=lambda nb: in_solution(nb, "ex1", "import os\nos._exit(3)")))
    hand = tmp_path_factory.mktemp("hand") / "hand.csv"
    hand.write_text("student,lab,cell,points\nalice,lab1_thresholds,ex2_answer,3\nalice,lab2_negative_learning,ex3,2.5\n")
    before = snapshot(sub)
    try:
        assert cli.main(["labs", "grade", str(sub), "--out", str(out), "--manual", str(hand), *LIMITS]) == 0
        try:
            listener.accept()
            accepted = True
        except BlockingIOError:
            accepted = False
    finally:
        listener.close()
    return {"csv": out, "sub": sub, "before": before, "accepted": accepted}


# ------------------------------------------------------------------ release
@pytest.mark.slow  # trains several steps or epochs, or grades notebooks
def test_release_writes_student_notebooks_readmes_and_a_separate_instructor_folder(released):
    handout = released / "handout"
    for lab in (LAB1, LAB2, "lab3_ablation"):
        text = (handout / lab / f"{lab}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "Rubric" not in text
        assert "raise NotImplementedError()" in text and "YOUR ANSWER HERE" in text
        readme = (handout / lab / "README.md").read_text()
        assert "**Time on task.**" in readme and f"jupyter lab {lab}.ipynb" in readme
        assert (released / "instructor" / "source" / lab / f"{lab}.ipynb").read_text().count("BEGIN HIDDEN TESTS")
        # the book's student page is the notebook the students get
        book_page = labs.student_version(LAB_DIR / f"{lab}.ipynb")
        handed_out = nbformat.read(handout / lab / f"{lab}.ipynb", as_version=4)
        assert [c.source for c in book_page.cells] == [c.source for c in handed_out.cells]
    assert (released / "instructor" / "gradebook.db").exists()
    # nothing of the instructor's in the handout: no course, no solution, no hidden test
    assert sorted(p.name for p in handout.iterdir()) == [LAB1, LAB2, "lab3_ablation"]
    for p in handout.rglob("*"):
        assert p.suffix != ".db" and (p.is_dir() or "BEGIN HIDDEN TESTS" not in p.read_text()), p


def test_release_refuses_an_instructor_folder_inside_the_handout(tmp_path, capsys):
    assert cli.main(["labs", "release", str(tmp_path / "h"), "--instructor", str(tmp_path / "h" / "instructor")]) == 2
    err = capsys.readouterr().err
    assert "must lie outside the handout" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "h").exists()
    assert cli.main(["labs", "release", str(tmp_path / "h"), "--instructor", str(tmp_path)]) == 2
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("the teacher's")
    assert cli.main(["labs", "release", str(tmp_path / "h"), "--instructor", str(tmp_path / "notes")]) == 2
    assert "not a course written by ssfer labs" in capsys.readouterr().err
    assert (tmp_path / "notes" / "mine.txt").read_text() == "the teacher's"


def test_release_into_a_folder_it_cannot_write_is_one_line(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the handout's folder should go")
    assert cli.main(["labs", "release", str(blocked / "handout"), "--instructor", str(tmp_path / "i")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write" in err and "Traceback" not in err, err


# ------------------------------------------------------------------ grading
@pytest.mark.slow
def test_the_solution_gets_full_marks_and_the_hand_grades(graded):
    rows = read_csv(graded["csv"])
    for lab, full in FULL.items():
        row = rows["alice", lab]
        assert {ex: row[ex] for ex in full} == full and row["status"] == "ok", row
    # the hand grades given with --manual, in the CSV; the answers not graded yet stay empty
    assert rows["alice", LAB1]["ex2"] == "3" and rows["alice", LAB1]["total"] == "8"
    assert rows["alice", LAB2]["ex3"] == "2.5" and rows["alice", LAB2]["total"] == "12.5"
    assert rows["bob", LAB1]["ex2"] == ""
    out = graded["csv"].parent
    html = (out / "feedback" / "alice" / f"{LAB1}.html").read_text()
    assert "Score: 2.0 / 2.0" in html and "Score: 3.0 / 3.0" in html  # visible checks, hidden tests
    assert "all 83 results match the solution" in html
    assert (out / "nbgrader" / "gradebook.db").exists()
    assert graded["csv"].read_text().splitlines()[0] == "student,lab,ex1,ex2,ex3,total,status"
    assert "alice,lab1_thresholds,ex2_answer,3" in (out / "hand_grades.csv").read_text()


@pytest.mark.slow
def test_the_untouched_student_notebook_gets_zero_without_stopping_the_grader(graded):
    row = read_csv(graded["csv"])["bob", LAB1]
    assert row["ex1"] == "0" and row["total"] == "0" and row["status"] == "ok"


@pytest.mark.slow
def test_deleted_tests_are_restored_and_one_wrong_exercise_keeps_the_others_points(graded):
    row = read_csv(graded["csv"])["carol", LAB2]
    # ex1 right: 5, from its restored tests (deleted, nbgrader alone leaves it to be
    # graded by hand); ex2 earns the 2 visible points, not the 3 hidden ones (the
    # `pass` cells would have given it all 5)
    assert (row["ex1"], row["ex2"], row["total"], row["status"]) == ("5", "2", "7", "ok"), row


@pytest.mark.slow
def test_a_corrupt_or_foreign_file_gets_a_row_saying_so(graded):
    rows = read_csv(graded["csv"])
    assert rows["frank", LAB1]["status"] == "not a notebook" and rows["frank", LAB1]["total"] == ""
    assert rows["frank", LAB2]["status"] == "not a notebook"


@pytest.mark.slow
def test_patching_asserts_numpy_builtins_or_the_library_earns_nothing(graded):
    row = read_csv(graded["csv"])["mallory", LAB1]
    assert (row["ex1"], row["total"], row["status"]) == ("0", "0", "ok"), row
    # in its own kernel every check "passed": the points were decided outside it
    nb = nbformat.read(graded["csv"].parent / "nbgrader" / "autograded" / "mallory" / LAB1 / f"{LAB1}.ipynb",
                       as_version=4)
    checks = next(c for c, gid in zip(nb.cells, _ids(nb)) if gid == "ex1_checks")
    assert "all checks passed" in "".join(o.get("text", "") for o in checks.outputs)


@pytest.mark.slow
def test_a_submission_cannot_reach_out_of_its_sandbox(graded, home_files):
    nb = nbformat.read(graded["csv"].parent / "nbgrader" / "autograded" / "eve" / LAB1 / f"{LAB1}.ipynb",
                       as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    got = json.loads(re.search(r"SNOOP (\{.*\})", printed).group(1))
    # its parent is the sandbox's own init: killing it is refused (or, unprivileged, ignored)
    parent = got.pop("kill its parent")
    assert len(got) == 12 and all(v.startswith("blocked") for v in got.values()), got
    assert not home_files[1].exists() and not graded["accepted"]
    row = read_csv(graded["csv"])["eve", LAB1]
    assert (row["ex1"], row["status"]) == ("5", "ok"), (row, parent)  # its own work graded as usual


@pytest.mark.slow
def test_the_teachers_files_are_never_written(graded):
    assert snapshot(graded["sub"]) == graded["before"]
    # the gradebook's tests are the release's, hidden ones included
    course = graded["csv"].parent / "nbgrader"
    from nbgrader.api import Gradebook

    for lab in (LAB1, LAB2):
        src = nbformat.read(course / "source" / lab / f"{lab}.ipynb", as_version=4)
        tests = {gid: c.source for c, gid in zip(src.cells, _ids(src))
                 if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            stored = {c.name: c.source for c in gb.find_notebook(lab, lab).source_cells if c.name in tests}
        assert stored == tests


@pytest.mark.slow
def test_a_fork_bomb_a_huge_allocation_or_a_dying_kernel_ends_in_its_own_row(graded):
    rows = read_csv(graded["csv"])
    assert re.match(r"error: process limit \(64\) reached in cell ex1_solution: BlockingIOError",
                    rows["forky", LAB1]["status"]), rows["forky", LAB1]
    assert re.match(r"error: memory limit \(6 GiB\) reached in cell ex1_solution: RuntimeError",
                    rows["hog", LAB1]["status"]), rows["hog", LAB1]
    assert rows["forky", LAB1]["ex1"] == rows["hog", LAB1]["ex1"] == "0"
    # a kernel that dies: the cell it died in, not nbgrader's "see the above traceback"
    assert rows["dies", LAB1]["status"] == "error: the kernel died in cell ex1_solution", rows["dies", LAB1]
    # the students after them were graded (eve, mallory sort after forky and hog)
    assert rows["mallory", LAB1]["status"] == "ok"
    # and nothing the fork bomb started outlived its sandbox
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _sandboxed_kernel(p)]


def _sandboxed_kernel(pid: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}").st_uid == sandbox.NOBODY and b"ipykernel" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.slow
def test_an_endless_loop_times_out_and_the_other_students_are_graded(released, tmp_path):
    needs_sandbox()
    sub = tmp_path / "submitted"
    put(sub, "erin", LAB1, submission(released, LAB1, edit=lambda nb: in_solution(nb, "ex1", "", "while True:\n    pass")))
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
    assert cli.main(["labs", "release", str(tmp_path / "r"), "--instructor", str(tmp_path / "i"),
                     "--labs", str(tmp_path / "empty")]) == 2
    assert "no lab source" in capsys.readouterr().err
    (tmp_path / "sub" / "x").mkdir(parents=True)
    (tmp_path / "sub" / "x" / f"{LAB1}.ipynb").write_text("{}")
    assert cli.main(["labs", "grade", str(tmp_path / "sub"), "--out", str(tmp_path / "sub" / "g.csv")]) == 2
    assert "grading writes only outside the submitted folder" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "empty")


def test_the_first_real_cause_is_kept_not_nbgraders_closing_words():
    log = ("[AutogradeApp | ERROR] There was an error processing assignment: /x\n"
           "Traceback (most recent call last):\n  File \"a.py\", line 3, in f\n"
           "    raise NbGraderException(msg)\nKeyError: 'ex1_hidden'\n")
    error = "nbgrader.converters.base.NbGraderException: Please see the the above traceback for details on the errors."
    assert grading._first_cause(log, error) == "KeyError: 'ex1_hidden'"
