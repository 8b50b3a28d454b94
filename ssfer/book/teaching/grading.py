"""Hand out and grade the labs with nbgrader: ``ssfer labs release`` and ``ssfer labs grade``.

Both drive nbgrader's own apps through its Python API in a throwaway nbgrader
course folder (``source/``, ``release/``, ``submitted/``, ``autograded/``,
``feedback/`` and the SQLite ``gradebook.db``); nothing here grades a cell.

- ``release(out_dir)``: nbgrader's ``generate_assignment`` on every lab source;
  ``out_dir/<lab>/`` gets the student notebook (no solution, no hidden test) and
  a README, ``out_dir/instructor/`` the nbgrader course (``source/`` holds the
  solutions).
- ``grade(submitted_dir, csv_path)``: ``submitted_dir/<student>/<lab>.ipynb`` ->
  nbgrader's ``autograde`` (a fresh kernel per notebook; grade and locked cells,
  hidden tests included, restored from the source whatever the student did to
  them) and ``generate_feedback``; one CSV row per student and lab, the feedback
  HTML in ``feedback/<student>/<lab>.html`` and the course, gradebook included,
  in ``nbgrader/``, both next to the CSV.

Two additions to nbgrader. It restores a test or locked cell that a student
edited, but grades one that was deleted by hand; ``restore_deleted_cells`` puts
it back first (nbgrader then fills in its source, hidden tests included). And a
time budget per notebook (``Execute``'s own
timeout is per cell): the cell running when it is spent is interrupted, the
cells after it are not run and get an error output, so their tests score 0 and
the CSV says "timed out".
"""
from __future__ import annotations

import csv
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ssfer.book.teaching import labs

REPO_LABS = Path(__file__).resolve().parents[3] / "notebooks" / "labs"
TIMEOUT = 300
TIMED_OUT = "CellTimeoutError"
STUDENT_README = """\
# {title}

{header}

## Running it

1. Install the library and Jupyter: `pip install "ssfer[book]"` (Python 3.10 or newer).
2. Open `{name}.ipynb` in Jupyter (`jupyter lab {name}.ipynb`) and run the cells in order.
3. Fill in the cells marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()` line)
   and `YOUR ANSWER HERE`; run the check under each exercise until it passes.
4. Hand in `{name}.ipynb` under that name. Grading runs it in a fresh kernel for at most
   {timeout} seconds, restores every cell you were not asked to edit, and runs further,
   hidden tests of your code.
"""


class GradingError(ValueError):
    """A lab source, a submissions folder or an option is unusable."""


def _nbgrader_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def restore_deleted_cells(submission: nbformat.NotebookNode, released: nbformat.NotebookNode) -> list[str]:
    """Put back, in place, the test and locked cells of ``released`` missing from
    ``submission``, each after the cell it followed; returns their grade ids."""
    present = {_nbgrader_id(c) for c in submission.cells} - {None}
    after: dict[str | None, list] = {}  # grade id of the cell they follow -> cells to put back
    previous = None
    for cell in released.cells:
        gid, md = _nbgrader_id(cell), cell.get("metadata", {}).get("nbgrader", {})
        if gid is None:
            continue
        if gid in present:
            previous = gid
        elif md.get("grade") or (md.get("locked") and not md.get("solution")):
            after.setdefault(previous, []).append(nbformat.from_dict(cell))
    restored = [_nbgrader_id(c) for cells in after.values() for c in cells]
    if restored:
        cells = after.pop(None, [])
        for cell in submission.cells:
            cells.append(cell)
            cells += after.pop(_nbgrader_id(cell), [])
        submission.cells = cells
    return restored


