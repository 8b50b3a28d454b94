"""What a lab's test cells hand the grader: the values the student's code produced.

A test cell of a lab does not judge the student's code where that code runs:
anything the code changed in its kernel (an assert function, ``torch``,
``numpy``, builtins, ``ssfer``) would change the verdict. Instead the cell
runs the student's function or rule on its cases and hands each result to
``cell(grade_id).add(...)``. When ``ssfer labs grade`` runs the notebook, in
its sandbox, ``$SSFER_LAB_ANSWERS`` names a file and every ``add`` appends one
JSON line to it; the grader later compares those values, in its own process,
with what the lab source's solution gives on the same cases
(``ssfer.book.teaching.judge``). Anywhere else (a student's Jupyter, the book)
``add`` does nothing.

Values travel as JSON, never as pickles: the grader reads a file that the
student's code could have written, so ``decode`` accepts only plain data
(numbers, strings, lists, dicts) and arrays of a few numeric dtypes, whose
bytes it checks against their shape.
"""
from __future__ import annotations

import base64
import json
import os
from typing import Any

ENV = "SSFER_LAB_ANSWERS"
DTYPES = ("<f2", "<f4", "<f8", "|i1", "<i2", "<i4", "<i8", "|u1", "|b1")  # what an array may hold


class AnswerError(ValueError):
    """An answers file or value the grader cannot read."""


class Cell:
    """The recorder of one test cell, named by its nbgrader grade id."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = os.environ.get(ENV) or None

    def add(self, *values: Any) -> None:
        """Hand ``values`` (tensors, arrays, numbers, strings, tuples, dicts) to the grader."""
        if self.path is None:
            return
        line = json.dumps({"cell": self.name, "values": [encode(v) for v in values]})
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def cell(name: str) -> Cell:
    return Cell(name)


def _array(a) -> dict:
    import numpy as np

    a = np.ascontiguousarray(a)
    dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
    if dtype.str not in DTYPES:
        raise AnswerError(f"an array of dtype {a.dtype} cannot be handed to the grader")
    return {"array": dtype.str, "shape": list(a.shape),
            "b64": base64.b64encode(a.astype(dtype).tobytes()).decode("ascii")}


def encode(v: Any) -> Any:
    """A JSON-able form of ``v``; tensors and arrays become dtype, shape and bytes."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    kind = type(v).__module__.split(".")[0]
    if kind == "torch" and hasattr(v, "detach"):
        return _array(v.detach().cpu().numpy())
    if kind == "numpy":
        return _array(v) if getattr(v, "ndim", 0) else encode(v.item())
    if isinstance(v, (list, tuple)):
        return [encode(x) for x in v]
    if isinstance(v, dict):
        return {"dict": [[str(k), encode(x)] for k, x in v.items()]}
    raise AnswerError(f"a {type(v).__name__} cannot be handed to the grader")


def decode(v: Any, depth: int = 0) -> Any:
    """The value ``encode`` wrote (arrays as numpy arrays); anything else is refused."""
    if depth > 20:
        raise AnswerError("values nested too deep")
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, list):
        return [decode(x, depth + 1) for x in v]
    if isinstance(v, dict) and set(v) == {"dict"} and isinstance(v["dict"], list):
        pairs = v["dict"]
        if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            raise AnswerError("a malformed dict")
        return {k: decode(x, depth + 1) for k, x in pairs}
    if isinstance(v, dict) and set(v) == {"array", "shape", "b64"}:
        return _decode_array(v)
    raise AnswerError(f"an unreadable value ({type(v).__name__})")


def _decode_array(v: dict):
    import numpy as np

    shape = v["shape"]
    if v["array"] not in DTYPES or not isinstance(shape, list) or \
            not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise AnswerError("a malformed array")
    try:
        raw = base64.b64decode(v["b64"], validate=True)
    except (ValueError, TypeError) as e:
        raise AnswerError("a malformed array") from e
    dtype = np.dtype(v["array"])
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise AnswerError("an array whose bytes do not match its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def parse(text: str) -> dict[str, list[list[Any]]]:
    """``{cell: [values of each add, in order]}`` from an answers file's text."""
    found: dict[str, list[list[Any]]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as e:
            raise AnswerError(f"line {n} is not JSON") from e
        if not (isinstance(entry, dict) and isinstance(entry.get("cell"), str)
                and isinstance(entry.get("values"), list)):
            raise AnswerError(f"line {n} is not an answer")
        found.setdefault(entry["cell"], []).append([decode(x) for x in entry["values"]])
    return found
