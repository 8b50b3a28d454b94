"""ssfer.book.tables and ssfer.book.verdicts: the tables and the paired verdicts the chapters share."""
from __future__ import annotations

import math
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ssfer.book import ch04_05_budgets as budgets, figures, tables, verdicts  # noqa: E402
from ssfer.stats import Paired, paired  # noqa: E402


class FakeRecord:
    """What the helpers read of a ssfer.record.RunRecord."""

    def __init__(self, summary=None, history=(), steps=8, class_names=("a", "b")):
        self.summary = {"class_names": list(class_names), **(summary or {})}
        self.history = list(history)
        self.config = SimpleNamespace(train=SimpleNamespace(steps=steps, threads=1))

    @property
    def class_names(self):
        return self.summary["class_names"]

    def history_frame(self):
        return pd.DataFrame(self.history)


def summary(acc, mca=0.5, f1=0.4, confusion=((3, 1), (2, 2))):
    return {"accuracy": acc, "mean_class_accuracy": mca, "macro_f1": f1, "ece": 0.1, "n_labeled": 20,
            "n_unlabeled": 80, "confusion": [list(r) for r in confusion]}


# ------------------------------------------------------------------ numbers
def test_num_formats_and_marks_missing_values():
    assert tables.num(3.14159) == "3.1"
    assert tables.num(2, "+.2f") == "+2.00"
    assert tables.num(None) == tables.num(float("nan")) == tables.num(np.float64("nan")) == "—"
    assert tables.num(float("nan"), missing="n/a") == "n/a"


def test_recall_per_class_from_a_confusion_matrix():
    cm = [[3, 1, 0], [2, 2, 0], [0, 0, 0]]  # class 2 has no test sample
    r = tables.recall_per_class(cm)
    assert r[:2].tolist() == [0.75, 0.5] and math.isnan(r[2])
    assert tables.recall_per_class([[0, 5], [0, 5]]).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="square matrix"):
        tables.recall_per_class([[1, 2, 3]])


def test_run_and_recall_tables():
    recs = {("FixMatch", 0): FakeRecord(summary(0.6)), ("DTA", 0): FakeRecord(summary(0.7, confusion=((4, 0), (1, 3))))}
    runs = tables.run_table(recs, keys=("method", "seed"))
    assert list(runs.columns[:5]) == ["method", "seed", "accuracy (%)", "mean class accuracy (%)", "macro F1 (%)"]
    assert runs["accuracy (%)"].tolist() == pytest.approx([60.0, 70.0])
    rec = tables.recall_table(recs, keys=("method", "seed"))
    assert rec[rec["method"] == "DTA"]["recall (%)"].tolist() == [100.0, 75.0]
    assert rec["class"].tolist() == ["a", "b", "a", "b"]
    with pytest.raises(ValueError, match="does not match the key names"):
        tables.run_table({"x": FakeRecord(summary(0.5))}, keys=("method", "seed"))


# ------------------------------------------------------------------ comparisons
def frame():
    return pd.DataFrame({"method": ["A"] * 3 + ["B"] * 3 + ["A", "B"],
                         "seed": [0, 1, 2, 0, 1, 2, 0, 0],
                         "budget": [100] * 6 + [400, 400],
                         "acc": [70.0, 60.0, 65.0, 68.0, 59.0, 60.0, 80.0, 75.0]})


def test_compare_pairs_by_seed_within_a_selection():
    c = verdicts.compare(frame(), "A", "B", "acc", budget=100)
    assert c.differences == pytest.approx({0: 2.0, 1: 1.0, 2: 5.0})
    assert c.paired == paired([70, 60, 65], [68, 59, 60])
    assert c.label == "A − B" and c.metric == "acc"
    one = verdicts.compare(frame(), "A", "B", "acc", budget=400)
    assert one.paired.n == 1 and one.verdict() == "one seed: no claim"
    gaps = frame().assign(acc=[70.0, float("nan"), 65.0, 68.0, 59.0, 60.0, 80.0, float("nan")])
    c2 = verdicts.compare(gaps, "A", "B", "acc", budget=100)   # seed 1 did not measure it for A
    assert c2.seeds == [0, 2] and c2.paired.n == 2 and c2.verdict() == "2 seeds: no claim"
    none = verdicts.compare(gaps, "A", "B", "acc", budget=400)
    assert none.paired.n == 0 and none.verdict() == "not measured: no claim"
    assert verdicts.interval(none.paired) == "none (not measured)"
    with pytest.raises(ValueError, match="more than one run per seed"):
        verdicts.compare(frame(), "A", "B", "acc")
    with pytest.raises(ValueError, match="no run of method='C'"):
        verdicts.compare(frame(), "A", "C", "acc", budget=100)


