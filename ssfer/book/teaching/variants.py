"""Variants of the labs: the asked constants of each exercise, drawn from a number.

The lab sources are public (this repository, the book), solutions and hidden
tests included. A graded course therefore asks for other constants than the
published ones: ``variant(nb, lab, n)`` rewrites a lab source so that its
exercises ask for the constants drawn from ``n``, in the prose the student
reads, in the solution the grader's reference runs and in the checks. Variant
0 is the published source. Any other draws every knob away from its published
value, so the published solution fails the tests of every variant but 0.

A knob is a constant and the exact places it is written, cell by cell. When a
source changes so that a knob no longer finds one of its places, ``variant``
refuses (``LabError``) instead of handing out a half-rewritten lab.

| lab | exercise | knob | published | drawn from |
|---|---|---|---|---|
| lab 1 | 1 | the ramp's start: λ(t) = min(1, a + t) | 0.5 | 0.3, 0.4, 0.6, 0.7 |
| lab 1 | 1 | the rule's floor and ceiling (τ_min, τ_max) | 0.5, 0.95 | 0.4-0.6, 0.9-0.98 |
| lab 2 | 1 | the classes never negated: the top k | 1 | 2 |
| lab 2 | 2 | the clamp of 1 − p | 1e-6 | 1e-5, 1e-4, 1e-3 |
| lab 3 | 2 | the t-interval's level | 95 % | 90 %, 99 % |

Lab 3's first exercise (the ablation grid) has no constant to draw.
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nbformat

from ssfer.book.teaching.labs import LabError


@dataclass(frozen=True)
class Place:
    """Where a knob is written: a regex that matches in each of the cells ``cells``
    (grade ids), and what each match becomes for a value."""

    cells: tuple[str, ...]
    pattern: str
    write: Callable[[Any, re.Match], str]


@dataclass(frozen=True)
class Knob:
    name: str
    published: Any
    others: tuple[Any, ...]
    places: tuple[Place, ...]


def _ramp(v, m):
    return f"{v:g} + {m.group(1)}"


LAB1_EX1 = ("lab1_locked_07", "ex1_solution", "ex1_checks")
LAB3_EX2 = ("lab3_locked_12", "ex2_solution", "ex2_checks")  # the prose, the solution, the visible check
KNOBS: dict[str, tuple[Knob, ...]] = {
    "lab1_thresholds": (
        Knob("ramp start", 0.5, (0.3, 0.4, 0.6, 0.7), (
            Place(LAB1_EX1 + ("lab1_locked_10", "lab1_locked_16"),
                  r"\b0\.5 \+ (t\b|s\.progress\b|stats\.progress\b)", _ramp),)),
        Knob("floor and ceiling", (0.5, 0.95), ((0.4, 0.9), (0.45, 0.98), (0.55, 0.9), (0.6, 0.98)), (
            Place(("ex1_solution",), r"tau_min: float = 0\.5\b", lambda v, m: f"tau_min: float = {v[0]:g}"),
            Place(("ex1_solution",), r"tau_max: float = 0\.95\b", lambda v, m: f"tau_max: float = {v[1]:g}"),
            Place(("lab1_locked_07",), r"\\tau_\{\\min\} = 0\.5\b", lambda v, m: rf"\tau_{{\min}} = {v[0]:g}"),
            Place(("lab1_locked_07",), r"\\tau_\{\\max\} = 0\.95\b", lambda v, m: rf"\tau_{{\max}} = {v[1]:g}"),
            Place(("ex1_checks",), r"tau_min=0\.5, tau_max=0\.95\b",
                  lambda v, m: f"tau_min={v[0]:g}, tau_max={v[1]:g}"),
            Place(("ex1_checks",), r"clamp\(0\.5, 0\.95\)", lambda v, m: f"clamp({v[0]:g}, {v[1]:g})"),
        )),
    ),
    "lab2_negative_learning": (
        Knob("classes never negated", 1, (2,), (
            Place(("lab2_locked_05",), r"\*\*except the argmax\*\*",
                  lambda v, m: "**except the argmax**" if v == 1 else f"**except its {v} most probable classes**"),
            Place(("ex1_solution",), r"teacher_logits\.argmax\(dim=1, keepdim=True\)",
                  lambda v, m: m.group(0) if v == 1 else f"teacher_logits.topk({v}, dim=1).indices"),
        )),
        Knob("clamp", 1e-6, (1e-5, 1e-4, 1e-3), (
            Place(("lab2_locked_07", "ex2_solution"), r"\b1e-6\b", lambda v, m: f"{v:.0e}".replace("e-0", "e-")),)),
    ),
    "lab3_ablation": (
        Knob("interval level", 95, (90, 99), (
            Place(("lab3_locked_12",), r"\b95 %", lambda v, m: f"{v} %"),
            Place(LAB3_EX2, r"\b0\.975\b", lambda v, m: f"{(1 + v / 100) / 2:g}"),
        )),
    ),
}


def draw(lab: str, n: int) -> dict[str, Any]:
    """``{knob: value}`` of variant ``n`` of ``lab`` (0: the published values)."""
    if n < 0:
        raise LabError(f"--variant {n}: expected 0 (the published labs) or a positive number")
    return {k.name: k.published if n == 0 else random.Random(f"ssfer-labs:{n}:{lab}:{k.name}").choice(k.others)
            for k in KNOBS.get(lab, ())}


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def variant(nb: nbformat.NotebookNode, lab: str, n: int) -> nbformat.NotebookNode:
    """A copy of the published source ``nb`` of ``lab`` asking variant ``n``'s
    constants; its metadata records the variant and the values."""
    meta = nb.metadata.get("ssfer", {})
    if meta.get("lab_variant", 0) != 0:
        raise LabError(f"{lab}: this source is already variant {meta['lab_variant']}; draw variants "
                       "from the published labs")
    out = nbformat.from_dict(nb)
    values = draw(lab, n)
    by_id = {_grade_id(c): c for c in out.cells if _grade_id(c)}
    for knob in KNOBS.get(lab, ()):
        for place in knob.places:
            for gid in place.cells:
                if gid not in by_id:
                    raise LabError(f"{lab}: variant knob {knob.name!r} names cell {gid}, which the source lacks")
                cell = by_id[gid]
                write = place.write
                cell.source, found = re.subn(place.pattern, lambda m, w=write, v=values[knob.name]: w(v, m),
                                             cell.source)
                if not found:
                    raise LabError(f"{lab}: variant knob {knob.name!r} no longer finds {place.pattern!r} in cell {gid}")
    out.metadata.setdefault("ssfer", {}).update(
        {"lab_variant": n, "lab_constants": {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}})
    return out
