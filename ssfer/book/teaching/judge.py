"""The verdicts of a lab's test cells, computed where no student code ever ran.

In the student's kernel a test cell only runs the student's code on its cases
and hands the results to the grader (``ssfer.book.teaching.answers``). Here,
in the grader:

- ``reference(source)`` runs the lab *source* in a fresh Python process: its
  setup (the code cells before the first test cell), its solutions and its
  test cells, with the same cases, and returns what the solution handed over.
  Only the teacher's source runs there, and it is run once per grading.
- ``verdicts(student, reference, cells)`` compares, cell by cell, the
  student's values with the reference's (arrays of the same shape and dtype,
  equal to ``rtol``/``atol``; everything else exactly). A cell earns its points
  only if it handed over exactly as many values as the solution's, all equal:
  a cell that stopped half-way, or values the student's code forged, earn none.

``python -m ssfer.book.teaching.judge SOURCE ANSWERS`` is that fresh process.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from ssfer.book.teaching import answers, labs

RTOL, ATOL = 1e-4, 1e-5
MAX_BYTES = 64 << 20  # an answers file larger than this is not read


class JudgeError(ValueError):
    """A lab source whose own solution the judge cannot run, or a test cell that hands nothing over."""


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def autograded_cells(nb: nbformat.NotebookNode) -> dict[str, float]:
    """``{grade id: points}`` of the code cells nbgrader grades."""
    return {_meta(c)["grade_id"]: float(_meta(c).get("points", 0)) for c in nb.cells
            if c.cell_type == "code" and _meta(c).get("grade")}


def judged_cells(nb: nbformat.NotebookNode) -> list:
    """The code cells the reference runs: the setup before the first test cell,
    then every solution and test cell (never the cells that train or plot)."""
    code = [c for c in nb.cells if c.cell_type == "code" and labs.ONLY not in c.get("metadata", {}).get("tags", [])]
    first_test = next((i for i, c in enumerate(code) if _meta(c).get("grade")), len(code))
    return code[:first_test] + [c for c in code[first_test:] if _meta(c).get("grade") or _meta(c).get("solution")]


def run_cells(nb: nbformat.NotebookNode, answers_path: str | Path, name: str = "lab", strict: bool = True) -> None:
    """Execute ``judged_cells(nb)`` in this process, the answers going to ``answers_path``.
    ``strict``: raise ``JudgeError`` naming the first cell that fails (the source's
    solution must not fail); else go on with the next cell, as a graded kernel does."""
    import matplotlib

    matplotlib.use("Agg")
    old = os.environ.get(answers.ENV)
    os.environ[answers.ENV] = str(answers_path)
    threads = _torch_threads()
    ns: dict[str, Any] = {"__name__": "__main__"}
    try:
        for cell in judged_cells(nb):
            try:
                exec(compile(cell.source, f"{name}[{_meta(cell).get('grade_id', 'setup')}]", "exec"), ns)
            except Exception as e:  # noqa: BLE001 - any failure of the source is reported by cell
                if strict:
                    where = _meta(cell).get("grade_id") or "a setup cell"
                    raise JudgeError(f"{name}: {where} fails with the source's own solution: "
                                     f"{type(e).__name__}: {e}".rstrip()) from e
    finally:
        if old is None:
            os.environ.pop(answers.ENV, None)
        else:
            os.environ[answers.ENV] = old
        if threads:  # a lab sets its own; a caller running several keeps its own
            import torch

            torch.set_num_threads(threads)


def _torch_threads() -> int:
    if "torch" not in sys.modules:
        return 0
    import torch

    return torch.get_num_threads()


def read_answers(path: str | Path) -> dict[str, list[list[Any]]]:
    """The answers file at ``path`` (no such file: none), read without following a
    link and only if it is a plain file of at most ``MAX_BYTES``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise answers.AnswerError(f"the answers file cannot be opened ({e.strerror})") from e
    with os.fdopen(fd, "rb") as f:
        import stat

        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise answers.AnswerError("the answers file is not a plain file")
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise answers.AnswerError(f"the answers file is larger than {MAX_BYTES >> 20} MiB")
    return answers.parse(data.decode("utf-8", errors="replace"))