@pytest.mark.parametrize("p, expected", [
    (Paired(1.0, math.nan, math.nan, math.nan, 1, 1), "one seed: no claim"),
    (Paired(5.0, 0.1, 4.0, 6.0, 2, 2), "2 seeds: no claim"),        # an interval, but below MIN_SEEDS
    (Paired(1.5, 3.4, -3.0, 6.0, 2, 3), "the runs show no difference"),
    (Paired(-0.4, 3.4, -8.8, 8.0, 1, 3), "the runs show no difference"),
    (Paired(2.7, 0.5, 1.5, 3.9, 3, 3), "DTA scores higher"),
    (Paired(-2.7, 0.5, -3.9, -1.5, 0, 3), "FixMatch scores higher"),
])
def test_verdict_is_neutral_and_follows_the_interval(p, expected):
    assert verdicts.verdict(p, "DTA", "FixMatch") == expected


def test_verdict_wording_can_name_the_quantity():
    p = Paired(2.0, 0.1, 1.8, 2.2, 3, 3)
    assert verdicts.verdict(p, "DTA", "FixMatch", higher="accepts more") == "DTA accepts more"
    steady = pd.DataFrame({"method": ["A"] * 3 + ["B"] * 3, "seed": [0, 1, 2] * 2,
                           "acc": [70.0, 60.0, 65.0, 68.0, 58.1, 63.0]})
    c = verdicts.compare(steady, "B", "A", "acc", higher="is more precise")
    assert c.paired.shows_difference and c.verdict() == "A is more precise"


def _cmp(diffs, a="DTA+SNL", b="FixMatch"):
    base = {s: 70.0 + 3 * s for s in range(len(diffs))}
    return verdicts.Comparison(a, b, "acc", {s: base[s] + d for s, d in enumerate(diffs)}, base)


@pytest.mark.parametrize("main, control, expected", [
    ([2.0, 2.2, 1.9], [2.1, 1.8], "With 3 paired seeds on the profile and 2 in the control, the control supports "
                                  "no claim about DTA+SNL − FixMatch yet."),
    ([2.0, 2.2, 1.9], [1.0, 1.2, 0.9], "The difference DTA+SNL − FixMatch holds without label smoothing as well: "
                                       "DTA+SNL scores higher in both."),
    ([2.0, 2.2, 1.9], [-1.0, -1.2, -0.9], "The difference DTA+SNL − FixMatch turns round without label smoothing: "
                                          "FixMatch scores higher in the control."),
    ([2.0, 2.2, 1.9], [0.1, -0.2, 0.3], "Without label smoothing, the runs show no difference between DTA+SNL and "
                                        "FixMatch: the difference seen on the profile does not hold up in this control."),
    ([2.0, 2.2, 1.9], [1.0, -2.0, 0.5], "Without label smoothing, the runs show no difference between DTA+SNL and "
                                        "FixMatch, but the control's interval [-4.2, +3.8] also holds the profile's "
                                        "difference (+2.0): this control cannot tell whether that difference holds up."),
    ([1.0, -2.0, 0.5], [2.0, 2.2, 1.9], "Without label smoothing, DTA+SNL scores higher, where the profile's runs "
                                        "show no difference."),
    ([1.0, -2.0, 0.5], [-1.0, 2.0, 0.5], "Neither the profile nor the control (without label smoothing) shows a "
                                         "difference between DTA+SNL and FixMatch."),
])
def test_under_control_sets_the_two_verdicts_side_by_side(main, control, expected):
    assert verdicts.under_control(_cmp(main), _cmp(control), "without label smoothing") == expected


