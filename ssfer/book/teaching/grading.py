"""Hand out and grade the labs with nbgrader: ``ssfer labs release`` and ``ssfer labs grade``.

Both drive nbgrader's own apps through its Python API in an nbgrader course
folder (``source/``, ``release/``, ``submitted/``, ``autograded/``,
``feedback/`` and the SQLite ``gradebook.db``).

- ``release(handout, instructor, variant)``: nbgrader's ``generate_assignment``
  on every lab source (``variant`` > 0: the constants drawn by
  ``ssfer.book.teaching.variants``); ``handout/<lab>/`` gets the student
  notebook (no solution, no hidden test) and a README; ``instructor/`` is the
  nbgrader course (``source/`` holds the solutions). The two never nest.
- ``grade(submitted_dir, csv_path)``: ``submitted_dir/<student>/<lab>.ipynb``
  -> nbgrader's ``autograde`` (grade and locked cells, hidden tests included,
  restored from the source whatever the student did to them) and
  ``generate_feedback``; one CSV row per student and lab, the feedback HTML in
  ``feedback/<student>/<lab>.html``, the course in ``nbgrader/``, next to the CSV.

What grading adds to nbgrader, because a submission is hostile until shown
otherwise (``book/teaching.md``, "What is isolated"):

- every kernel starts in its own sandbox (``ssfer.book.teaching.sandbox``):
  a private copy of the student's folder, no network, its own PID namespace,
  limits; the submitted folder, the gradebook and the other submissions are
  out of its sight, and only the grader, outside, writes them;
- no verdict comes from the kernel: test cells hand the student's values to the
  grader, which compares them with the source solution's, computed in a fresh
  process (``ssfer.book.teaching.judge``), and writes the points into the
  gradebook itself;
- a time budget per notebook (``Execute``'s own timeout is per cell), a hard
  stop after it, a cap on what the kernel may print;
- deleted test and locked cells put back before nbgrader grades
  (``restore_deleted_cells``; nbgrader would grade such a notebook by hand);
- rows that say what happened: the first real cause of an error, a resource
  limit reached, a time budget spent; hand grades kept (``ssfer.book.teaching.manual``).
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ssfer.book.teaching import answers, judge, labs, manual, sandbox, variants
from ssfer.io import atomic_write_text

REPO_LABS = Path(__file__).resolve().parents[3] / "notebooks" / "labs"
TIMEOUT = 300
TIMED_OUT = "CellTimeoutError"
GRACE = 30              # seconds after the budget before a kernel that ignores interrupts is killed
OUTPUT_LIMIT = 16 << 20  # bytes of output kept per notebook
NOT_ISOLATED = "not isolated (--no-sandbox)"
COURSE_MARK = ".ssfer-course"
STUDENT_README = """\
# {title}

{header}

## Running it

