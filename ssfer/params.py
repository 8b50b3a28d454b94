"""Typed notebook parameters.

Every notebook's first code cell is tagged ``parameters`` and declares its
parameters as annotated literals::

    n_labels_per_class: int = 10   # labels per class
    device: str = "auto"           # auto | cpu | cuda

and the next cell is ``P = ssfer.params.check(globals())``. A rule that a type
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
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat


class ParameterError(ValueError):
    """A notebook parameter is unknown, undeclared or has the wrong type."""


# ---------------------------------------------------------------- constraints
class _Marker:
    """A rule on a value, used as ``Annotated[T, marker]``."""

    def ok(self, value: Any) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


class _NonEmpty(_Marker):
    def ok(self, value: Any) -> bool:
        return len(value) > 0

    def __repr__(self) -> str:
        return "NonEmpty"


class _Distinct(_Marker):
    def ok(self, value: Any) -> bool:
        return len(set(map(repr, value))) == len(value)

    def __repr__(self) -> str:
        return "Distinct"


@dataclass(frozen=True)
class Range(_Marker):
    """low <= value <= high (either bound None: unbounded; ``*_open``: strict).
    On a list, every element."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def _one(self, v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            return False
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return not (self.high is not None and (v >= self.high if self.high_open else v > self.high))

    def ok(self, value: Any) -> bool:
        return all(map(self._one, value)) if isinstance(value, (list, tuple)) else self._one(value)

    def __repr__(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"Range{'(' if self.low_open or self.low is None else '['}{lo}, {hi}{')' if self.high_open or self.high is None else ']'}"


NonEmpty = _NonEmpty()   # a list with at least one element
Distinct = _Distinct()   # a list without repeated elements
# a share of a whole, 0 < x <= 1 (a name, not Range(0, 1, low_open=True): papermill's
# reader of parameters cells cannot parse a line holding a second "=")
Share = Range(0, 1, low_open=True)


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
def type_name(tp: Any) -> str:
    """A readable name for an annotation: ``int``, ``list[int]``, ``str | None``."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return "None" if tp is type(None) else tp.__name__
    if tp is None:
        return "None"
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *rules = typing.get_args(tp)
        return f"{type_name(base)} ({', '.join(map(repr, rules))})"
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in typing.get_args(tp)) + "]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(a) for a in typing.get_args(tp))}]"
    return str(tp)


def _matches(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    if tp is None or tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *rules = typing.get_args(tp)
        if not _matches(value, base):
            return False
        bad = [r for r in rules if not isinstance(r, _Marker)]
        if bad:
            raise ParameterError(f"unsupported Annotated rule {bad[0]!r}; use NonEmpty, Distinct or Range(...)")
        return all(r.ok(value) for r in rules)
    if origin is typing.Literal:
        # type equality too, so that True does not pass for Literal[1]
        return any(type(value) is type(a) and value == a for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        return all(_matches(v, args[0]) for v in value) if args else True
    if origin is dict:
        kt, vt = typing.get_args(tp) or (Any, Any)
        return isinstance(value, dict) and all(_matches(k, kt) and _matches(v, vt)
                                               for k, v in value.items())
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp in (str, list, dict, tuple):
        return isinstance(value, tp)
    raise ParameterError(f"unsupported parameter type {type_name(tp)}; use int, float, str, bool, "
                         "list[...], dict[...], X | None, Literal[...] or Annotated[X, NonEmpty | Distinct | Range(...)]")


def _normalise(value: Any, tp: Any) -> Any:
    """int -> float where a float is declared (also inside lists), tuples -> lists."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _normalise(value, typing.get_args(tp)[0])
    if tp is float and isinstance(value, int):
        return float(value)
    if origin in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            try:
                if _matches(value, a):
                    return _normalise(value, a)
            except ParameterError:
                pass
    if origin is list and isinstance(value, (list, tuple)) and typing.get_args(tp):
        return [_normalise(v, typing.get_args(tp)[0]) for v in value]
    return value


def check_value(name: str, value: Any, tp: Any, where: str = "") -> Any:
    """Return ``value`` (ints widened where a float is declared) or raise naming it."""
    if not _matches(value, tp):
        raise ParameterError(f"{where}parameter {name!r} expects {type_name(tp)}, "
                             f"got {value!r} ({type(value).__name__})")
    return _normalise(value, tp)


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