def test_comparison_table_interval_and_glue():
    c = verdicts.compare(frame(), "A", "B", "acc", budget=100)
    t = verdicts.comparison_table([c])
    p = c.paired
    assert t.iloc[0]["comparison"] == "A − B" and t.iloc[0]["mean difference"] == pytest.approx(p.mean)
    assert t.iloc[0]["95 % interval"] == f"[{p.low:+.1f}, {p.high:+.1f}]" and t.iloc[0]["wins"] == "3/3"
    assert t.iloc[0]["verdict"] == c.verdict()
    assert verdicts.interval(verdicts.compare(frame(), "A", "B", "acc", budget=400).paired) == "none (one seed)"
    named = verdicts.compare(frame(), "A", "B", "acc", budget=100, name="accuracy (%)")
    assert named.what == "accuracy (%)" and c.what == "acc"
    assert verdicts.comparison_table([named], spec="+.2f").iloc[0]["95 % interval"] == f"[{p.low:+.2f}, {p.high:+.2f}]"
    glued = {}
    verdicts.glue_comparison(lambda k, v, display: glued.__setitem__(k, v), "ab", c)
    assert glued == {"ab_mean": f"{p.mean:+.1f}", "ab_low": f"{p.low:+.1f}", "ab_high": f"{p.high:+.1f}",
                     "ab_wins": 3, "ab_n": 3, "ab_verdict": c.verdict()}
    verdicts.glue_comparison(lambda k, v, display: glued.__setitem__(k, v), "one",
                           verdicts.compare(frame(), "A", "B", "acc", budget=400))
    assert glued["one_low"] == "—" and glued["one_verdict"] == "one seed: no claim"


def test_flexmatch_phase_reads_the_warm_up_from_the_thresholds():
    assert tables.flexmatch_phase([0.02, 0.4, 0.9]) == "still in its warm-up"
    assert tables.flexmatch_phase([0.3, 0.95, 0.5]) == "out of its warm-up"
    assert tables.flexmatch_phase([0.3, 0.9], tau=0.9) == "out of its warm-up"


def test_comparability_says_when_published_rows_can_be_read_against_ours():
    assert verdicts.comparability("SynthFER", "RAF-DB").startswith("measured on SynthFER, not on RAF-DB: they cannot")
    assert verdicts.comparability("RAF-DB", "RAF-DB").startswith("measured on RAF-DB with the same protocol")
    assert all(len(verdicts.comparability(a, "RAF-DB").split()) <= 16 for a in ("RAF-DB", "SynthFER"))  # a phrase


# ------------------------------------------------------------------ pseudo labels
def history():
    # class a: 6 unlabeled seen, 4 accepted as a (3 right); class b: 2 seen, 0 accepted, then 2 accepted (1 right)
    return [
        {"step": 2, "mask_rate": 0.5, "pl_precision": 0.75, "pl_count_per_class": [4.0, 0.0],
         "pl_precision_per_class": [0.75, None], "unlabeled_count_per_class": [6.0, 2.0]},
        {"step": 4, "loss": 1.0},  # a row without pseudo-label counts (e.g. supervised) is skipped
        {"step": 8, "mask_rate": 0.25, "pl_precision": None, "pl_count_per_class": [0.0, 2.0],
         "pl_precision_per_class": [None, 0.5], "unlabeled_count_per_class": [0.0, 8.0]},
    ]


def test_pseudo_labels_whole_run_and_by_stage():
    rec = FakeRecord(history=history(), steps=8)
    tot = tables.pseudo_labels(rec).set_index("class")
    assert tot.loc["a", ["accepted", "seen", "correct"]].tolist() == [4.0, 6.0, 3.0]
    assert tot.loc["a", "quantity"] == pytest.approx(4 / 6) and tot.loc["a", "precision"] == 0.75
    assert tot.loc["b", "correct share"] == pytest.approx(1 / 10) and tot.loc["b", "precision"] == 0.5
    st = tables.pseudo_labels(rec, stages=2)
    assert st["stage"].tolist() == [0, 0, 1, 1] and st["step"].tolist() == [4.0, 4.0, 8.0, 8.0]
    first_b = st[(st["stage"] == 0) & (st["class"] == "b")].iloc[0]
    assert math.isnan(first_b["precision"])  # no pseudo label of b in the first stage
    later_a = st[(st["stage"] == 1) & (st["class"] == "a")].iloc[0]
    assert math.isnan(later_a["quantity"])    # no unlabeled face of a seen


def test_pseudo_label_course_and_window_mean():
    course = tables.pseudo_label_course({"DTA": FakeRecord(history=history()),
                                         "supervised": FakeRecord(history=[{"step": 2, "loss": 1.0}])})
    assert set(course["method"]) == {"DTA"}
    acc = course[course["quantity"] == "accepted share"]
    assert acc["step"].tolist() == [2, 4, 8] and acc["value"].iloc[0] == 0.5 and math.isnan(acc["value"].iloc[1])
    assert tables.window_mean(course, "DTA", "accepted share", 1, 8) == pytest.approx(0.375)
    assert tables.window_mean(course, "DTA", "precision", 1, 8) == 0.75
    assert math.isnan(tables.window_mean(course, "DTA", "precision", 5, 8))
    empty = tables.pseudo_label_course({"supervised": FakeRecord(history=[{"step": 2}])})
    assert empty.empty and list(empty.columns) == ["method", "step", "quantity", "value"]
    seeded = tables.pseudo_label_course({("DTA", 3): FakeRecord(history=history())}, keys=("method", "seed"))
    assert set(seeded["seed"]) == {3} and list(seeded.columns[:2]) == ["method", "seed"]


