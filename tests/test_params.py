"""ssfer.book.params: typed notebook parameters."""
from __future__ import annotations

import typing
from typing import Literal

import nbformat
import pytest

from ssfer.book.params import (ParameterError, check, check_parameters, declared_parameters,
                          parse_annotation, parse_parameters)


def ns(annotations: dict, **values) -> dict:
    """A namespace as IPython leaves it after the parameters cell."""
    return {"__annotations__": annotations, "__name__": "__main__", "In": [""], "Out": {},
            "typing": typing, "Literal": Literal, **values}


def test_declared_values_come_back_and_ints_widen_to_float():
    P = check(ns({"n": int, "lr": float, "name": str, "flag": bool}, n=3, lr=1, name="x", flag=False))
    assert (P.n, P.lr, P.name, P.flag) == (3, 1.0, "x", False)
    assert type(P.lr) is float


def test_unknown_injected_name_is_rejected_by_name():
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) n_label_per_class") as e:
        check(ns({"n_labels_per_class": int}, n_labels_per_class=10, n_label_per_class=20))
    assert "n_labels_per_class" in str(e.value)  # lists what is declared


def test_modules_functions_classes_and_private_names_are_not_parameters():
    import math

    def helper():
        pass

    P = check(ns({"n": int}, n=1, math=math, helper=helper, Thing=type("Thing", (), {}),
                 _secret=5, _i1="n: int = 1"))
    assert vars(P) == {"n": 1}


@pytest.mark.parametrize("tp, good, bad", [
    (int, [0, -3, 10**12], [True, 1.5, "1", None]),
    (float, [0.5, 2, -1e-3], [True, "0.5", None]),
    (str, ["", "cpu"], [1, None, b"x"]),
    (bool, [True, False], [0, 1, "true", None]),
    (list[int], [[], [1, 2]], [[1, "2"], [True], (1, "a"), 3]),
    (list[str], [["a"], []], [["a", 1], "ab"]),
    (str | None, [None, "x"], [1, False]),
    (typing.Optional[int], [None, 2], ["2", False]),
    (Literal["spatial", "region"], ["spatial", "region"], ["grid", None, 1]),
    (Literal[1, 2], [1, 2], [True, 3, 1.0]),
])
def test_each_type_accepts_and_rejects(tp, good, bad):
    for v in good:
        check(ns({"p": tp}, p=v))
    for v in bad:
        with pytest.raises(ParameterError, match=r"parameter 'p' expects .* got "):
            check(ns({"p": tp}, p=v))


def test_error_names_parameter_expected_type_and_value():
    with pytest.raises(ParameterError) as e:
        check(ns({"steps": int}, steps="100"))
    assert str(e.value) == "parameter 'steps' expects int, got '100' (str)"
    with pytest.raises(ParameterError, match=r"expects Literal\['a', 'b'\], got 'c'"):
        check(ns({"mode": Literal["a", "b"]}, mode="c"))
    with pytest.raises(ParameterError, match=r"expects str \| None, got 3"):
        check(ns({"root": str | None}, root=3))


def test_string_annotations_are_read():
    P = check(ns({"ids": "list[int]", "mode": "Literal['a', 'b']"}, ids=[1], mode="b"))
    assert P.ids == [1] and P.mode == "b"


def test_declared_without_value_is_an_error():
    with pytest.raises(ParameterError, match="'n' is declared as int but has no value"):
        check(ns({"n": int}))


def test_history_limits_candidates_to_cells_before_the_check():
    # Re-running the check after later cells assigned results must not fail,
    # but a name injected before the first check still does.
    history = ["", "n: int = 1", "n = 2\ntypo = 3", "P = ssfer.book.params.check(globals())", "acc = 0.9"]
    d = ns({"n": int}, n=2, typo=3, acc=0.9)
    d["In"] = history
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) typo:"):
        check(d)
    del d["typo"]
    assert check(d).n == 2  # `acc` came after the check cell


