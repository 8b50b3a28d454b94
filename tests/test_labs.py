"""ssfer.book.teaching.labs: the book's student and solution pages from one nbgrader source; the shipped labs."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")

from ssfer.book.teaching import judge, labs  # noqa: E402
from ssfer.book.params import declared_parameters  # noqa: E402
from ssfer.book.reproduce import load_profile  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LAB_DIR = REPO / "notebooks" / "labs"
LABS = sorted(LAB_DIR.glob("*.ipynb"))


def _nbg(cell, gid, *, solution=False, grade=False, locked=False, points=None):
    cell.metadata["nbgrader"] = {"grade": grade, "grade_id": gid, "locked": locked, "schema_version": 3,
                                 "solution": solution, "task": False, **({"points": points} if grade else {})}
    return cell


def source_nb() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    title = _nbg(nbformat.v4.new_markdown_cell("# Lab X\n\nIntro."), "intro", locked=True)
    fn = _nbg(nbformat.v4.new_code_cell(
        "def f(x):\n"
        "    y = 2\n"
        "    ### BEGIN SOLUTION\n"
        "    secret_a = x * y\n"
        "    return secret_a\n"
        "    ### END SOLUTION"), "ex1_solution", solution=True)
    fn.outputs = [nbformat.v4.new_output("stream", name="stdout", text="stale\n")]
    fn.execution_count = 7
    test = _nbg(nbformat.v4.new_code_cell(
        "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(secret_b := 3) == 6\n### END HIDDEN TESTS"),
        "ex1_checks", grade=True, locked=True, points=2)
    answer = _nbg(nbformat.v4.new_markdown_cell("**Answer.** secret_d\n\n**Rubric.** 1 point"),
                  "ex2_answer", solution=True, grade=True, points=1)
    numbers = nbformat.v4.new_code_cell("secret_e = 6  # computes what the answer glues in")
    numbers.metadata["tags"] = ["solution-only"]
    nb.cells = [title, fn, test, numbers, answer]
    return nb


def test_student_version_is_nbgraders():
    st = labs.student_version(source_nb())
    assert [c.cell_type for c in st.cells] == ["markdown", "code", "code", "markdown"]
    assert st.cells[1].source == "def f(x):\n    y = 2\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert st.cells[2].source == "assert f(1) == 2"            # hidden tests gone, visible check kept
    assert st.cells[3].source == "YOUR ANSWER HERE"            # model answer and rubric gone
    assert st.cells[1].outputs == [] and st.cells[1].execution_count is None
    assert "secret" not in nbformat.writes(st) and "Rubric" not in nbformat.writes(st)
    assert st.cells[0].source == "# Lab X\n\nIntro."
    assert st.metadata["ssfer"]["lab_version"] == "student"


def test_solution_version_is_the_source_without_outputs():
    sol = labs.solution_version(source_nb())
    assert len(sol.cells) == 5 and sol.cells[3].source.startswith("secret_e = 6")
    assert "secret_a = x * y" in sol.cells[1].source and "secret_b" in sol.cells[2].source
    assert sol.cells[0].source.startswith("# Lab X (solution)")
    assert sol.cells[1].outputs == []


def test_the_source_is_not_modified(tmp_path):
    path = tmp_path / "lab.ipynb"
    nbformat.write(source_nb(), path)
    before = path.read_bytes()
    labs.student_version(path)
    labs.solution_version(path)
    assert path.read_bytes() == before


def test_unbalanced_markers_name_the_file(tmp_path):
    nb = source_nb()
    nb.cells[1].source = "### BEGIN SOLUTION\nx = 1"
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(labs.LabError, match=re.escape(str(path)) + ": no end solution"):
        labs.student_version(path)


# ------------------------------------------------------------------ the shipped labs
def test_there_are_at_least_three_labs():
    assert len(LABS) >= 3, LABS


def _grade_cells(nb):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]


@pytest.mark.parametrize("path", LABS, ids=lambda p: p.stem)
def test_shipped_lab_is_an_nbgrader_source_with_points_hidden_tests_and_a_header(path):
    src = nbformat.read(path, as_version=4)
    assert labs.is_lab(src), f"{path.name} has no exercise"
    assert all(c.get("outputs", []) == [] for c in src.cells), f"{path.name} is committed with outputs"
    # every cell is nbgrader's: locked, solution or grade (the glue code for the answers aside)
    loose = [i for i, c in enumerate(src.cells)
             if "nbgrader" not in c.metadata and labs.ONLY not in c.metadata.get("tags", [])]
    assert not loose, f"{path.name}: cells {loose} carry no nbgrader metadata"
    prose = [c for c in src.cells if c.cell_type == "markdown" and not c.metadata["nbgrader"]["solution"]]
    assert all(c.metadata["nbgrader"]["locked"] for c in prose), "prose cells are locked"
    grades = _grade_cells(src)
    auto = [c for c in grades if c.cell_type == "code"]
    manual = [c for c in grades if c.cell_type == "markdown"]
    assert auto and manual and all(c.metadata["nbgrader"]["points"] > 0 for c in grades)
    for ex in {c.metadata["nbgrader"]["grade_id"].split("_")[0] for c in auto}:
        hidden = [c for c in auto if c.metadata["nbgrader"]["grade_id"] == f"{ex}_hidden"]
        assert hidden and "### BEGIN HIDDEN TESTS" in hidden[0].source, f"{path.name}: {ex} has no hidden tests"
    assert all("Rubric" in c.source for c in manual), f"{path.name}: a hand-graded answer has no rubric"
    header = src.cells[0].source
    total = sum(c.metadata["nbgrader"]["points"] for c in grades)
    assert f"**Points ({total:g})." in header, f"{path.name}: the header does not state its {total} points"
    assert "**Time on task.**" in header and "**Setup.**" in header
    # typed parameters first, then the check, as in every chapter
    assert declared_parameters(path), f"{path.name}: no parameters cell"
    first_code = [c for c in src.cells if c.cell_type == "code"][:2]
    assert "parameters" in first_code[0].metadata.get("tags", [])
    assert "ssfer.book.params.check(globals())" in first_code[1].source


@pytest.mark.parametrize("path", LABS, ids=lambda p: p.stem)
def test_student_version_hides_every_solution_and_hidden_test(path):
    src = nbformat.read(path, as_version=4)
    secret = []
    for cell in src.cells:
        for begin, end in (("### BEGIN SOLUTION", "### END SOLUTION"), ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")):
            for block in re.findall(re.escape(begin) + r"(.*?)" + re.escape(end), cell.source, re.S):
                secret += [line.strip() for line in block.splitlines() if len(line.strip()) > 12]
    assert secret, f"{path.name}: no marked solution code"
    student = labs.student_version(path)
    text = nbformat.writes(student)
    assert not [line for line in secret if line in text], "solution or hidden-test lines leak"
    assert "Rubric" not in text and "myst_nb" not in text and "**Answer.**" not in text
    for i, cell in enumerate(student.cells):
        if cell.cell_type == "code":
            ast.parse(cell.source, filename=f"{path.name} cell {i}")


def run_cells(nb: nbformat.NotebookNode, params: dict, name: str, stop: int | None = None) -> dict:
    """Execute a notebook's code in this process, injecting ``params`` the way
    papermill does (a cell of plain assignments right after the parameters cell).
    Far cheaper than a kernel per notebook, and the libraries are already imported."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import torch

    threads = torch.get_num_threads()  # a lab may set its own; keep the session's
    ns: dict = {"__name__": "__main__"}
    try:
        for i, cell in enumerate(nb.cells[:stop]):
            if cell.cell_type != "code":
                continue
            exec(compile(cell.source, f"{name}[cell {i}]", "exec"), ns)
            if "parameters" in cell.metadata.get("tags", []):
                exec("\n".join(f"{k} = {v!r}" for k, v in params.items()), ns)
            plt.close("all")
    finally:
        torch.set_num_threads(threads)
    return ns