def _nbgrader_api(course: Path, timeout: int = TIMEOUT):
    """nbgrader's API on the course folder ``course``, configured for the labs."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.converters import Autograde, GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    cfg = Config()
    cfg.CourseDirectory.root = str(course)
    cfg.CourseDirectory.course_id = "ssfer-labs"
    cfg.Exchange.root = str(course / "exchange")  # never used; keeps nbgrader away from /srv
    cfg.GenerateAssignment.preprocessors = [labs.remove_solution_only(),
                                            *GenerateAssignment.class_traits()["preprocessors"].default()]
    execute = [_budgeted_execute(timeout)]
    cfg.Autograde.autograde_preprocessors = execute + [
        p for p in Autograde.class_traits()["autograde_preprocessors"].default() if p.__name__ != "Execute"]
    api = NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)
    return api


def _budgeted_execute(budget: float):
    """nbgrader's Execute with one budget of ``budget`` seconds for the whole notebook."""
    from jupyter_core.utils import run_sync
    from nbgrader.preprocessors import Execute

    class BudgetedExecute(Execute):
        def preprocess(self, nb, resources, retries=None):
            self._deadline = time.monotonic() + budget
            return super().preprocess(nb, resources, retries)

        def _get_timeout(self, cell):
            return max(1, math.ceil(min(self._deadline - time.monotonic(), budget)))

        async def _async_handle_timeout(self, timeout, cell=None):
            # the kernel is still unwinding the interrupted cell: run nothing more,
            # or the next cells' replies get mixed up with its own
            self._deadline = -math.inf
            return await super()._async_handle_timeout(timeout, cell)

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            if cell.cell_type == "code" and time.monotonic() >= self._deadline:
                # an empty test cell would count as passed: mark it failed instead
                cell.outputs = [nbformat.v4.new_output(
                    "error", ename=TIMED_OUT, evalue=f"not run: the notebook's {budget:g} s were spent",
                    traceback=[f"{TIMED_OUT}: not run, the notebook's {budget:g} s were spent"])]
                return cell
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

        # nbclient binds its synchronous execute_cell to its own coroutine: bind it to this one
        execute_cell = run_sync(async_execute_cell)

    return BudgetedExecute


def lab_sources(src_dir: str | Path | None = None) -> dict[str, Path]:
    """``{lab name: source notebook}`` of the nbgrader sources in ``src_dir``."""
    src_dir = Path(src_dir) if src_dir else REPO_LABS
    found = {p.stem: p for p in sorted(src_dir.glob("*.ipynb")) if labs.is_lab(p)}
    if not found:
        raise GradingError(f"{src_dir}: no lab source (an nbgrader notebook with solution cells) here")
    return found


def _setup_course(course: Path, sources: dict[str, Path], timeout: int = TIMEOUT):
    """A fresh nbgrader course with every lab generated (the gradebook learns the cells)."""
    shutil.rmtree(course, ignore_errors=True)
    for name, path in sources.items():
        (course / "source" / name).mkdir(parents=True)
        shutil.copy2(path, course / "source" / name / f"{name}.ipynb")
    api = _nbgrader_api(course, timeout)
    for name in sources:
        result = api.generate_assignment(name)
        if not result["success"]:
            raise GradingError(f"{sources[name]}: nbgrader generate_assignment failed:\n"
                               f"{result.get('log')}\n{result.get('error')}")
    return api


def _environment():
    """What nbgrader and its kernels need: its ``alembic`` command, found on PATH
    (the interpreter's bin folder, which an unactivated venv leaves off it), and
    the ssfer this grader runs, whatever folder the notebook lies in."""
    from ssfer.book.reproduce import temporary_env

    package_root = str(Path(labs.__file__).resolve().parents[3])
    return temporary_env(**{k: os.pathsep.join(p for p in (first, os.environ.get(k)) if p)
                            for k, first in (("PATH", str(Path(sys.executable).parent)),
                                             ("PYTHONPATH", package_root))})


def _header(nb: nbformat.NotebookNode) -> tuple[str, str]:
    first = next(c.source for c in nb.cells if c.cell_type == "markdown")
    title, _, rest = first.partition("\n")
    return title.lstrip("# ").strip(), rest.strip()


def release(out_dir: str | Path, src_dir: str | Path | None = None) -> list[Path]:
    """Write ``out_dir/<lab>/<lab>.ipynb`` and its README for every lab; the
    nbgrader course (solutions, gradebook) goes to ``out_dir/instructor``."""
    out_dir = Path(out_dir)
    sources = lab_sources(src_dir)
    course = out_dir / "instructor"
    with _environment():
        _setup_course(course, sources)
    written = []
    for name, src in sources.items():
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(course / "release" / name / f"{name}.ipynb", folder / f"{name}.ipynb")
        title, header = _header(nbformat.read(src, as_version=4))
        (folder / "README.md").write_text(STUDENT_README.format(title=title, header=header, name=name,
                                                                timeout=TIMEOUT))
        written += [folder / f"{name}.ipynb", folder / "README.md"]
    (course / "README.md").write_text(
        "# Instructor folder (do not hand out)\n\nAn nbgrader course: `source/<lab>/<lab>.ipynb` are the labs "
        "with their solutions, rubrics and hidden tests; `release/` what the students got; `gradebook.db` "
        "nbgrader's gradebook. Grade collected notebooks with `ssfer labs grade SUBMITTED_DIR --out grades.csv`.\n")
    return written


