"""Typed notebook parameters.

Every notebook's first code cell is tagged ``parameters`` and declares its
parameters as annotated literals::

    n_labels_per_class: int = 10   # labels per class
    device: str = "auto"           # auto | cpu | cuda

and the next cell is ``P = ssfer.book.params.check(globals())``. A rule that a type
cannot say is added with ``typing.Annotated`` and the markers of this module::

    seeds: Annotated[list[int], NonEmpty, Distinct] = [0, 1, 2]
    fractions: Annotated[list[float], NonEmpty, Share] = [0.01, 0.1]
    n_stages: Annotated[int, Range(1, 20)] = 4

(``Range`` and ``Share`` on a list bound every element.) Papermill (``-p``)
only *warns* about a name the notebook does not declare and never checks a
type, so a typo would silently run the defaults; ``check`` turns both into an
error naming the parameter. ``declared_parameters`` reads the same
declarations from a notebook file, so ``ssfer reproduce`` can reject bad
parameters before a kernel starts.
"""
from __future__ import annotations

import ast
import types
import typing
from pathlib import Path
from typing import Any

import nbformat

from ssfer import typecheck
# the rules a parameters cell may use, re-exported: `from ssfer.book.params import NonEmpty`
from ssfer.typecheck import Distinct, NonEmpty, Range, Share, type_name


class ParameterError(ValueError):
    """A notebook parameter is unknown, undeclared or has the wrong type."""


# Names IPython puts in every user namespace; never parameters.
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
# Values papermill can inject (it writes Python literals of JSON/YAML values).
_PLAIN = (str, int, float, bool, type(None), list, dict, tuple)
# What an annotation may name when it is read from a notebook file as text.
_ANNOTATION_NS = {
    "int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict,
    "tuple": tuple, "None": None, "Literal": typing.Literal, "Optional": typing.Optional,
    "Union": typing.Union, "typing": typing, "Annotated": typing.Annotated,
    "NonEmpty": NonEmpty, "Distinct": Distinct, "Range": Range, "Share": Share,
}


# ---------------------------------------------------------------- checking values
def check_value(name: str, value: Any, tp: Any, where: str = "") -> Any:
    """Return ``value`` (ints widened where a float is declared) or raise naming it."""
    try:
        return typecheck.check(value, tp)
    except typecheck.UnsupportedType as e:
        raise ParameterError(f"{where}parameter {name!r}: {e}") from None
    except typecheck.Mismatch as e:
        raise ParameterError(f"{where}parameter {name!r} expects {e.expected}, "
                             f"got {value!r} ({type(value).__name__})") from None


def parse_annotation(text: str, where: str = "") -> Any:
    """Turn an annotation's source text (``"list[int]"``) into a type."""
    try:
        tp = eval(compile(text, "<annotation>", "eval"), {"__builtins__": {}}, dict(_ANNOTATION_NS))
    except Exception as e:  # noqa: BLE001 - report any failure the same way
        raise ParameterError(f"{where}cannot read the annotation {text!r}: {e}") from e
    return tp


# ---------------------------------------------------------------- inside a notebook
def _assigned_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for t in targets:
            names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _annotations(namespace: dict) -> dict[str, Any]:
    ann = namespace.get("__annotations__")
    if ann is None and callable(namespace.get("__annotate__")):  # Python >= 3.14 (PEP 649)
        ann = namespace["__annotate__"](1)
    return dict(ann or {})