CHEAP_LABS = ["lab1_thresholds", "lab2_negative_learning"]  # simulated streams, no training


@pytest.mark.parametrize("stem", CHEAP_LABS)
def test_cheap_lab_solutions_run_on_the_smoke_profile(stem):
    params = load_profile("smoke", REPO).get(stem, {})
    ns = run_cells(labs.solution_version(LAB_DIR / f"{stem}.ipynb"), params, stem)
    assert all(getattr(ns["P"], k) == v for k, v in params.items())


@pytest.mark.parametrize("stem", CHEAP_LABS)
def test_student_version_stops_at_the_first_exercise(stem):
    params = load_profile("smoke", REPO).get(stem, {})
    with pytest.raises(NotImplementedError):
        run_cells(labs.student_version(LAB_DIR / f"{stem}.ipynb"), params, stem)


# A student who only calls the library's rule: each exercise's hidden tests must fail.
LIBRARY_ONLY = {
    ("lab1_thresholds", "ex1"): '''
        lib = DTAThreshold(self.num_classes, source="unlabeled", momentum=self.momentum, tau_min=self.tau_min,
                           tau_max=self.tau_max, ramp="linear", ramp_start=0.5, warmup=False)
        lib.kappa.copy_(self.kappa)
        lib.update(s)
        self.kappa.copy_(lib.kappa)
        self.tau.copy_(lib.tau)''',
    ("lab2_negative_learning", "ex1"): "\n    return SNLSelector(T=T, tau_neg=tau_neg).select(teacher_logits, accepted)",
    ("lab2_negative_learning", "ex2"): "\n    return negative_loss(student_logits, neg_mask)",
}