# ------------------------------------------------------------------ display
def test_table_rounds_marks_missing_and_repeats_exactly():
    df = pd.DataFrame({"method": ["A", "B"], "accuracy (%)": [19.044302, np.nan], "labeled": [10, 20]})
    t = tables.table(df, digits=1)
    html = t._repr_html_()
    assert "19.0" in html and "19.04" not in html and "—" in html and ">nan<" not in html.lower()
    assert ">10<" in html  # integers stay integers
    assert html == tables.table(df.copy(), digits=1)._repr_html_()   # a fixed id: the same HTML every run
    assert repr(t).splitlines()[1].split() == ["A", "19.0", "10"] and "—" in repr(t)
    per_col = tables.table(df, digits={"accuracy (%)": 3})._repr_html_()
    assert "19.044" in per_col


def test_plot_paired_draws_each_comparison_with_zero_marked():
    c3 = verdicts.compare(frame(), "A", "B", "acc", budget=100)
    c1 = verdicts.compare(frame(), "A", "B", "acc", budget=400)
    ax = figures.plot_paired([c3, c1], title="t")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["A − B\nacc", "A − B\nacc"] and ax.get_title() == "t"
    assert any(line.get_xdata()[0] == 0 for line in ax.get_lines())  # the dashed zero line
    assert ax.figure.legends and ax.get_legend() is None   # the legend sits below, not on the data
    plt.close("all")


def test_plot_paired_legend_names_every_kind_of_mark_shown_whatever_the_row_order():
    c3 = verdicts.compare(frame(), "A", "B", "acc", budget=100)
    c1 = verdicts.compare(frame(), "A", "B", "acc", budget=400)
    for rows in ([c1, c3], [c3, c1]):
        ax = figures.plot_paired(rows)
        texts = sorted(t.get_text() for t in ax.figure.legends[0].get_texts())
        assert texts == ["mean, 95 % interval", "one seed", "one seed only: no interval"], texts
        plt.close("all")


def test_legend_below_moves_axes_and_grid_legends_off_the_data():
    import seaborn as sns

    fig, ax = plt.subplots(layout="constrained")
    ax.plot([0, 1], label="x")
    ax.legend()
    figures.legend_below(ax)
    assert ax.get_legend() is None and len(fig.legends) == 1
    data = pd.DataFrame({"x": [0, 1, 0, 1], "y": [1, 2, 3, 4], "h": ["p", "p", "q", "q"], "c": ["u", "u", "u", "u"]})
    g = sns.relplot(data=data, x="x", y="y", hue="h", col="c", kind="line")
    figures.legend_below(g)
    assert g.legend.get_bbox_to_anchor().y0 <= g.figure.bbox.y0 + 1
    plt.close("all")


def test_cross_test_evaluates_a_run_with_its_own_thread_count(tmp_path):
    import torch

    from ssfer.book.runs import book_config
    from ssfer.train import run

    cfg = book_config(n_train=400, n_test=70, image_size=32, labels_per_class=4, model="test_resnet", steps=2,
                      batch_size=8, seed=0, device="cpu", algo__name="supervised")
    rec = run(cfg, cache_dir=tmp_path)
    before = torch.get_num_threads()
    out = budgets.cross_test(rec, "synthfer", None, {"n": 50, "seed": 1, "difficulty": 1.0}, device="cpu")
    assert out["n"] == 50 and 0 <= out["accuracy"] <= 1
    assert torch.get_num_threads() == before   # the kernel's setting is restored


# ------------------------------------------------------------------ margins and seed plans
def _p(low, high, n=5):
    return Paired((low + high) / 2, 1.0, low, high, 3, n)