1. Install the library and Jupyter: `pip install "ssfer[book]"` (Python 3.10 or newer).
2. Open `{name}.ipynb` in Jupyter (`jupyter lab {name}.ipynb`) and run the cells in order.
3. Fill in the cells marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()` line)
   and `YOUR ANSWER HERE`; run the check under each exercise until it passes.
4. Hand in `{name}.ipynb` under that name. Grading runs it in a fresh, isolated kernel (no
   network; it sees only the files you handed in) for at most {timeout} seconds, restores every
   cell you were not asked to edit, runs further, hidden tests of your code, and compares what
   your code returns in every test with what the solution returns.
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


# ------------------------------------------------------------------ executing a submission
@dataclass
class Run:
    """What the grader knows of the notebook being executed: its sandbox, the cell
    running now, and the first cause of a failure nbgrader would only call a traceback."""

    box: sandbox.Sandbox | None = None
    jail: sandbox.Jail | None = None
    cell: str = ""
    failure: str = ""
    killed: bool = False

    def reset(self, box: sandbox.Sandbox, jail: sandbox.Jail) -> None:
        self.box, self.jail, self.cell, self.failure, self.killed = box, jail, "", "", False


def _label(cell, index: int) -> str:
    return _nbgrader_id(cell) or f"cell {index + 1}"


def _output_size(msg: dict) -> int:
    content = msg.get("content", {})
    return len(str(content.get("text", ""))) + sum(len(str(v)) for v in content.get("data", {}).values()) + \
        sum(len(str(line)) for line in content.get("traceback", []))


def _budgeted_execute(budget: float, run: Run):
    """nbgrader's Execute with one budget of ``budget`` seconds for the whole
    notebook, its kernel in ``run``'s sandbox, a hard stop ``GRACE`` seconds after
    the budget and at most ``OUTPUT_LIMIT`` bytes of output."""
    from jupyter_core.utils import run_sync
    from nbclient.exceptions import DeadKernelError
    from nbgrader.preprocessors import Execute

    class BudgetedExecute(Execute):
        def preprocess(self, nb, resources, retries=None):
            self._deadline = time.monotonic() + budget
            self._output_bytes, self._capped = 0, False
            watchdog = threading.Timer(budget + GRACE, self._kill)
            watchdog.daemon = True
            watchdog.start()
            try:
                return super().preprocess(nb, resources, retries)
            finally:
                watchdog.cancel()

        def create_kernel_manager(self):
            if run.box is None:
                return super().create_kernel_manager()
            self.km = sandbox.kernel_manager(run.box, run.jail, kernel_name=self.kernel_name or "python3",
                                             config=self.config)
            return self.km

        def _kill(self):
            # the kernel ignored the interrupt: end its sandbox, and every process in it
            process = getattr(getattr(self.km, "provisioner", None), "process", None)
            if process is not None and process.poll() is None:
                run.killed = True
                os.kill(process.pid, signal.SIGKILL)

        async def async_start_new_kernel_client(self):
            try:
                return await super().async_start_new_kernel_client()
            except Exception as e:
                tail = sandbox.log_tail(run.jail) if run.jail else ""
                run.failure = run.failure or f"sandbox could not start: {tail or e}"
                raise

        def _get_timeout(self, cell):
            return max(1, math.ceil(min(self._deadline - time.monotonic(), budget)))

        async def _async_handle_timeout(self, timeout, cell=None):
            # the kernel is still unwinding the interrupted cell: run nothing more,
            # or the next cells' replies get mixed up with its own
            self._deadline = -math.inf
            return await super()._async_handle_timeout(timeout, cell)

        def output(self, outs, msg, display_id, cell_index):
            self._output_bytes += _output_size(msg)
            if self._output_bytes > OUTPUT_LIMIT:
                if not self._capped:
                    self._capped = True
                    outs.append(nbformat.v4.new_output("stream", name="stderr", text=(
                        f"[grader: output beyond {OUTPUT_LIMIT >> 20} MiB dropped]\n")))
                return None
            return super().output(outs, msg, display_id, cell_index)

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            if cell.cell_type == "code" and time.monotonic() >= self._deadline:
                # an empty test cell would count as passed: mark it failed instead
                cell.outputs = [nbformat.v4.new_output(
                    "error", ename=TIMED_OUT, evalue=f"not run: the notebook's {budget:g} s were spent",
                    traceback=[f"{TIMED_OUT}: not run, the notebook's {budget:g} s were spent"])]
                return cell
            run.cell = _label(cell, cell_index)
            try:
                return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            except DeadKernelError:
                why = f" (stopped {GRACE} s after the {budget:g} s budget)" if run.killed else ""
                tail = sandbox.log_tail(run.jail) if run.jail else ""
                run.failure = run.failure or (f"the kernel died in cell {run.cell}{why}"
                                              + (f": {tail}" if tail and not why else ""))
                raise

        # nbclient binds its synchronous execute_cell to its own coroutine: bind it to this one
        execute_cell = run_sync(async_execute_cell)

    return BudgetedExecute


def _nbgrader_api(course: Path, timeout: int = TIMEOUT, run: Run | None = None):
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
    execute = [_budgeted_execute(timeout, run or Run())]
    cfg.Autograde.autograde_preprocessors = execute + [
        p for p in Autograde.class_traits()["autograde_preprocessors"].default() if p.__name__ != "Execute"]
    return NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)


# ------------------------------------------------------------------ sources, variants, courses
def lab_sources(src_dir: str | Path | None = None) -> dict[str, Path]:
    """``{lab name: source notebook}``: the nbgrader sources in ``src_dir``, or the
    ``source/<lab>/<lab>.ipynb`` of an instructor folder that ``release`` wrote."""
    src_dir = Path(src_dir) if src_dir else REPO_LABS
    candidates = sorted(src_dir.glob("*.ipynb")) or sorted(src_dir.glob("source/*/*.ipynb"))
    found = {p.stem: p for p in candidates if labs.is_lab(p)}
    if not found:
        raise GradingError(f"{src_dir}: no lab source (an nbgrader notebook with solution cells) here")
    return found


def _materialize(sources: dict[str, Path], variant: int) -> dict[str, nbformat.NotebookNode]:
    """The sources asking variant ``variant``'s constants (0: as they are)."""
    out = {}
    for name, path in sources.items():
        nb = nbformat.read(path, as_version=4)
        have = int(nb.metadata.get("ssfer", {}).get("lab_variant", 0))
        if variant and have:
            raise GradingError(f"{path}: already variant {have} (an instructor folder); grade it without --variant")
        out[name] = variants.variant(nb, name, variant) if variant else nb
    return out


def _setup_course(course: Path, sources: dict[str, nbformat.NotebookNode], timeout: int = TIMEOUT,
                  run: Run | None = None):
    """A fresh nbgrader course with every lab generated (the gradebook learns the cells)."""
    if course.exists():
        shutil.rmtree(course)
    for name, nb in sources.items():
        (course / "source" / name).mkdir(parents=True)
        nbformat.write(nb, course / "source" / name / f"{name}.ipynb")
    (course / COURSE_MARK).write_text("written by ssfer labs; replaced by the next run\n")
    api = _nbgrader_api(course, timeout, run)
    for name in sources:
        result = api.generate_assignment(name)
        if not result["success"]:
            raise GradingError(f"{name}: nbgrader generate_assignment failed: "
                               f"{_first_cause(result.get('log'), result.get('error'))}")
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


def _nested(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents or a in b.parents


def _writable_course(course: Path) -> None:
    """Refuse to replace a folder that holds anything but a course these commands wrote."""
    if course.exists() and (not course.is_dir() or (any(course.iterdir()) and not (course / COURSE_MARK).exists())):
        raise GradingError(f"{course}: exists and is not a course written by ssfer labs; "
                           "name an empty or new folder")


def release(out_dir: str | Path, instructor: str | Path, src_dir: str | Path | None = None,
            variant: int = 0) -> list[Path]:
    """Write ``out_dir/<lab>/<lab>.ipynb`` and its README for every lab (variant
    ``variant``); the nbgrader course (solutions, gradebook) goes to ``instructor``,
    which must not lie inside ``out_dir`` (nor ``out_dir`` inside it)."""
    out_dir, course = Path(out_dir), Path(instructor)
    if _nested(out_dir, course):
        raise GradingError(f"{course} and {out_dir} nest: the instructor folder (solutions, hidden tests) "
                           "must lie outside the handout, and the handout outside it")
    sources = lab_sources(src_dir)
    nbs = _materialize(sources, variant)
    _writable_course(course)
    try:
        for folder in (out_dir, course):  # a folder it cannot write fails here, before any work
            folder.mkdir(parents=True, exist_ok=True)
        with _environment():
            _setup_course(course, nbs)
        written = [*_write_handout(out_dir, course, nbs), *_write_instructor_readme(course, variant)]
    except OSError as e:
        raise GradingError(f"{e.filename or out_dir}: cannot write ({e.strerror or e})") from e
    return written


def _write_handout(out_dir: Path, course: Path, nbs: dict[str, nbformat.NotebookNode]) -> list[Path]:
    written = []
    for name, nb in nbs.items():
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(course / "release" / name / f"{name}.ipynb", folder / f"{name}.ipynb")
        title, header = _header(nb)
        (folder / "README.md").write_text(STUDENT_README.format(title=title, header=header, name=name,
                                                                timeout=TIMEOUT))
        written += [folder / f"{name}.ipynb", folder / "README.md"]
    return written


def _write_instructor_readme(course: Path, variant: int) -> list[Path]:
    text = ("# Instructor folder (do not hand out)\n\nAn nbgrader course: `source/<lab>/<lab>.ipynb` are the labs "
            "with their solutions, rubrics and hidden tests; `release/` what the students got; `gradebook.db` "
            f"nbgrader's gradebook. Variant {variant}"
            + (" (the published constants)" if variant == 0 else " (constants drawn for this course)") +
            ". Grade collected notebooks with\n`ssfer labs grade SUBMITTED_DIR --labs THIS_FOLDER --out "
            "grades/grades.csv`.\n")
    (course / "README.md").write_text(text)
    return [course / "README.md"]