def test_parse_parameters_reads_types_defaults_and_rejects_untyped():
    src = ('from typing import Literal\n'
           'n: int = 10  # labels per class\n'
           'mode: Literal["a", "b"] = "a"\n'
           'root: str | None = None\n'
           'ids: list[int] = [1, 2]\n')
    assert parse_parameters(src) == {"n": ("int", 10), "mode": ("Literal['a', 'b']", "a"),
                                     "root": ("str | None", None), "ids": ("list[int]", [1, 2])}
    with pytest.raises(ParameterError, match=r"cell, line 2: steps has no type annotation"):
        parse_parameters("n: int = 1\nsteps = 3\n", where="cell")
    with pytest.raises(ParameterError, match="line 1: the default of 'n' must be a literal"):
        parse_parameters("n: int = len('ab')\n")


def test_declared_parameters_from_notebook_file(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("n: int = 3  # count\nlr: float = 0.1")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell, nbformat.v4.new_code_cell("x = 1")]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert declared_parameters(path) == {"n": ("int", 3), "lr": ("float", 0.1)}


def test_check_parameters_before_running():
    declared = {"n": ("int", 3), "lr": ("float", 0.1), "mode": ("Literal['a', 'b']", "a")}
    assert check_parameters(declared, {"n": 5, "lr": 1}, "01_x") == {"n": 5, "lr": 1.0}
    with pytest.raises(ParameterError, match=r"01_x: unknown parameter\(s\) nn "):
        check_parameters(declared, {"nn": 5}, "01_x")
    with pytest.raises(ParameterError, match=r"01_x: parameter 'mode' expects Literal\['a', 'b'\], got 'c'"):
        check_parameters(declared, {"mode": "c"}, "01_x")


def test_parse_annotation_rejects_unknown_names():
    assert parse_annotation("dict[str, float]") == dict[str, float]
    with pytest.raises(ParameterError, match="cannot read the annotation 'np.ndarray'"):
        parse_annotation("np.ndarray")


def test_annotated_rules_non_empty_distinct_and_range():
    from typing import Annotated

    from ssfer.book.params import Distinct, NonEmpty, Range

    seeds = Annotated[list[int], NonEmpty, Distinct]
    assert check(ns({"seeds": seeds}, seeds=[0, 1, 2])).seeds == [0, 1, 2]
    for bad in ([], [0, 0], [0, "1"]):
        with pytest.raises(ParameterError, match=r"parameter 'seeds' expects list\[int\] \(NonEmpty, Distinct\)"):
            check(ns({"seeds": seeds}, seeds=bad))
    from ssfer.book.params import Share

    assert Share == Range(0, 1, low_open=True)
    fractions = Annotated[list[float], NonEmpty, Share]
    assert check(ns({"f": fractions}, f=[0.5, 1])).f == [0.5, 1.0]  # ints widen inside Annotated too
    for bad in ([0.0], [1.5], [], [float("nan")]):
        with pytest.raises(ParameterError, match=r"expects list\[float\] \(NonEmpty, Range\(0, 1\]\)"):
            check(ns({"f": fractions}, f=bad))
    steps = Annotated[int, Range(1)]
    check(ns({"n": steps}, n=1))
    with pytest.raises(ParameterError, match=r"expects int \(Range\[1, inf\)\), got 0"):
        check(ns({"n": steps}, n=0))
    with pytest.raises(ParameterError, match="unsupported Annotated rule"):
        check(ns({"n": Annotated[int, "positive"]}, n=1))


def test_annotated_rules_are_read_from_a_parameters_cell_and_checked_before_running():
    src = ("from typing import Annotated, Literal\n"
           "from ssfer.book.params import Distinct, NonEmpty, Range\n"
           "seeds: Annotated[list[int], NonEmpty, Distinct] = [0, 1, 2]  # one run per seed\n"
           "sources: Annotated[list[Literal['labeled', 'unlabeled']], NonEmpty] = ['labeled']\n"
           "share: Annotated[float, Range(0, 1, low_open=True)] = 0.1\n")
    decl = parse_parameters(src)
    assert decl["seeds"] == ("Annotated[list[int], NonEmpty, Distinct]", [0, 1, 2])
    assert check_parameters(decl, {"seeds": [3, 4], "share": 1}) == {"seeds": [3, 4], "share": 1.0}
    with pytest.raises(ParameterError, match=r"parameter 'sources' expects list\[Literal\['labeled', 'unlabeled'\]\]"):
        check_parameters(decl, {"sources": ["both"]})
    with pytest.raises(ParameterError, match="parameter 'seeds'"):
        check_parameters(decl, {"seeds": [1, 1]})
