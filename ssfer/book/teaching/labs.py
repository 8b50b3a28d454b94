"""The labs' pages from their nbgrader sources: what nbgrader itself does not do.

A lab in ``notebooks/labs/`` is an nbgrader *source* notebook that runs as it
is, solutions included: solution cells (code between ``### BEGIN SOLUTION`` and
``### END SOLUTION``, markdown model answers), autograded test cells with
points (hidden parts between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN
TESTS``), locked prose. nbgrader writes the student version
(``ssfer.book.teaching.grading.release``) and grades submissions (``ssfer.book.teaching.grading.grade``).
What is left here:

- ``student_version``: the student notebook for the public book, made in-process by
  nbgrader's own preprocessors (the ones ``generate_assignment`` runs, without its
  gradebook), so the book's page is the notebook a student is handed.
- ``solution_version``: the teacher's page: the source, outputs cleared, its title
  marked "(solution)" so the two versions differ in a table of contents.
- cells tagged ``solution-only`` (code that computes the numbers a model answer
  glues in) belong to the solution alone; ``RemoveSolutionOnly`` drops them, and
  ``generate_assignment`` runs it too.

nbgrader is imported inside the functions, so ``import ssfer`` works without it.
"""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat

ONLY = "solution-only"


class LabError(ValueError):
    """A lab source's nbgrader markers or metadata are unbalanced or missing."""


def _load(src: str | Path | nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, str]:
    if isinstance(src, nbformat.NotebookNode):
        return copy.deepcopy(src), src.get("metadata", {}).get("ssfer", {}).get("lab_source", "<notebook>")
    return nbformat.read(Path(src), as_version=4), str(src)


def _clear(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.get("metadata", {}).pop("execution", None)


def is_lab(src: str | Path | nbformat.NotebookNode) -> bool:
    """Whether a notebook is an nbgrader source: at least one solution cell."""
    nb, _ = _load(src)
    return any(c.get("metadata", {}).get("nbgrader", {}).get("solution") for c in nb.cells)


def remove_solution_only():
    """nbgrader preprocessor class dropping the ``solution-only`` cells (built
    here, so that nbgrader is imported only when a student version is made)."""
    from nbgrader.preprocessors import NbGraderPreprocessor

    class RemoveSolutionOnly(NbGraderPreprocessor):
        def preprocess(self, nb, resources):
            nb.cells = [c for c in nb.cells if ONLY not in c.get("metadata", {}).get("tags", [])]
            return nb, resources

    return RemoveSolutionOnly


def student_version(src: str | Path | nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student notebook: nbgrader's ClearSolutions, ClearHiddenTests,
    ClearMarkScheme, LockCells and ClearOutput, after ``RemoveSolutionOnly``."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme, ClearOutput, ClearSolutions, LockCells

    nb, origin = _load(src)
    resources: dict = {}
    try:
        for pp in (remove_solution_only()(), LockCells(), ClearSolutions(), ClearOutput(), ClearHiddenTests(),
                   ClearMarkScheme()):
            nb, resources = pp.preprocess(nb, resources)
    except RuntimeError as e:  # nbgrader's message names neither the file nor the cell
        raise LabError(f"{origin}: {e}") from e
    nb.metadata.setdefault("ssfer", {}).update({"lab_version": "student", "lab_source": origin})
    return nb


def solution_version(src: str | Path | nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The teacher's page: the source as it runs (markers are comments), no outputs."""
    nb, origin = _load(src)
    _clear(nb)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        heading = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
        if heading is not None:
            if not lines[heading].rstrip().endswith("(solution)"):
                lines[heading] = lines[heading].rstrip() + " (solution)"
                cell.source = "\n".join(lines)
            break
    nb.metadata.setdefault("ssfer", {}).update({"lab_version": "solution", "lab_source": origin})
    return nb
