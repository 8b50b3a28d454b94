"""The chapters read as prose plus library calls: the analysis lives in the
library, where it is tested once, and a chapter's code stays short enough to read
(issue 21). Read from the notebook sources, no kernel."""
import ast
import json
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "notebooks").glob("0*.ipynb"))
LABS = sorted((REPO / "notebooks" / "labs").glob("*.ipynb"))
MAX_CHAPTER_LINES = 900    # non-blank code lines of the chapters 00-07 together
MAX_CELL_LINES = 30        # a screen


def _code_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _lines(src: str) -> int:
    return sum(1 for line in src.splitlines() if line.strip())


def test_the_chapters_hold_at_most_900_lines_of_code():
    per = {p.stem: sum(_lines(c) for c in _code_cells(p)) for p in CHAPTERS}
    assert len(per) == 8, sorted(per)
    assert sum(per.values()) <= MAX_CHAPTER_LINES, per


def test_no_code_cell_is_longer_than_a_screen():
    long = [f"{p.relative_to(REPO)} cell {i}: {_lines(c)} lines" for p in CHAPTERS + LABS
            for i, c in enumerate(_code_cells(p)) if _lines(c) > MAX_CELL_LINES]
    assert long == [], long


def test_no_function_is_defined_in_two_notebooks():
    where = defaultdict(set)
    for p in CHAPTERS + LABS:
        for src in _code_cells(p):
            for node in ast.walk(ast.parse(src, filename=f"{p.name} cell")):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    where[node.name].add(p.stem)
    twice = {name: sorted(nbs) for name, nbs in where.items() if len(nbs) > 1}
    assert twice == {}, f"defined in more than one notebook (move it into the library): {twice}"
