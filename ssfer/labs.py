"""Student and solution versions of a lab from one source notebook.

A lab source in ``notebooks/labs/`` is a runnable notebook holding the
solutions. Solution code sits between ``# BEGIN SOLUTION`` and
``# END SOLUTION`` lines, or fills a code cell tagged ``solution``; model
answers in prose are markdown cells tagged ``solution``; a cell tagged
``solution-only`` (say, the code that computes the numbers a model answer
glues in) belongs to the solution alone.

- ``make_student``: each marked block becomes ``# YOUR CODE HERE`` +
  ``raise NotImplementedError`` at the block's indentation, a ``solution``
  code cell becomes just those two lines, a ``solution`` markdown cell and
  any ``solution-only`` cell are dropped.
- ``make_solution``: the marker lines go, everything else stays.

Both clear outputs, so neither version leaks a stale result. Command line:
``python -m ssfer.labs notebooks/labs OUT_DIR`` writes ``OUT_DIR/student/``
and ``OUT_DIR/solution/``.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

BEGIN = re.compile(r"^(?P<indent>[ \t]*)#+\s*BEGIN SOLUTION\s*$")
END = re.compile(r"^[ \t]*#+\s*END SOLUTION\s*$")
TAG = "solution"
ONLY = "solution-only"
PLACEHOLDER = "# YOUR CODE HERE", "raise NotImplementedError"


class LabError(ValueError):
    """A lab source's solution markers are unbalanced or misplaced."""


def _load(src: str | Path | nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, str]:
    if isinstance(src, nbformat.NotebookNode):
        return copy.deepcopy(src), src.get("metadata", {}).get("ssfer", {}).get("lab_source", "<notebook>")
    return nbformat.read(Path(src), as_version=4), str(src)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _blocks(source: str, where: str) -> list[tuple[int, int, str]]:
    """(begin line, end line, indent) of each marked block, 0-based, markers inclusive."""
    blocks, begin, indent = [], None, ""
    for i, line in enumerate(source.splitlines()):
        if m := BEGIN.match(line):
            if begin is not None:
                raise LabError(f"{where}, line {i + 1}: BEGIN SOLUTION inside the block opened "
                               f"on line {begin + 1}")
            begin, indent = i, m["indent"]
        elif END.match(line):
            if begin is None:
                raise LabError(f"{where}, line {i + 1}: END SOLUTION without BEGIN SOLUTION")
            blocks.append((begin, i, indent))
            begin = None
    if begin is not None:
        raise LabError(f"{where}, line {begin + 1}: BEGIN SOLUTION is never closed")
    return blocks


def _clear(cell) -> None:
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
    cell.get("metadata", {}).pop("execution", None)


def _transform(src, student: bool) -> nbformat.NotebookNode:
    nb, origin = _load(src)
    cells = []
    for idx, cell in enumerate(nb.cells):
        where = f"{origin}, cell {idx}"
        tagged = TAG in _tags(cell)
        _clear(cell)
        if student and (ONLY in _tags(cell) or (cell.cell_type == "markdown" and tagged)):
            continue
        if cell.cell_type == "code":
            lines = cell.source.splitlines()
            blocks = _blocks(cell.source, where)
            if tagged and student:
                lines = list(PLACEHOLDER)
            else:
                for begin, end, indent in reversed(blocks):
                    body = [indent + p for p in PLACEHOLDER] if student else lines[begin + 1:end]
                    lines[begin:end + 1] = body
            cell.source = "\n".join(lines)
        if student and tagged:
            cell.metadata["tags"] = [t for t in _tags(cell) if t != TAG]
        cells.append(cell)
    if not student:
        _mark_title(cells)
    nb.cells = cells
    nb.metadata.setdefault("ssfer", {}).update(
        {"lab_version": "student" if student else "solution", "lab_source": origin})
    return nb


def _mark_title(cells) -> None:
    """Append "(solution)" to the first top-level heading, so the two versions differ in a table of contents."""
    for cell in cells:
        if cell.cell_type == "markdown":
            lines = cell.source.splitlines()
            for i, line in enumerate(lines):
                if line.startswith("# ") and not line.rstrip().endswith("(solution)"):
                    lines[i] = line.rstrip() + " (solution)"
                    cell.source = "\n".join(lines)
                    return


def make_student(src: str | Path | nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version: solutions replaced by ``raise NotImplementedError``."""
    return _transform(src, student=True)


def make_solution(src: str | Path | nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The solution version: the source without its marker lines."""
    return _transform(src, student=False)


def is_lab(src: str | Path | nbformat.NotebookNode) -> bool:
    """Whether a notebook has anything for ``make_student`` to hide."""
    nb, origin = _load(src)
    return any(TAG in _tags(c) or ONLY in _tags(c) or (c.cell_type == "code" and _blocks(c.source, origin))
               for c in nb.cells)


def write_versions(src_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``out_dir/student/<lab>.ipynb`` and ``out_dir/solution/<lab>.ipynb``."""
    written = []
    for path in sorted(Path(src_dir).glob("*.ipynb")):
        for version, make in (("student", make_student), ("solution", make_solution)):
            out = Path(out_dir) / version / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(make(path), out)
            written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ssfer.labs", description=__doc__.split("\n\n")[0])
    ap.add_argument("src_dir", help="folder of lab sources (notebooks/labs)")
    ap.add_argument("out_dir", help="writes student/ and solution/ here")
    args = ap.parse_args(argv)
    try:
        for p in write_versions(args.src_dir, args.out_dir):
            print(p)
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