# ------------------------------------------------------------------ grading
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


def _first_cause(log: str | None, error: str | None) -> str:
    """The first exception nbgrader logged, not its closing "see the above traceback"."""
    text = "\n".join(t for t in (log, error) if t)
    for line in text.splitlines():
        m = re.match(r"\s*((?:\w+\.)*\w+(?:Error|Exception|Exit)\b:?.*)", line)
        if m and "NbGraderException" not in line and "see the above traceback" not in line.lower():
            return m.group(1).strip()[:300]
    lines = [line.strip() for line in text.splitlines() if line.strip() and "above traceback" not in line]
    return lines[0][:300] if lines else "nbgrader failed without a message"


def stored_sources(course: Path, lab: str) -> str:
    """A digest of the source cells (tests included) that the gradebook holds for ``lab``."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        cells = sorted((c.name, c.cell_type, c.source or "", c.checksum or "")
                       for c in gb.find_notebook(lab, lab).source_cells)
    return hashlib.sha256(repr(cells).encode()).hexdigest()


def _cells(nb: nbformat.NotebookNode) -> tuple[dict[str, float], dict[str, float]]:
    """``({autograded grade id: points}, {hand-graded grade id: points})`` of a source."""
    auto = judge.autograded_cells(nb)
    hand = {_nbgrader_id(c): float(c.metadata["nbgrader"].get("points", 0)) for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade") and _nbgrader_id(c) not in auto}
    return auto, hand


def _reference_key(source: Path) -> str:
    """What the reference answers of ``source`` depend on: its bytes, the library's code, the versions."""
    from importlib.metadata import PackageNotFoundError, version

    from ssfer import codegraph

    nb = nbformat.read(source, as_version=4)
    roots = codegraph.imports_of_cells([c.source for c in nb.cells if c.cell_type == "code"])
    parts = [source.read_bytes(), codegraph.code_digest(codegraph.closure(roots | {"ssfer.book.teaching.judge"})),
             sys.version]
    for dist in ("torch", "numpy", "pandas", "scipy"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            pass
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


@dataclass
class Lab:
    """What grading needs of one lab: its source in the course, its cells and its reference answers."""

    name: str
    source: Path
    auto: dict[str, float]
    reference: dict | None = None
    stored: str = ""


def _limit_hit(nb: nbformat.NotebookNode, limits: sandbox.Limits) -> str:
    """``"memory limit (8 GiB) reached in cell ex1_solution: ..."``, or "" when no limit was hit."""
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") != "error":
                continue
            ename, evalue = out.get("ename", ""), str(out.get("evalue", ""))
            if ename == "MemoryError" or re.search(r"allocate memory|bad_alloc", evalue, re.I):
                what = f"memory limit ({limits.memory_gib:g} GiB)"
            elif (ename == "BlockingIOError" and "temporarily unavailable" in evalue) or "new thread" in evalue:
                what = f"process limit ({limits.processes})"
            else:
                continue
            return f"{what} reached in cell {_label(cell, i)}: {ename}: {evalue}"[:300]
    return ""


def _timed_out(nb: nbformat.NotebookNode) -> bool:
    return any(o.get("ename") == TIMED_OUT for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def _annotate(nb: nbformat.NotebookNode, lab: Lab, verdicts: dict[str, judge.Verdict]) -> None:
    """Say under each test cell, in the notebook the feedback is made of, what the grader found."""
    for cell in nb.cells:
        gid = _nbgrader_id(cell)
        if gid in verdicts:
            v, points = verdicts[gid], lab.auto[gid]
            text = (f"[grader, outside your kernel: {v.why}; {points if v.passed else 0:g} of {points:g} points]\n")
            cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text))


