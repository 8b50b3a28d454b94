"""The one type checker of the package: config fields and notebook parameters.

``check(value, tp)`` returns ``value`` normalised to ``tp`` (an int widened where
a float is declared, a tuple made a list) or raises :class:`Mismatch`. The
annotations it reads are plain Python ones: ``int``, ``float``, ``bool``,
``str``, ``X | None``, ``Literal[...]``, ``list[...]``, ``tuple[...]``,
``dict[...]``, and ``Annotated[X, rule, ...]`` with the rules of this module
(:data:`NonEmpty`, :data:`Distinct`, :class:`Range`, :data:`Share`) for what a
type cannot say. Callers name the key: a config says ``train.lr: expected
float, got 'x'``, a notebook ``parameter 'lr' expects float, got 'x' (str)``.

With ``parse_strings`` a string is read as the number it spells, in every
literal Python accepts (``"3e-3"``, ``"1_000"``, ``"0x10"``): a ``--set``
value or an environment variable arrives as text.
"""
from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Any


class Mismatch(ValueError):
    """A value does not fit its declared type; ``expected`` names the type."""

    def __init__(self, expected: str):
        super().__init__(f"expected {expected}")
        self.expected = expected


class UnsupportedType(TypeError):
    """An annotation this checker cannot check: a bug where it is declared."""


# ---------------------------------------------------------------- rules
class Rule:
    """A rule on a value that a type cannot say, used as ``Annotated[T, rule]``."""

    def ok(self, value: Any) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


class _NonEmpty(Rule):
    def ok(self, value: Any) -> bool:
        return len(value) > 0

    def __repr__(self) -> str:
        return "NonEmpty"


class _Distinct(Rule):
    def ok(self, value: Any) -> bool:
        return len(set(map(repr, value))) == len(value)

    def __repr__(self) -> str:
        return "Distinct"


@dataclass(frozen=True)
class Range(Rule):
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


# ---------------------------------------------------------------- names
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


# ---------------------------------------------------------------- checking
def _number(value: Any, parse: type, parse_strings: bool) -> Any:
    if parse_strings and isinstance(value, str):
        try:
            return int(value.strip(), 0) if parse is int else float(value)
        except ValueError:
            return value
    return value


def _check(value: Any, tp: Any, parse_strings: bool) -> Any:
    """``value`` normalised to ``tp``; raises Mismatch (naming only the type)."""
    if tp is Any:
        return value
    if tp is None or tp is type(None):
        if value is None:
            return None
        raise Mismatch("None")
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *rules = typing.get_args(tp)
        bad = [r for r in rules if not isinstance(r, Rule)]
        if bad:
            raise UnsupportedType(f"unsupported Annotated rule {bad[0]!r}; use NonEmpty, Distinct or Range(...)")
        try:
            out = _check(value, base, parse_strings)
        except Mismatch:
            raise Mismatch(type_name(tp)) from None
        if not all(r.ok(out) for r in rules):
            raise Mismatch(type_name(tp))
        return out
    if origin is typing.Literal:
        # type equality too, so that True does not pass for Literal[1]
        if any(type(value) is type(a) and value == a for a in typing.get_args(tp)):
            return value
        raise Mismatch(type_name(tp))
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _check(value, option, parse_strings)
            except Mismatch:
                continue
        raise Mismatch(type_name(tp))
    if origin in (list, tuple) or tp in (list, tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise Mismatch(type_name(tp))
        try:
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(value) != len(args):
                    raise Mismatch(type_name(tp))
                return [_check(v, a, parse_strings) for v, a in zip(value, args)]
            return [_check(v, args[0], parse_strings) for v in value] if args else list(value)
        except Mismatch:
            raise Mismatch(type_name(tp)) from None
    if origin is dict or tp is dict:
        kt, vt = typing.get_args(tp) or (Any, Any)
        if not isinstance(value, dict):
            raise Mismatch(type_name(tp))
        try:
            return {_check(k, kt, parse_strings): _check(v, vt, parse_strings) for k, v in value.items()}
        except Mismatch:
            raise Mismatch(type_name(tp)) from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise Mismatch("bool")
    if tp is int:
        value = _number(value, int, parse_strings)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Mismatch("int")
    if tp is float:
        value = _number(value, float, parse_strings)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise Mismatch("a finite float")
            return float(value)
        raise Mismatch("float")
    if tp is str:
        if isinstance(value, str):
            return value
        raise Mismatch("str")
    raise UnsupportedType(f"unsupported type {type_name(tp)}; use int, float, str, bool, list[...], "
                          "dict[...], X | None, Literal[...] or Annotated[X, NonEmpty | Distinct | Range(...)]")


def check(value: Any, tp: Any, *, parse_strings: bool = False) -> Any:
    """``value`` normalised to ``tp``, or :class:`Mismatch` naming what was expected."""
    return _check(value, tp, parse_strings)


__all__ = ["Distinct", "Mismatch", "NonEmpty", "Range", "Rule", "Share", "UnsupportedType", "check", "type_name"]