def check(namespace: dict) -> types.SimpleNamespace:
    """Check a notebook's parameters; call it right after the parameters cell.

    The declared parameters are the annotated assignments IPython recorded in
    ``__annotations__``. Any other plain value (str, number, bool, None, list,
    dict) assigned before this call — what ``papermill -p`` injects — is an
    unknown parameter. Returns the declared values (ints widened to float
    where a float is declared) as a namespace.
    """
    declared = {}
    for name, tp in _annotations(namespace).items():
        declared[name] = parse_annotation(tp) if isinstance(tp, str) else tp

    candidates = {
        k for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES and k not in declared
        and isinstance(v, _PLAIN)
    }
    history = namespace.get("In")
    if isinstance(history, list) and len(history) > 1:
        # Only names assigned in cells run before (the first run of) this
        # check count, so re-running the check late in a session does not
        # mistake the notebook's own results for parameters.
        cells = history[1:]
        end = next((i for i, c in enumerate(cells) if "params.check(" in c or "check(globals()" in c),
                   len(cells) - 1)
        before = set().union(set(), *(_assigned_names(c) for c in cells[:end]))
        candidates &= before
    if candidates:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(sorted(candidates))}: not declared in the parameters "
            f"cell (declared: {', '.join(declared) or 'none'}). A misspelt papermill -p name, or a "
            "parameter assigned without a type annotation.")

    values = {}
    for name, tp in declared.items():
        if name not in namespace:
            raise ParameterError(f"parameter {name!r} is declared as {type_name(tp)} but has no value")
        values[name] = check_value(name, namespace[name], tp)
    return types.SimpleNamespace(**values)


# ---------------------------------------------------------------- from a notebook file
def parameters_cell(nb: nbformat.NotebookNode, where: str = "") -> tuple[int, str] | None:
    """(index, source) of the cell tagged ``parameters``, or None."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return i, cell.source
    return None


def parse_parameters(source: str, where: str = "parameters cell") -> dict[str, tuple[str, Any]]:
    """``{name: (type_str, default)}`` from a parameters cell's source.

    Every assignment must be annotated and its value a literal, so that the
    declared type and default can be read without running anything.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ParameterError(f"{where}, line {e.lineno}: not valid Python: {e.msg}") from e
    out: dict[str, tuple[str, Any]] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Expr)):
            continue  # `from typing import Literal`, docstrings
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
            if node.value is None:
                raise ParameterError(f"{where}, line {node.lineno}: {name!r} has a type but no value")
            try:
                default = ast.literal_eval(node.value)
            except ValueError as e:
                raise ParameterError(f"{where}, line {node.lineno}: the default of {name!r} must be a "
                                     f"literal, got {ast.unparse(node.value)!r}") from e
            out[name] = (ast.unparse(node.annotation), default)
            continue
        if isinstance(node, ast.Assign):
            names = ", ".join(ast.unparse(t) for t in node.targets)
            raise ParameterError(f"{where}, line {node.lineno}: {names} has no type annotation "
                                 f"(write e.g. `{names}: int = ...  # what it means`)")
        raise ParameterError(f"{where}, line {node.lineno}: only annotated literal assignments and "
                             f"imports belong in the parameters cell, got {ast.unparse(node)!r}")
    return out


def declared_parameters(notebook_path: str | Path) -> dict[str, tuple[str, Any]]:
    """``{name: (type_str, default)}`` declared by a notebook's parameters cell."""
    path = Path(notebook_path)
    nb = nbformat.read(path, as_version=4)
    found = parameters_cell(nb)
    if found is None:
        return {}
    idx, source = found
    return parse_parameters(source, where=f"{path} (cell {idx})")


def check_parameters(declared: dict[str, tuple[str, Any]], values: dict[str, Any],
                     where: str = "") -> dict[str, Any]:
    """Validate values for a notebook before it runs; returns the normalised values."""
    prefix = f"{where}: " if where else ""
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ParameterError(f"{prefix}unknown parameter(s) {', '.join(unknown)} "
                             f"(declared: {', '.join(declared) or 'none'})")
    return {k: check_value(k, v, parse_annotation(declared[k][0], prefix), prefix)
            for k, v in values.items()}


__all__ = ["Distinct", "NonEmpty", "ParameterError", "Range", "Share", "check", "check_parameters", "check_value", "declared_parameters",
           "parameters_cell", "parse_annotation", "parse_parameters", "type_name"]