@pytest.mark.parametrize("low, high, expected", [
    (-0.6, 0.8, "the runs rule out a difference of 1 point or more"),          # inside (-1, 1), holds 0
    (-0.4, 2.5, "the runs show no difference, and cannot rule out one of 1 point"),  # holds 0, reaches past 1
    (-1.0, 0.5, "the runs show no difference, and cannot rule out one of 1 point"),  # touches -1: not inside
    (1.2, 3.0, "A scores higher, by 1 point or more"),                            # excludes 0, beyond the margin
    (0.2, 0.9, "A scores higher, by less than 1 point"),                          # excludes 0, inside the margin
    (0.1, 1.34, "A scores higher; the runs cannot tell whether by 1 point or more"),  # excludes 0, reaches past 1
    (-2.0, -0.3, "B scores higher; the runs cannot tell whether by 1 point or more"),  # excludes 0 below
])
def test_margin_verdict_reads_the_interval_against_zero_and_the_margin(low, high, expected):
    assert verdicts.margin_verdict(_p(low, high), "A", "B") == expected


def test_margin_verdict_follows_the_margin_given_and_makes_no_claim_on_few_seeds():
    assert verdicts.margin_verdict(_p(-0.6, 0.8), "A", "B", margin=0.5) == \
        "the runs show no difference, and cannot rule out one of 0.5 points"
    assert verdicts.margin_verdict(_p(-0.6, 0.8, n=2), "A", "B") == "2 seeds: no claim"
    with pytest.raises(ValueError, match="margin must be > 0"):
        verdicts.margin_verdict(_p(-0.6, 0.8), "A", "B", margin=0)
    c = verdicts.Comparison("A", "B", "acc", {0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.1, 1: 2.1, 2: 2.9})
    assert c.margin_verdict() == verdicts.margin_verdict(c.paired, "A", "B")


@pytest.mark.parametrize("sd, half_width", [(0.3, 1.0), (1.0, 1.0), (1.6, 1.0), (2.0, 0.5), (0.0, 1.0)])
def test_seeds_for_half_width_is_the_fewest_seeds_that_reach_it(sd, half_width):
    from scipy import stats as st

    n = verdicts.seeds_for_half_width(sd, half_width)

    def half(k):
        return st.t.ppf(0.975, k - 1) * sd / math.sqrt(k)

    assert half(n) <= half_width
    assert n == 2 or half(n - 1) > half_width


def test_seeds_for_half_width_by_hand_and_bad_input():
    # sd 1: t(0.975, 6) = 2.447, 2.447 / sqrt 7 = 0.92 <= 1, and t(0.975, 5) / sqrt 6 = 1.05 > 1
    assert verdicts.seeds_for_half_width(1.0, 1.0) == 7
    with pytest.raises(ValueError, match="half_width"):
        verdicts.seeds_for_half_width(1.0, 0.0)
    with pytest.raises(ValueError, match="sd"):
        verdicts.seeds_for_half_width(float("nan"), 1.0)


def test_family_summary_counts_each_kind_of_answer():
    def cmp_(a, diffs):
        return verdicts.Comparison(a, "B", "acc", {s: 70.0 + d for s, d in enumerate(diffs)},
                                 {s: 70.0 for s in range(len(diffs))})

    fam = [cmp_("A1", [2.0, 2.2, 1.9]), cmp_("A2", [0.1, -0.1, 0.05, 0.0]), cmp_("A3", [1.0, -2.0, 0.5]),
           cmp_("A4", [1.0, 2.0])]
    assert verdicts.family_summary(fam, planned=5) == (
        "Of the 5 planned comparisons, 1 shows a difference (A1 higher in A1 − B), "
        "1 rules out a difference of 1 point or more (A2 − B), "
        "1 shows no difference but cannot rule out one that large (A3 − B) and "
        "2 have fewer than 3 paired seeds, too few for a claim.")


def test_pair_values_format_with_the_spec_asked_for_so_an_end_near_0_does_not_read_as_0():
    from ssfer.book import grid_tables

    # FlexMatch − FixMatch over three seeds: +0.30, +0.60, +0.91 (mean +0.60)
    rows = pd.DataFrame([{"method": m, "seed": s, "accuracy (%)": 70.0 + (d if m == "FlexMatch" else 0.0)}
                         for s, d in enumerate((0.30, 0.60, 0.91)) for m in ("FlexMatch", "FixMatch")])
    one = grid_tables.pair_values("lead", rows, "FlexMatch", "FixMatch")
    two = grid_tables.pair_values("lead", rows, "FlexMatch", "FixMatch", spec="+.2f")
    p = paired([0.30, 0.60, 0.91], [0.0, 0.0, 0.0])
    assert two["lead_low"] == format(p.low, "+.2f") and one["lead_low"] == format(p.low, "+.1f")
    assert two["lead_mean"] == "+0.60" and one["lead_mean"] == "+0.6"
    assert two["lead_verdict"] == one["lead_verdict"]