def _apply_scores(course: Path, lab: Lab, student: str, verdicts: dict[str, judge.Verdict],
                  hand: dict[str, float]) -> tuple[dict[str, str], str]:
    """Write the grader's points (and the teacher's) into the gradebook; the row's scores and total."""
    from nbgrader.api import Gradebook

    per: dict[str, list[float | None]] = {}  # exercise -> the points of its cells (None: awaits the teacher)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for g in gb.find_submission_notebook(lab.name, lab.name, student).grades:
            if g.name in lab.auto:
                g.auto_score = lab.auto[g.name] if verdicts[g.name].passed else 0.0
                points = g.auto_score
            elif g.name in hand:
                g.manual_score, g.needs_manual_grade = hand[g.name], False
                points = hand[g.name]
            else:  # an answer that awaits the teacher: empty, even where nbgrader gave 0 to an untouched one
                g.manual_score, g.needs_manual_grade, points = None, True, None
            per.setdefault(g.name.split("_")[0], []).append(points)
        gb.db.commit()
    scores = {ex: "" if None in v else f"{sum(v):g}" for ex, v in per.items()}
    return scores, f"{sum(p for v in per.values() for p in v if p is not None):g}"


@dataclass
class Grader:
    """One grading run: the course, the labs, the sandbox and the hand grades."""

    course: Path
    out: Path
    labs: dict[str, Lab]
    box: sandbox.Sandbox
    hand: dict[manual.Key, float]
    run: Run
    api: object = None
    log: object = print

    def grade_one(self, student: str, path: Path) -> Row:
        lab, row = path.stem, Row(student, path.stem)
        if lab not in self.labs:
            row.status = f"error: no lab named {lab!r} (labs: {', '.join(self.labs)})"
        elif path.suffix != ".ipynb" or not _readable(path):
            row.status = "not a notebook"
        else:
            t0 = time.monotonic()
            self._autograde(row, path)
            self.log(f"{student}/{lab}: {row.total or '-'} ({row.status}) in {time.monotonic() - t0:.1f} s")
            return self._caveat(row)
        self.log(f"{student}/{path.name}: {row.status}")
        return self._caveat(row)

    def _caveat(self, row: Row) -> Row:
        if not self.box.isolated:
            row.status = f"{row.status}; {NOT_ISOLATED}"
        return row

    def _copy_in(self, student: str, lab: Lab, path: Path) -> None:
        """The submission, deleted cells put back, into the course (written by the grader only)."""
        nb = nbformat.read(path, as_version=4)
        released = nbformat.read(self.course / "release" / lab.name / f"{lab.name}.ipynb", as_version=4)
        restored = restore_deleted_cells(nb, released)
        if restored:
            self.log(f"{student}/{lab.name}: deleted cells put back: {', '.join(restored)}")
        dest = self.course / "submitted" / student / lab.name
        dest.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest / f"{lab.name}.ipynb")

    def _autograde(self, row: Row, path: Path) -> None:
        lab = self.labs[row.lab]
        if stored_sources(self.course, lab.name) != lab.stored:
            row.status = "error: the stored test source does not match the release"
            return
        self._copy_in(row.student, lab, path)
        try:
            self.run.reset(self.box, self.box.open(path.parent))
        except OSError as e:
            row.status = f"error: the student's folder could not be copied: {e.strerror or e} ({e.filename})"
            return
        try:
            result = self.api.autograde(lab.name, row.student)
            found = judge.read_answers(self.run.jail.answers)
        except (answers.AnswerError, OSError) as e:
            result, found = {"success": False, "error": f"the answers could not be read: {e}"}, {}
        finally:
            self.box.close(self.run.jail)
        if stored_sources(self.course, lab.name) != lab.stored:
            row.status = "error: the stored test source does not match the release"
        elif not result["success"]:
            row.status = f"error: {self.run.failure or _first_cause(result.get('log'), result.get('error'))}"
        else:
            self._score(row, lab, found)

    def _score(self, row: Row, lab: Lab, found: dict) -> None:
        verdicts = judge.verdicts(found, lab.reference, list(lab.auto))
        graded = self.course / "autograded" / row.student / lab.name / f"{lab.name}.ipynb"
        nb = nbformat.read(graded, as_version=4)
        _annotate(nb, lab, verdicts)
        nbformat.write(nb, graded)
        hand = {gid: p for (s, lb, gid), p in self.hand.items() if s == row.student and lb == lab.name}
        row.scores, row.total = _apply_scores(self.course, lab, row.student, verdicts, hand)
        limit = _limit_hit(nb, self.box.limits)
        row.status = f"error: {limit}" if limit else "timed out" if _timed_out(nb) else "ok"
        self._feedback(row)

    def _feedback(self, row: Row) -> None:
        feedback = self.api.generate_feedback(row.lab, row.student)
        html = self.course / "feedback" / row.student / row.lab / f"{row.lab}.html"
        if feedback["success"] and html.exists():
            target = self.out / "feedback" / row.student / f"{row.lab}.html"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(html, target)


