"""The planned families of grid.yaml, read family-wise (Holm at 0.05) beside the
95 % interval and the 1-point margin."""
from pathlib import Path

import pandas as pd
import pytest

from ssfer.book import grid_tables as gt
from ssfer.book.verdicts import compare, family_verdict
from ssfer.config import ConfigError
from ssfer.stats import holm

REPO = Path(__file__).resolve().parents[1]


def _runs(rows):
    return pd.DataFrame([{"data set": "FERPlus", "budget": b, "variant": "no label smoothing", "method": m,
                          "seed": s, "accuracy (%)": v} for b, m, s, v in rows])


def test_the_committed_grid_names_its_families_and_the_primary_one_is_the_planned_family():
    families = {f.name: f for f in gt.load_families(REPO / "results" / "grid.yaml")}
    assert list(families) == ["primary", "25 % labeled", "5 % labeled", "1 % labeled", "the paper's claim",
                              "pretrained", "pretrained against from scratch"]
    primary = families["primary"]
    assert [(a["method"], b["method"]) for a, b in primary.pairs] == list(gt.PLANNED)
    assert all(a["budget"] == b["budget"] == "10 % labeled" for a, b in primary.pairs)
    claim = families["the paper's claim"]
    assert [claim.label(a) for a, _ in claim.pairs] == [f"DTA+SNL at {b} % labeled" for b in (1, 5, 10, 25)]
    assert {claim.label(b) for _, b in claim.pairs} == {"supervised at all labels"}
    # issue 32: the pretrained start's family and its two interactions with the start
    assert families["pretrained"].labels() == ["DTA+SNL − FixMatch", "FixMatch − supervised", "DTA+SNL − supervised"]
    assert families["pretrained against from scratch"].labels() == [
        "(DTA+SNL − FixMatch) pretrained − (DTA+SNL − FixMatch) from scratch",
        "(FixMatch − supervised) pretrained − (FixMatch − supervised) from scratch"]


def test_a_family_is_read_with_holm_over_its_measured_comparisons():
    fam = gt.Family("f", {"budget": "10 % labeled"}, (
        ({"budget": "10 % labeled", "method": "A"}, {"budget": "10 % labeled", "method": "C"}),
        ({"budget": "10 % labeled", "method": "B"}, {"budget": "10 % labeled", "method": "C"}),
        ({"budget": "10 % labeled", "method": "D"}, {"budget": "10 % labeled", "method": "C"})))
    c = [70.0, 71.0, 72.0, 70.5, 71.5]
    a = [x + d for x, d in zip(c, [2.0, 2.2, 1.8, 2.1, 1.9])]     # a clear lead of about 2
    b = [x + d for x, d in zip(c, [0.9, -0.2, 1.1, 0.2, 0.6])]    # +0.52, p about 0.07 alone
    table = _runs([("10 % labeled", m, s, v) for m, vs in (("A", a), ("B", b), ("C", c)) for s, v in enumerate(vs)])
    out = gt.family_table(table, fam)
    assert list(out["comparison"]) == ["A − C", "B − C", "D − C"]
    raw = [compare(table, "A", "C", "accuracy (%)").paired.p, compare(table, "B", "C", "accuracy (%)").paired.p]
    assert list(out["p"][:2]) == pytest.approx(raw)
    assert list(out["Holm p"][:2]) == pytest.approx(holm(raw))     # D has no run: m = 2
    assert out["family-wise verdict"][0] == "A scores higher, by 1 point or more"
    assert out["family-wise verdict"][1].startswith("no difference family-wise")
    assert out["family-wise verdict"][2] == "not recorded yet: no claim" and out["seeds"][2] == 0