def reference(source: str | Path, cache: str | Path | None = None) -> dict[str, list[list[Any]]]:
    """What the solution of the lab source ``source`` hands over, from a fresh
    process (kept in ``cache``, a file, when given: the source does not change
    within a grading)."""
    source = Path(source).resolve()
    if cache is not None and Path(cache).is_file():
        return read_answers(cache)
    with tempfile.TemporaryDirectory(prefix="ssfer-judge-") as tmp:
        out = Path(tmp) / "answers.jsonl"
        env = {**os.environ, "MPLBACKEND": "Agg", "SSFER_CACHE": str(Path(tmp) / "cache")}
        proc = subprocess.run([sys.executable, "-m", "ssfer.book.teaching.judge", str(source), str(out)],
                              cwd=tmp, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            raise JudgeError(lines[-1] if lines else f"{source}: the reference run failed ({proc.returncode})")
        found = read_answers(out)
        if cache is not None:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            from ssfer.io import atomic_write_bytes

            atomic_write_bytes(Path(cache), out.read_bytes())
    nb = nbformat.read(source, as_version=4)
    silent = [gid for gid in autograded_cells(nb) if not found.get(gid)]
    if silent:
        raise JudgeError(f"{source}: test cell(s) {', '.join(silent)} hand nothing to the grader "
                         "(each needs answers.cell(<grade id>).add(...))")
    return found


@dataclass
class Verdict:
    passed: bool
    why: str


def _same(a: Any, b: Any, where: str) -> str | None:
    """None if the student's ``a`` equals the reference's ``b``, else what differs."""
    import numpy as np

    if isinstance(b, np.ndarray):
        if not isinstance(a, np.ndarray):
            return f"{where}: an array was expected, not {type(a).__name__}"
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{where}: shape {list(a.shape)} {a.dtype}, expected {list(b.shape)} {b.dtype}"
        if b.dtype.kind in "fc":
            ok = np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=RTOL, atol=ATOL, equal_nan=True)
        else:
            ok = np.array_equal(a, b)
        return None if ok else f"{where}: the values differ from the solution's"
    if isinstance(b, float) and isinstance(a, (int, float)) and not isinstance(a, bool):
        ok = (math.isnan(a) and math.isnan(b)) or abs(a - b) <= ATOL + RTOL * abs(b)
        return None if ok else f"{where}: {a!r}, the solution gives another value"
    if isinstance(b, list):
        if not isinstance(a, list) or len(a) != len(b):
            return f"{where}: {len(a) if isinstance(a, list) else 'no'} values, expected {len(b)}"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := _same(x, y, f"{where}, item {i + 1}"))), None)
    if isinstance(b, dict):
        if not isinstance(a, dict) or sorted(a) != sorted(b):
            return f"{where}: other keys than the solution's"
        return next((d for k in b if (d := _same(a[k], b[k], f"{where}, key {k!r}"))), None)
    return None if type(a) is type(b) and a == b else f"{where}: {a!r}, the solution gives another value"


def verdict(student: list[list[Any]], ref: list[list[Any]]) -> Verdict:
    """One cell: passed only with as many values as the reference, each equal to its own."""
    if len(student) != len(ref):
        return Verdict(False, f"it handed over {len(student)} result(s), the solution {len(ref)}"
                       + (" (the cell stopped early or never ran)" if len(student) < len(ref) else ""))
    for n, (a, b) in enumerate(zip(student, ref), 1):
        differs = _same(a, b, f"result {n}")
        if differs:
            return Verdict(False, differs)
    return Verdict(True, f"all {len(ref)} results match the solution's")


def verdicts(student: dict[str, list], ref: dict[str, list], cells: list[str]) -> dict[str, Verdict]:
    return {gid: verdict(student.get(gid, []), ref.get(gid, [])) for gid in cells}


def main(argv: list[str]) -> int:
    source, out = Path(argv[0]), Path(argv[1])
    try:
        run_cells(nbformat.read(source, as_version=4), out, name=source.stem)
    except JudgeError as e:
        print(str(e).replace("\n", " "), file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 - a bug of the source or the judge: its traceback helps
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
