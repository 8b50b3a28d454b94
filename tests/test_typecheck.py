"""The one type checker behind configs and notebook parameters (ssfer.typecheck)."""
from typing import Annotated, Literal

import pytest

from ssfer import typecheck
from ssfer.config import Config
from ssfer.errors import ConfigError
from ssfer.book.params import ParameterError, check_value
from ssfer.typecheck import Distinct, Mismatch, NonEmpty, Range, check


@pytest.mark.parametrize("value, tp, expected", [
    (3, float, 3.0), ((1, 2), list[float], [1.0, 2.0]), (None, int | None, None), ("a", Literal["a", "b"], "a"),
    ({"k": 1}, dict[str, int], {"k": 1}), ([0, 1], Annotated[list[int], NonEmpty, Distinct], [0, 1]),
])
def test_accepts_and_normalises(value, tp, expected):
    got = check(value, tp)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value, tp, expected", [
    (True, int, "int"), (1, Literal[True], "Literal[True]"), ("3", int, "int"), (float("nan"), float, "a finite float"),
    ([1, "x"], list[int], "list[int]"), ([], Annotated[list[int], NonEmpty], "list[int] (NonEmpty)"),
    (0, Annotated[int, Range(1)], "int (Range[1, inf))"), ("c", Literal["a", "b"] | None, "Literal['a', 'b'] | None"),
])
def test_rejects_naming_the_type(value, tp, expected):
    with pytest.raises(Mismatch) as e:
        check(value, tp)
    assert e.value.expected == expected


def test_strings_are_numbers_only_when_asked():
    assert check("3e-3", float, parse_strings=True) == 0.003
    assert check("0x10", int, parse_strings=True) == 16
    with pytest.raises(Mismatch):
        check("3e-3", float)
    with pytest.raises(Mismatch):
        check("010", int, parse_strings=True)  # not a Python int literal: no silent octal


def test_unsupported_annotation_is_a_bug_not_a_mismatch():
    with pytest.raises(typecheck.UnsupportedType):
        check(1, set[int])


def test_config_and_parameters_say_the_same_thing():
    with pytest.raises(ConfigError, match=r"^train\.lr: expected float, got 'fast'$"):
        Config.default().with_overrides({"train.lr": "fast"})
    with pytest.raises(ParameterError, match=r"^parameter 'lr' expects float, got 'fast' \(str\)$"):
        check_value("lr", "fast", float)
    with pytest.raises(ConfigError, match=r"^train\.optimizer: expected Literal\['sgd', 'adamw'\], got 'adam'$"):
        Config.default().with_overrides({"train.optimizer": "adam"})