def test_a_family_compares_across_regimes_paired_by_seed():
    fam = next(f for f in gt.load_families(REPO / "results" / "grid.yaml") if f.name == "the paper's claim")
    table = _runs([("1 % labeled", "DTA+SNL", s, 60.0 + s) for s in range(5)]
                  + [("all labels", "supervised", s, 80.0 + s) for s in range(5)]
                  + [("25 % labeled", "DTA+SNL", s, 79.9 + s) for s in range(3)])
    out = gt.family_table(table, fam).set_index("comparison")
    row = out.loc["DTA+SNL at 1 % labeled − supervised at all labels"]
    assert row["seeds"] == 5 and row["mean difference"] == pytest.approx(-20.0)
    assert row["family-wise verdict"] == "supervised at all labels scores higher, by 1 point or more"
    near = out.loc["DTA+SNL at 25 % labeled − supervised at all labels"]
    assert near["seeds"] == 3 and near["mean difference"] == pytest.approx(-0.1)
    assert out.loc["DTA+SNL at 5 % labeled − supervised at all labels", "seeds"] == 0


@pytest.mark.parametrize("low, high, adjusted, said", [
    (0.10, 1.34, 0.08, "no difference family-wise, and the runs cannot rule out one of 1 point"),
    (0.10, 1.34, 0.01, "A scores higher; the runs cannot tell whether by 1 point or more"),
    (0.20, 0.80, 0.01, "A scores higher, by less than 1 point"),
    (1.20, 2.00, 0.01, "A scores higher, by 1 point or more"),
    (-0.40, 0.30, 0.60, "no difference family-wise; the runs rule out one of 1 point or more"),
    (-1.50, -1.10, 0.001, "B scores higher, by 1 point or more"),
])
def test_family_verdicts_read_the_adjusted_p_and_the_margin(low, high, adjusted, said):
    mid, half = (low + high) / 2, (high - low) / 2
    # ten seeds whose t-interval is exactly [low, high]: differences mid ± k
    from scipy import stats as st
    k = half / (st.t.ppf(0.975, 9) / 10 ** 0.5) * (9 / 10) ** 0.5
    d = [mid + k if i % 2 else mid - k for i in range(10)]
    table = _runs([("x", "A", s, 70.0 + v) for s, v in enumerate(d)] + [("x", "B", s, 70.0) for s in range(10)])
    c = compare(table, "A", "B", "accuracy (%)")
    assert (c.paired.low, c.paired.high) == pytest.approx((low, high))
    assert family_verdict(c, adjusted) == said


def test_holm_plan_names_the_seeds_each_comparison_needs_to_clear_0_after_the_correction():
    fam = gt.Family("f", {}, (({"method": "A"}, {"method": "C"}), ({"method": "B"}, {"method": "C"})))
    c = [70.0, 71.0, 72.0, 70.5, 71.5]
    table = _runs([("x", "A", s, v + d) for s, (v, d) in enumerate(zip(c, [2.0, 2.2, 1.8, 2.1, 1.9]))]
                  + [("x", "B", s, v + d) for s, (v, d) in enumerate(zip(c, [0.9, -0.2, 1.1, 0.2, 0.6]))]
                  + [("x", "C", s, v) for s, v in enumerate(c)])
    plan = gt.holm_plan(table, fam).set_index("comparison")
    assert plan.loc["A − C", "Holm level"] == pytest.approx(0.025)    # the smaller p is tested first, at alpha/2
    assert plan.loc["B − C", "Holm level"] == pytest.approx(0.05)
    assert plan.loc["A − C", "seeds to clear 0"] <= 5 < plan.loc["B − C", "seeds to clear 0"]