def _with_solution(stem: str, ex: str, code: str) -> nbformat.NotebookNode:
    """The solution page with exercise ``ex``'s solution block replaced by ``code``."""
    nb = labs.solution_version(LAB_DIR / f"{stem}.ipynb")
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    sol = nb.cells[ids.index(f"{ex}_solution")]
    sol.source = re.sub(r"\n[ \t]*### BEGIN SOLUTION.*### END SOLUTION", code.rstrip(), sol.source, flags=re.S)
    return nb


@pytest.fixture(scope="module")
def cheap_references(tmp_path_factory) -> dict[str, dict]:
    """What each cheap lab's own solution hands the grader, run here (not in a fresh process)."""
    out = {}
    for stem in CHEAP_LABS:
        path = tmp_path_factory.mktemp("ref") / f"{stem}.jsonl"
        judge.run_cells(nbformat.read(LAB_DIR / f"{stem}.ipynb", as_version=4), path, stem)
        out[stem] = judge.read_answers(path)
    return out


@pytest.mark.parametrize("stem", CHEAP_LABS)
def test_every_test_cell_hands_values_to_the_grader(stem, cheap_references):
    src = nbformat.read(LAB_DIR / f"{stem}.ipynb", as_version=4)
    assert set(cheap_references[stem]) == set(judge.autograded_cells(src))
    assert all(cheap_references[stem].values())


@pytest.mark.parametrize("stem, ex", sorted(LIBRARY_ONLY), ids=lambda v: str(v))
def test_hidden_tests_catch_a_student_who_only_calls_the_library(stem, ex, cheap_references, tmp_path):
    nb = _with_solution(stem, ex, LIBRARY_ONLY[stem, ex])
    # without this exercise's visible checks (they may fail first): its hidden tests alone must catch it
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != f"{ex}_checks"]
    path = tmp_path / "answers.jsonl"
    judge.run_cells(nb, path, stem)
    got = judge.verdict(judge.read_answers(path).get(f"{ex}_hidden", []), cheap_references[stem][f"{ex}_hidden"])
    assert not got.passed, got


def test_lab3_grid_check_passes_before_any_training():
    # Training runs belong to the notebook smoke run (ssfer reproduce --profile
    # smoke); here only the cells before the first `run(` call, which build and
    # check the ablation grid from the solution, and the grid's hidden test.
    nb = labs.solution_version(LAB_DIR / "lab3_ablation.ipynb")
    first_run = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "run(cfg" in c.source)
    ns = run_cells(nb, load_profile("smoke", REPO)["lab3_ablation"], "lab3_ablation", stop=first_run)
    assert sorted(ns["parts"].values()) == [("dta", "none"), ("dta", "snl"), ("fixed", "none"), ("fixed", "snl")]
    assert len({cfg.hash() for cfg in ns["configs"].values()}) == 4
