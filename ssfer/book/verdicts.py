"""Paired comparisons and the words the book reads them with.

A comparison of two methods is a paired difference over seeds
(:func:`ssfer.stats.paired`): :func:`compare` builds one from a table of runs,
:func:`verdict` turns it into a short, neutral phrase the prose can glue in
("the runs show no difference", "DTA scores higher", "one seed: no claim"),
:func:`margin_verdict` reads it against the margin :data:`MARGIN` as well,
:func:`holm` reads a planned family family-wise, and :func:`comparison_table`
shows them. Numbers in, words out: no plotting here (``ssfer.book.figures``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ssfer.book.tables import glue_values, num, select
from ssfer.stats import Paired, paired

__all__ = ["ALPHA", "MARGIN", "MIN_SEEDS", "NO_DIFFERENCE", "Comparison", "amount", "comparability", "compare",
           "compare_rows", "comparison_table", "comparison_values", "family_summary", "family_verdict",
           "glue_comparison", "interval", "margin_verdict", "p_text", "seeds_for_half_width", "under_control",
           "verdict"]

MIN_SEEDS = 3          # fewer paired seeds than this: the book makes no claim
NO_DIFFERENCE = "the runs show no difference"
MARGIN = 1.0           # points of test accuracy: the difference an answer must be able to rule out


@dataclass(frozen=True)
class Comparison:
    """Method ``a`` against method ``b`` on one metric, seed by seed (same seed: same labeled split)."""

    a: str
    b: str
    metric: str
    a_scores: Mapping[int, float]
    b_scores: Mapping[int, float]
    name: str | None = None      # what the metric measures, for tables and figures (default: the column)
    higher: str = "scores higher"  # the verdict's words for "is higher" ("accepts more", "is more precise")

    @property
    def what(self) -> str:
        return self.name or self.metric

    @property
    def seeds(self) -> list[int]:
        return sorted(set(self.a_scores) & set(self.b_scores))

    @property
    def differences(self) -> dict[int, float]:
        return {s: self.a_scores[s] - self.b_scores[s] for s in self.seeds}

    @property
    def paired(self) -> Paired:
        if not self.seeds:  # no seed measured it for both methods (e.g. a precision with no pseudo label)
            nan = math.nan
            return Paired(nan, nan, nan, nan, 0, 0)
        return paired(dict(self.a_scores), dict(self.b_scores))

    @property
    def label(self) -> str:
        return f"{self.a} − {self.b}"

    def verdict(self) -> str:
        return verdict(self.paired, self.a, self.b, self.higher)

    def margin_verdict(self, margin: float = MARGIN) -> str:
        return margin_verdict(self.paired, self.a, self.b, margin, higher=self.higher)


def compare(table: pd.DataFrame, a: str, b: str, metric: str, by: str = "method", seed: str = "seed",
            name: str | None = None, higher: str = "scores higher", **where: Any) -> Comparison:
    """``a`` against ``b`` (values of column ``by``) on ``metric``, paired by the ``seed`` column,
    over the rows matching ``where`` (e.g. ``budget=100``); ``name`` says what the metric is,
    ``higher`` how the verdict words a higher value."""
    return compare_rows(select(table, **where), {by: a}, {by: b}, metric, a, b, seed=seed, name=name, higher=higher,
                        context=f" where {where}" if where else "")


def compare_rows(table: pd.DataFrame, a: Mapping[str, Any], b: Mapping[str, Any], metric: str, a_label: str,
                 b_label: str, seed: str = "seed", name: str | None = None, higher: str = "scores higher",
                 context: str = "") -> Comparison:
    """The rows matching ``a`` (column values, e.g. ``{"method": "DTA+SNL", "budget":
    "1 % labeled"}``) against those matching ``b``, paired by the ``seed`` column:
    a comparison across regimes too, named ``a_label − b_label``. Each side must
    hold one run per seed."""

    def scores(side: Mapping[str, Any]) -> dict[int, float]:
        sel = select(table, **side)
        said = ", ".join(f"{k}={v!r}" for k, v in side.items())
        if sel.empty:
            raise ValueError(f"compare: no run of {said}{context}")
        if sel[seed].duplicated().any():
            raise ValueError(f"compare: {said} has more than one run per seed; narrow it with where=")
        # a seed whose run did not measure the metric (NaN: say, a precision without any
        # pseudo label) is left out of the pairing; the comparison's n says how many remain
        return {int(s): float(v) for s, v in zip(sel[seed], sel[metric]) if math.isfinite(v)}

    return Comparison(a_label, b_label, metric, scores(a), scores(b), name, higher)


def verdict(p: Paired, a: str, b: str, higher: str = "scores higher") -> str:
    """A short phrase that is true whatever the numbers: no claim below
    :data:`MIN_SEEDS` seeds, "the runs show no difference" when the 95 %
    interval holds 0, else which of ``a`` and ``b`` is higher."""
    if p.n < MIN_SEEDS:
        return {0: "not measured: no claim", 1: "one seed: no claim"}.get(p.n, f"{p.n} seeds: no claim")
    if not p.shows_difference:
        return NO_DIFFERENCE
    return f"{a if p.mean > 0 else b} {higher}"


def margin_verdict(p: Paired, a: str, b: str, margin: float = MARGIN, unit: str = "points",
                   higher: str = "scores higher") -> str:
    """:func:`verdict` read against an equivalence margin δ as well as against 0:

    - an interval that excludes 0: "A scores higher", "by less than δ points"
      inside (−δ, +δ), "by δ points or more" wholly beyond δ, and otherwise
      "the runs cannot tell whether by δ points or more";
    - one wholly inside (−δ, +δ): "the runs rule out a difference of δ points or more";
    - otherwise: "the runs show no difference, and cannot rule out one of δ points".

    Below :data:`MIN_SEEDS` seeds it makes no claim, as :func:`verdict`."""
    if not margin > 0:
        raise ValueError(f"margin_verdict: margin must be > 0, got {margin}")
    if p.n < MIN_SEEDS:
        return verdict(p, a, b, higher)
    inside = -margin < p.low and p.high < margin
    d = amount(margin, unit)
    if p.shows_difference:
        said = verdict(p, a, b, higher)
        if inside:
            return f"{said}, by less than {d}"
        beyond = p.low >= margin or p.high <= -margin
        return f"{said}, by {d} or more" if beyond else f"{said}; the runs cannot tell whether by {d} or more"
    if inside:
        return f"the runs rule out a difference of {d} or more"
    return f"{NO_DIFFERENCE}, and cannot rule out one of {d}"


def amount(value: float, unit: str = "points") -> str:
    """``1 point``, ``0.5 points``."""
    return f"{value:g} {unit[:-1] if value == 1 and unit.endswith('s') else unit}"


def seeds_for_half_width(sd: float, half_width: float, confidence: float = 0.95, at_most: int = 1000) -> int:
    """The fewest paired seeds whose t-interval, at this standard deviation of the
    paired differences, is at most ``half_width`` wide each side: n ≈ (t·sd/h)²
    with t = t(0.5 + confidence/2, n − 1), iterated from the normal quantile to
    its fixed point and then checked down to the smallest n that meets it."""
    from scipy import stats as st

    if not (sd >= 0 and half_width > 0 and math.isfinite(sd)):
        raise ValueError(f"seeds_for_half_width: need sd >= 0 and half_width > 0, got sd={sd}, "
                         f"half_width={half_width}")

    def half(n: int) -> float:
        return float(st.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)

    n = max(2, math.ceil((float(st.norm.ppf(0.5 + confidence / 2)) * sd / half_width) ** 2))
    for _ in range(100):  # t(n-1) falls as n grows: the iteration rises to its fixed point
        nxt = max(2, math.ceil((float(st.t.ppf(0.5 + confidence / 2, n - 1)) * sd / half_width) ** 2))
        if nxt <= n or nxt > at_most:
            n = min(max(n, nxt), at_most)
            break
        n = nxt
    while n > 2 and half(n - 1) <= half_width:
        n -= 1
    while n < at_most and half(n) > half_width:
        n += 1
    return n


def under_control(main: Comparison, control: Comparison, change: str) -> str:
    """One sentence on whether a comparison survives a control run with one setting
    changed (``change``, e.g. "without label smoothing"), true whatever the numbers:
    it sets the two verdicts side by side, with :func:`verdict`'s rules. A control
    that shows no difference while its interval still holds the profile's
    difference is reported as unable to tell, not as the difference failing."""
    m, c = main.paired, control.paired
    if m.n < MIN_SEEDS or c.n < MIN_SEEDS:
        return (f"With {m.n} paired seeds on the profile and {c.n} in the control, "
                f"the control supports no claim about {main.label} yet.")
    if m.shows_difference and c.shows_difference:
        if (m.mean > 0) == (c.mean > 0):
            return f"The difference {main.label} holds {change} as well: {control.verdict()} in both."
        return f"The difference {main.label} turns round {change}: {control.verdict()} in the control."
    if m.shows_difference:
        said = f"{change[0].upper() + change[1:]}, the runs show no difference between {main.a} and {main.b}"
        if c.low <= m.mean <= c.high:  # the control is as consistent with the profile's difference as with none
            return (f"{said}, but the control's interval {interval(c)} also holds the profile's difference "
                    f"({m.mean:+.1f}): this control cannot tell whether that difference holds up.")
        return f"{said}: the difference seen on the profile does not hold up in this control."
    if c.shows_difference:
        return f"{change[0].upper() + change[1:]}, {control.verdict()}, where the profile's runs show no difference."
    return f"Neither the profile nor the control ({change}) shows a difference between {main.a} and {main.b}."


def comparison_table(comparisons: Iterable[Comparison], spec: str = "+.1f") -> pd.DataFrame:
    """One row per comparison: what is compared, the mean paired difference (in the
    metric's own unit: points for a score in %), its 95 % interval, wins and the verdict."""
    rows = []
    for c in comparisons:
        p = c.paired
        rows.append({"comparison": c.label, "metric": c.what, "mean difference": p.mean,
                     "95 % interval": interval(p, spec), "wins": f"{p.wins}/{p.n}", "verdict": c.verdict()})
    return pd.DataFrame(rows)


def interval(p: Paired, spec: str = "+.1f") -> str:
    """``[-1.2, +3.4]``, or ``none (one seed)``."""
    if p.n < 2:
        return "none (one seed)" if p.n == 1 else "none (not measured)"
    return f"[{format(p.low, spec)}, {format(p.high, spec)}]"


def comparison_values(name: str, c: Comparison, spec: str = "+.1f") -> dict:
    """``name_mean``, ``name_low``, ``name_high`` (formatted; "—" without an interval),
    ``name_wins``, ``name_n`` and ``name_verdict``: what the prose cites of ``c``."""
    p = c.paired
    return {f"{name}_mean": num(p.mean, spec), f"{name}_low": num(p.low, spec), f"{name}_high": num(p.high, spec),
            f"{name}_wins": p.wins, f"{name}_n": p.n, f"{name}_verdict": c.verdict()}


def glue_comparison(glue: Callable, name: str, c: Comparison, spec: str = "+.1f") -> None:
    """Glue ``comparison_values(name, c, spec)`` for the prose."""
    glue_values(glue, comparison_values(name, c, spec))


def family_summary(comparisons: Sequence[Comparison], planned: int, margin: float = MARGIN,
                   adjusted: Sequence[float] | None = None, alpha: float = 0.05) -> str:
    """One sentence over a planned family, true whatever the numbers: how many of
    its ``planned`` comparisons show a difference (and which way), how many rule out
    a difference of ``margin`` or more, and how many cannot tell or have too few
    seeds for a claim. With ``adjusted`` (each comparison's Holm-adjusted p), a
    difference is shown only family-wise: adjusted p at most ``alpha``."""
    shows, rules_out, open_, unmeasured = [], [], [], planned - len(comparisons)
    for i, c in enumerate(comparisons):
        p = c.paired
        found = p.shows_difference if adjusted is None else (p.n >= 2 and adjusted[i] <= alpha)
        if p.n < MIN_SEEDS:
            unmeasured += 1
        elif found:
            shows.append(f"{c.a if p.mean > 0 else c.b} higher in {c.label}")
        elif -margin < p.low and p.high < margin:
            rules_out.append(c.label)
        else:
            open_.append(c.label)

    def part(n: int, one: str, many: str, names: list[str]) -> str:
        return f"{n} {one if n == 1 else many}" + (f" ({'; '.join(names)})" if names else "")

    parts = [part(len(shows), "shows a difference", "show a difference", shows),
             part(len(rules_out), f"rules out a difference of {amount(margin)} or more",
                  f"rule out a difference of {amount(margin)} or more", rules_out),
             part(len(open_), "shows no difference but cannot rule out one that large",
                  "show no difference but cannot rule out one that large", open_)]
    if unmeasured:
        parts.append(part(unmeasured, f"has fewer than {MIN_SEEDS} paired seeds, too few for a claim",
                          f"have fewer than {MIN_SEEDS} paired seeds, too few for a claim", []))
    said = "Of the {} planned comparisons{}, ".format(planned, "" if adjusted is None else ", read family-wise")
    return said + ", ".join(parts[:-1]) + " and " + parts[-1] + "."


def comparability(measured_on: str, published_on: str) -> str:
    """How this page's rows may be read against published ones: a neutral phrase."""
    if measured_on == published_on:
        return (f"measured on {published_on} with the same protocol; backbone, pre-training and schedule "
                "differ from the published rows")
    return f"measured on {measured_on}, not on {published_on}: they cannot be compared with the published rows"


# ------------------------------------------------------------------ planned families, read family-wise
ALPHA = 0.05   # the family-wise error rate of every planned family (Holm–Bonferroni)


def family_verdict(c: Comparison, adjusted_p: float, alpha: float = ALPHA, margin: float = MARGIN) -> str:
    """A planned comparison read family-wise: with ``adjusted_p`` (its Holm-adjusted
    p value in its family) at most ``alpha``, which method scores higher and how
    that difference stands against ``margin`` (by less than it, by at least it, or
    "the runs cannot tell whether by 1 point or more"); otherwise no difference
    family-wise, and whether the 95 % interval rules out one of ``margin``. Below
    :data:`MIN_SEEDS` paired seeds it makes no claim. True whatever the numbers."""
    p = c.paired
    if p.n < MIN_SEEDS:
        return verdict(p, c.a, c.b, c.higher)
    d = amount(margin)
    inside = -margin < p.low and p.high < margin
    if adjusted_p <= alpha:
        said = f"{c.a if p.mean > 0 else c.b} {c.higher}"
        beyond = p.low >= margin or p.high <= -margin
        if inside:
            return f"{said}, by less than {d}"
        return f"{said}, by {d} or more" if beyond else f"{said}; the runs cannot tell whether by {d} or more"
    if inside:
        return f"no difference family-wise; the runs rule out one of {d} or more"
    return f"no difference family-wise, and the runs cannot rule out one of {d}"


def p_text(p: float) -> str:
    """A p value as the tables print it: ``0.028``, ``< 0.001``, ``—`` when not measured."""
    if p is None or math.isnan(p):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