def test_a_bad_family_is_named(tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text("groups: []\nfamilies:\n  - {name: x, compare: [[A]]}\n")
    with pytest.raises(ConfigError, match=r"families\[0\].compare\[0\]: expected \[A, B\]"):
        gt.load_families(g)
    g.write_text("groups: []\nfamilies:\n  - {name: x, compare: [[A, {budget: 1}]]}\n")
    with pytest.raises(ConfigError, match="a side is a method name or a mapping with 'method'"):
        gt.load_families(g)


def test_family_and_plan_on_an_empty_results_folder_say_nothing_is_recorded(tmp_path, capsys):
    """They raised KeyError: 'data set' on a folder with no run."""
    from ssfer.cli import main

    empty = tmp_path / "results"
    empty.mkdir()
    grid = str(REPO / "results" / "grid.yaml")
    assert main(["results", "family", "--results-dir", str(empty), "--grid", grid]) == 0
    out = capsys.readouterr().out
    assert "0 runs recorded" in out and "not recorded yet: no claim" in out
    assert main(["results", "plan", "--results-dir", str(empty), "--grid", grid]) == 0
    assert "0 seeds recorded for every method" in capsys.readouterr().out


def test_a_family_read_before_its_planned_seeds_are_recorded_shows_itself_as_interim():
    fam = gt.Family("f", {"budget": "10 % labeled"}, (
        ({"budget": "10 % labeled", "method": "A"}, {"budget": "10 % labeled", "method": "C"}),
        ({"budget": "10 % labeled", "method": "B"}, {"budget": "10 % labeled", "method": "C"})))
    table = _runs([("10 % labeled", m, s, 70.0 + s + (m == "A")) for m in "ABC" for s in range(3)])
    # A and C planned at seeds 0-5, B at 0-2 and 7: B − C pairs on seeds 0-2 only
    planned = _runs([("10 % labeled", m, s, 0.0) for m in "AC" for s in range(6)]
                    + [("10 % labeled", "B", s, 0.0) for s in (0, 1, 2, 7)])
    out = gt.family_table(table, fam, planned=planned)
    assert list(out.columns[:3]) == ["comparison", "seeds", "planned seeds"]
    assert list(out["seeds"]) == [3, 3] and list(out["planned seeds"]) == [6, 3]
    assert "planned seeds" not in gt.family_table(table, fam)


def test_an_interaction_is_the_per_seed_difference_of_two_regimes_differences(tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text("families:\n  - name: i\n    where: {budget: 10 % labeled, variant: no label smoothing}\n    compare:\n"
                 "      - [A, B]\n"
                 "      - interaction: [A, B]\n"
                 "        between: [{variant: pre, as: pretrained}, {variant: no label smoothing, as: from scratch}]\n")
    (fam,) = gt.load_families(g)
    rows = []
    for s in range(4):
        # from scratch A leads by 1 + 0.1 s; pretrained A leads by 0.2 s: the lead shrinks by 1 - 0.1 s
        rows += [("no label smoothing", "A", s, 71.0 + 0.1 * s), ("no label smoothing", "B", s, 70.0),
                 ("pre", "A", s, 75.0 + 0.2 * s), ("pre", "B", s, 75.0)]
    table = pd.DataFrame([{"budget": "10 % labeled", "variant": v, "method": m, "seed": s, "accuracy (%)": x}
                          for v, m, s, x in rows])
    (plain, inter) = fam.comparisons(table)
    assert inter.label == "(A − B) pretrained − (A − B) from scratch"
    assert inter.differences == pytest.approx({s: 0.2 * s - (1 + 0.1 * s) for s in range(4)})
    out = gt.family_table(table, fam)
    assert list(out["comparison"]) == ["A − B", "(A − B) pretrained − (A − B) from scratch"]
    assert list(out["Holm p"]) == pytest.approx(holm([plain.paired.p, inter.paired.p]))
    assert out["family-wise verdict"][1].startswith("(A − B) from scratch is larger")
    # a regime without runs: the interaction is not recorded yet, the pair is still read
    out = gt.family_table(table[table["variant"] != "pre"], fam)
    assert out["family-wise verdict"][1] == "not recorded yet: no claim"
    planned = table[["budget", "variant", "method", "seed"]]
    assert list(gt.family_table(table, fam, planned=planned)["planned seeds"]) == [4, 4]


@pytest.mark.parametrize("compare, message", [
    ("[{interaction: [A, B], between: [{variant: x}]}]", "an interaction is"),
    ("[{interaction: [A, B], between: [{variant: x}, {variant: y}], as: z}]", "an interaction is"),
    ("[{interaction: [A, B], between: [{variant: x}, {variant: y}]}, [A, B]]", "list the pairs before"),
])
def test_a_malformed_interaction_is_named(tmp_path, compare, message):
    g = tmp_path / "g.yaml"
    g.write_text(f"families:\n  - {{name: i, compare: {compare}}}\n")
    with pytest.raises(ConfigError, match=message):
        gt.load_families(g)