@dataclass
class Row:
    student: str
    lab: str
    scores: dict[str, str] = field(default_factory=dict)
    total: str = ""
    status: str = "ok"


def _submissions(submitted: Path) -> list[tuple[str, Path]]:
    if not submitted.is_dir():
        raise GradingError(f"{submitted}: no such folder (expected SUBMITTED_DIR/<student>/<lab>.ipynb)")
    found = [(d.name, f) for d in sorted(submitted.iterdir()) if d.is_dir() and not d.name.startswith(".")
             for f in sorted(d.iterdir()) if f.is_file() and not f.name.startswith(".")]
    if not found:
        raise GradingError(f"{submitted}: no submission (expected SUBMITTED_DIR/<student>/<lab>.ipynb)")
    return found


def _readable(path: Path) -> bool:
    try:
        nbformat.validate(nbformat.read(path, as_version=4))
        return True
    except Exception:  # noqa: BLE001 - JSON, schema and encoding errors all mean "not a notebook"
        return False


def _scores(course: Path, lab: str, student: str) -> tuple[dict[str, str], str]:
    """Per exercise (grade ids ``exN_...``) and total; a manual grade not given yet is empty."""
    from nbgrader.api import Gradebook

    per: dict[str, float | None] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for g in gb.find_submission_notebook(lab, lab, student).grades:
            ex = g.name.split("_")[0]
            pending = g.needs_manual_grade and g.manual_score is None
            if pending:
                per.setdefault(ex, None)
            else:
                per[ex] = (per.get(ex) or 0.0) + float(g.score)
    scores = {ex: "" if v is None else f"{v:g}" for ex, v in per.items()}
    return scores, f"{sum(v for v in per.values() if v is not None):g}"


def _timed_out(course: Path, lab: str, student: str) -> bool:
    path = course / "autograded" / student / lab / f"{lab}.ipynb"
    nb = nbformat.read(path, as_version=4)
    return any(o.get("ename") == TIMED_OUT for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def _first_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "unknown"


def grade(submitted_dir: str | Path, csv_path: str | Path, timeout: int = TIMEOUT,
          src_dir: str | Path | None = None, log=print) -> list[Row]:
    """Autograde every ``submitted_dir/<student>/<lab>.ipynb``; write the CSV and the feedback."""
    if timeout <= 0:
        raise GradingError(f"--timeout {timeout}: expected a positive number of seconds")
    submitted, csv_path = Path(submitted_dir), Path(csv_path)
    found = _submissions(submitted)
    sources = lab_sources(src_dir)
    out = csv_path.parent
    course = out / "nbgrader"
    rows = []
    with _environment():
        api = _setup_course(course, sources, timeout)
        for student, path in found:
            lab, row = path.stem, Row(student, path.stem)
            rows.append(row)
            if lab not in sources:
                row.status = f"error: no lab named {lab!r} (labs: {', '.join(sources)})"
            elif path.suffix != ".ipynb" or not _readable(path):
                row.status = "not a notebook"
            else:
                dest = course / "submitted" / student / lab
                dest.mkdir(parents=True, exist_ok=True)
                nb = nbformat.read(path, as_version=4)
                restored = restore_deleted_cells(nb, nbformat.read(course / "release" / lab / f"{lab}.ipynb",
                                                                   as_version=4))
                if restored:
                    log(f"{student}/{lab}: deleted cells put back: {', '.join(restored)}")
                nbformat.write(nb, dest / f"{lab}.ipynb")
                t0 = time.monotonic()
                result = api.autograde(lab, student)
                if not result["success"]:
                    row.status = f"error: {_first_line(result.get('error') or result.get('log'))}"
                else:
                    row.scores, row.total = _scores(course, lab, student)
                    if _timed_out(course, lab, student):
                        row.status = "timed out"
                    feedback = api.generate_feedback(lab, student)
                    html = course / "feedback" / student / lab / f"{lab}.html"
                    if feedback["success"] and html.exists():
                        target = out / "feedback" / student / f"{lab}.html"
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(html, target)
                log(f"{student}/{lab}: {row.total or '-'} ({row.status}) in {time.monotonic() - t0:.0f} s")
                continue
            log(f"{student}/{path.name}: {row.status}")
    write_csv(rows, csv_path)
    return rows


def write_csv(rows: list[Row], csv_path: Path) -> None:
    exercises = sorted({ex for r in rows for ex in r.scores}, key=lambda e: (len(e), e))
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "lab", *exercises, "total", "status"])
        for r in rows:
            w.writerow([r.student, r.lab, *(r.scores.get(ex, "") for ex in exercises), r.total, r.status])
