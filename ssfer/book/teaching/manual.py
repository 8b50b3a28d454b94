"""The teacher's hand grades: ``ssfer labs grade --manual hand.csv``.

A hand-grades CSV has the columns ``student,lab,cell,points``: ``cell`` is the
grade id of an answer graded by hand (``ex2_answer``), or its exercise
(``ex2``) when that exercise has one such answer; empty ``points`` withdraw a
hand grade given before. Every row is checked before anything is graded: a
lab, a cell or a submission that does not exist, or points above the cell's
maximum, are refused by file and line.

The grades given so far live next to the CSV, in ``hand_grades.csv``, written
by the grader only; every grading run reads them, so a re-grade keeps them.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ssfer.io import atomic_write_text

COLUMNS = ["student", "lab", "cell", "points"]
STORE = "hand_grades.csv"

Key = tuple[str, str, str]  # student, lab, grade id


class HandGradeError(ValueError):
    """A hand-grades row that names nothing gradable, or gives too many points."""


@dataclass(frozen=True)
class Row:
    where: str
    student: str
    lab: str
    cell: str
    points: str


def read(path: Path) -> list[Row]:
    """The rows of a hand-grades CSV, refusing a file without the four columns."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise HandGradeError(f"{path}: cannot read it ({e.strerror or e})") from e
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != COLUMNS:
        raise HandGradeError(f"{path}: expected the columns {','.join(COLUMNS)}, got "
                             f"{','.join(reader.fieldnames or []) or 'none'}")
    return [Row(f"{path} line {n}", *(str(r.get(c) or "").strip() for c in COLUMNS))
            for n, r in enumerate(reader, 2)]


def _cell(row: Row, cells: dict[str, float]) -> str:
    if row.cell in cells:
        return row.cell
    named = [gid for gid in cells if gid.split("_")[0] == row.cell]
    if len(named) == 1:
        return named[0]
    raise HandGradeError(f"{row.where}: {row.lab} has no hand-graded cell {row.cell!r} "
                         f"(its cells: {', '.join(cells) or 'none'})")


def check(rows: list[Row], manual: dict[str, dict[str, float]],
          submissions: set[tuple[str, str]]) -> dict[Key, float | None]:
    """``{(student, lab, grade id): points}`` (None: withdrawn), every row checked
    against ``manual`` (``{lab: {grade id: maximum}}``) and the submissions."""
    out: dict[Key, float | None] = {}
    for row in rows:
        if row.lab not in manual:
            raise HandGradeError(f"{row.where}: no lab named {row.lab!r} (labs: {', '.join(manual)})")
        if (row.student, row.lab) not in submissions:
            raise HandGradeError(f"{row.where}: no submission of {row.student!r} for {row.lab}")
        gid = _cell(row, manual[row.lab])
        points = _points(row, gid, manual[row.lab][gid])
        out[row.student, row.lab, gid] = points
    return out


def _points(row: Row, gid: str, most: float) -> float | None:
    if row.points == "":
        return None
    try:
        points = float(row.points)
    except ValueError:
        raise HandGradeError(f"{row.where}: points {row.points!r} for {gid} are not a number") from None
    if not 0 <= points <= most:
        raise HandGradeError(f"{row.where}: {points:g} points for {gid} of {row.lab}, which is worth {most:g} "
                             f"(give 0 to {most:g})")
    return points


def load(path: Path) -> dict[Key, float]:
    """The stored hand grades (none yet: empty)."""
    if not Path(path).is_file():
        return {}
    return {(r.student, r.lab, r.cell): float(r.points) for r in read(path) if r.points}


def merge(stored: dict[Key, float], given: dict[Key, float | None]) -> dict[Key, float]:
    merged = dict(stored)
    for key, points in given.items():
        if points is None:
            merged.pop(key, None)
        else:
            merged[key] = points
    return merged


def save(path: Path, grades: dict[Key, float]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for (student, lab, gid), points in sorted(grades.items()):
        w.writerow([student, lab, gid, f"{points:g}"])
    atomic_write_text(Path(path), buf.getvalue())
