"""ssfer.labs: student and solution versions from one source; the shipped labs."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from ssfer import labs
from ssfer.params import declared_parameters
from ssfer.reproduce import load_profile

REPO = Path(__file__).resolve().parents[1]
LAB_DIR = REPO / "notebooks" / "labs"
LABS = sorted(LAB_DIR.glob("*.ipynb"))


def source_nb() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    title = nbformat.v4.new_markdown_cell("# Lab X\n\nIntro.")
    fn = nbformat.v4.new_code_cell(
        "def f(x):\n"
        "    y = 2\n"
        "    # BEGIN SOLUTION\n"
        "    secret_a = x * y\n"
        "    return secret_a\n"
        "    # END SOLUTION\n"
        "\n"
        "top = 1\n"
        "# BEGIN SOLUTION\n"
        "secret_b = 3\n"
        "# END SOLUTION")
    fn.outputs = [nbformat.v4.new_output("stream", name="stdout", text="stale\n")]
    fn.execution_count = 7
    whole = nbformat.v4.new_code_cell("secret_c = 5\nprint(secret_c)")
    whole.metadata["tags"] = ["solution", "keep-me"]
    answer = nbformat.v4.new_markdown_cell("**Answer.** secret_d")
    answer.metadata["tags"] = ["solution"]
    numbers = nbformat.v4.new_code_cell("secret_e = 6  # computes what the answer glues in")
    numbers.metadata["tags"] = ["solution-only"]
    nb.cells = [title, fn, whole, answer, nbformat.v4.new_markdown_cell("## Exercise 2"), numbers]
    return nb


def test_student_version_replaces_solutions_and_keeps_the_rest():
    st = labs.make_student(source_nb())
    assert [c.cell_type for c in st.cells] == ["markdown", "code", "code", "markdown"]
    assert st.cells[1].source == (
        "def f(x):\n"
        "    y = 2\n"
        "    # YOUR CODE HERE\n"
        "    raise NotImplementedError\n"
        "\n"
        "top = 1\n"
        "# YOUR CODE HERE\n"
        "raise NotImplementedError")
    assert st.cells[2].source == "# YOUR CODE HERE\nraise NotImplementedError"
    assert st.cells[2].metadata["tags"] == ["keep-me"]
    assert st.cells[1].outputs == [] and st.cells[1].execution_count is None
    assert "secret" not in nbformat.writes(st)
    assert st.cells[0].source == "# Lab X\n\nIntro."
    assert st.metadata["ssfer"]["lab_version"] == "student"


def test_solution_version_strips_markers_only():
    sol = labs.make_solution(source_nb())
    assert len(sol.cells) == 6 and sol.cells[5].source.startswith("secret_e = 6")
    assert sol.cells[1].source == (
        "def f(x):\n    y = 2\n    secret_a = x * y\n    return secret_a\n\ntop = 1\nsecret_b = 3")
    assert sol.cells[2].source == "secret_c = 5\nprint(secret_c)"
    assert sol.cells[3].source == "**Answer.** secret_d"
    assert sol.cells[0].source.startswith("# Lab X (solution)")
    assert sol.cells[1].outputs == []
    assert "SOLUTION" not in "".join(c.source for c in sol.cells)


def test_the_source_is_not_modified(tmp_path):
    path = tmp_path / "lab.ipynb"
    nbformat.write(source_nb(), path)
    before = path.read_bytes()
    labs.make_student(path)
    labs.make_solution(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("src, message", [
    ("# BEGIN SOLUTION\nx = 1", r"line 1: BEGIN SOLUTION is never closed"),
    ("x = 1\n# END SOLUTION", r"line 2: END SOLUTION without BEGIN SOLUTION"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", r"line 2: BEGIN SOLUTION inside the block opened on line 1"),
])
def test_unbalanced_markers_name_file_cell_and_line(tmp_path, src, message):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell(src)]
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(labs.LabError, match=re.escape(f"{path}, cell 1, ") + message):
        labs.make_student(path)


def test_write_versions_and_cli(tmp_path):
    nbformat.write(source_nb(), tmp_path / "lab_x.ipynb")
    assert labs.main([str(tmp_path), str(tmp_path / "out")]) == 0
    assert "raise NotImplementedError" in (tmp_path / "out" / "student" / "lab_x.ipynb").read_text()
    assert "secret_b" in (tmp_path / "out" / "solution" / "lab_x.ipynb").read_text()


# ------------------------------------------------------------------ the shipped labs
def test_there_are_at_least_three_labs():
    assert len(LABS) >= 3, LABS


@pytest.mark.parametrize("path", LABS, ids=lambda p: p.stem)
def test_shipped_lab_versions_are_valid_python_and_hide_every_solution(path):
    src = nbformat.read(path, as_version=4)
    assert labs.is_lab(src), f"{path.name} has no exercise"
    assert all(c.get("outputs", []) == [] for c in src.cells), f"{path.name} is committed with outputs"
    student, solution = labs.make_student(path), labs.make_solution(path)
    hidden = []
    for cell in src.cells:
        if cell.cell_type == "code":
            for begin, end, _ in labs._blocks(cell.source, path.name):
                hidden += [l.strip() for l in cell.source.splitlines()[begin + 1:end] if len(l.strip()) > 12]
    assert hidden, f"{path.name}: no marked solution code"
    student_code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    assert not [l for l in hidden if l in student_code], "solution lines leak into the student version"
    for version in (student, solution):
        for i, cell in enumerate(version.cells):
            if cell.cell_type == "code":
                ast.parse(cell.source, filename=f"{path.name} cell {i}")
    # typed parameters first, then the check, as in every chapter
    assert declared_parameters(path), f"{path.name}: no parameters cell"
    first_code = [c for c in src.cells if c.cell_type == "code"][:2]
    assert "parameters" in first_code[0].metadata.get("tags", [])
    assert "ssfer.params.check(globals())" in first_code[1].source


def run_cells(nb: nbformat.NotebookNode, params: dict, name: str) -> dict:
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
        for i, cell in enumerate(nb.cells):
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
    ns = run_cells(labs.make_solution(LAB_DIR / f"{stem}.ipynb"), params, stem)
    assert all(getattr(ns["P"], k) == v for k, v in params.items())


@pytest.mark.parametrize("stem", CHEAP_LABS)
def test_student_version_stops_at_the_first_exercise(stem):
    params = load_profile("smoke", REPO).get(stem, {})
    with pytest.raises(NotImplementedError):
        run_cells(labs.make_student(LAB_DIR / f"{stem}.ipynb"), params, stem)


def test_lab3_grid_check_passes_before_any_training():
    # Training runs belong to the notebook smoke run (ssfer reproduce --profile
    # smoke); here only the cells before the first `run(` call, which build and
    # check the ablation grid from the solution.
    nb = labs.make_solution(LAB_DIR / "lab3_ablation.ipynb")
    first_run = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "run(cfg" in c.source)
    nb.cells = nb.cells[:first_run]
    ns = run_cells(nb, load_profile("smoke", REPO)["lab3_ablation"], "lab3_ablation")
    assert sorted(ns["parts"].values()) == [("dta", "none"), ("dta", "snl"), ("fixed", "none"), ("fixed", "snl")]
    assert len({cfg.hash() for cfg in ns["configs"].values()}) == 4