def _inside(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def _check_folders(submitted: Path, out: Path, src_dir: Path) -> None:
    """Grading writes next to the CSV only: never inside the submitted folder or the
    lab sources, and never over the sources (its course is rebuilt each run)."""
    if _inside(out, submitted):
        raise GradingError(f"{out} lies inside {submitted}: grading writes only outside the submitted folder")
    if _inside(out, src_dir) or _inside(src_dir, out / "nbgrader"):
        raise GradingError(f"{out} and {src_dir}: the grader's course must lie outside the lab sources, "
                           "and the sources outside it")


def _prepare_labs(course: Path, names: set[str], out: Path, log) -> dict[str, Lab]:
    found = {}
    for name in sorted(names):
        source = course / "source" / name / f"{name}.ipynb"
        nb = nbformat.read(source, as_version=4)
        lab = Lab(name, source, _cells(nb)[0], stored=stored_sources(course, name))
        t0 = time.monotonic()
        try:
            lab.reference = judge.reference(source, cache=out / ".reference" / f"{name}-{_reference_key(source)}.jsonl")
        except judge.JudgeError as e:
            raise GradingError(str(e)) from e
        log(f"{name}: reference answers of the source's solution ready in {time.monotonic() - t0:.0f} s")
        found[name] = lab
    return found


def grade(submitted_dir: str | Path, csv_path: str | Path, timeout: int = TIMEOUT,
          src_dir: str | Path | None = None, variant: int = 0, manual_csv: str | Path | None = None,
          isolated: bool = True, limits: sandbox.Limits = sandbox.DEFAULT_LIMITS, log=print) -> list[Row]:
    """Autograde every ``submitted_dir/<student>/<lab>.ipynb`` in its own sandbox;
    write the CSV, the feedback and the hand grades kept so far."""
    if timeout <= 0:
        raise GradingError(f"--timeout {timeout}: expected a positive number of seconds")
    submitted, csv_path = Path(submitted_dir), Path(csv_path)
    found = _submissions(submitted)
    sources = lab_sources(src_dir)
    out = csv_path.parent.resolve()
    _check_folders(submitted, out, Path(src_dir) if src_dir else REPO_LABS)
    course = out / "nbgrader"
    nbs = _materialize(sources, variant)
    hand = _hand_grades(manual_csv, out, nbs, found)
    box = sandbox.Sandbox(limits, isolated=isolated,
                          protected=(submitted, out, (Path(src_dir) if src_dir else REPO_LABS), course))
    box.check()
    if not isolated:
        log(f"warning: grading without a sandbox: every submission runs with your rights, {NOT_ISOLATED}")
    run = Run()
    with _environment(), warnings.catch_warnings():
        # nbgrader's own gradebook calls, with this SQLAlchemy: noise, not a fault of the submission
        warnings.filterwarnings("ignore", message=r"Object of type <\w+> not in session")
        api = _setup_course(course, nbs, timeout, run)
        graded_labs = _prepare_labs(course, {p.stem for _, p in found if p.stem in sources}, out, log)
        grader = Grader(course, out, graded_labs, box, hand, run, api, log)
        rows = [grader.grade_one(student, path) for student, path in found]
    write_csv(rows, csv_path)
    return rows


def _hand_grades(manual_csv, out: Path, nbs: dict[str, nbformat.NotebookNode],
                 found: list[tuple[str, Path]]) -> dict[manual.Key, float]:
    """The hand grades kept so far, with those of ``manual_csv`` merged in and kept."""
    store = out / manual.STORE
    stored = manual.load(store)
    if manual_csv is None:
        return stored
    cells = {name: _cells(nb)[1] for name, nb in nbs.items()}
    try:
        given = manual.check(manual.read(Path(manual_csv)), cells, {(s, p.stem) for s, p in found})
    except manual.HandGradeError as e:
        raise GradingError(str(e)) from e
    merged = manual.merge(stored, given)
    manual.save(store, merged)
    return merged


def write_csv(rows: list[Row], csv_path: Path) -> None:
    exercises = sorted({ex for r in rows for ex in r.scores}, key=lambda e: (len(e), e))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["student", "lab", *exercises, "total", "status"])
    for r in rows:
        w.writerow([r.student, r.lab, *(r.scores.get(ex, "") for ex in exercises), r.total, r.status])
    atomic_write_text(csv_path, buf.getvalue())
