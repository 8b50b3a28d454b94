"""Tables, figures and verdicts that the book's chapters share.

A comparison of two methods is a paired difference over seeds
(:func:`ssfer.stats.paired`): :func:`compare` builds one from a table of runs,
:func:`verdict` turns it into a short, neutral phrase the prose can glue in
("the runs show no difference", "DTA scores higher", "one seed: no claim"),
:func:`comparison_table` and :func:`plot_paired` show it. The other helpers
read what every run records: :func:`run_table` (one row per run),
:func:`recall_per_class` (from the confusion matrix, with scikit-learn),
:func:`pseudo_labels` (quantity and precision per class) and
:func:`pseudo_label_course` (accepted share and precision over training).
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ssfer.stats import Paired, paired

MIN_SEEDS = 3          # fewer paired seeds than this: the book makes no claim
NO_DIFFERENCE = "the runs show no difference"
MARGIN = 1.0           # points of test accuracy: the difference an answer must be able to rule out
SCORES = {"accuracy (%)": "accuracy", "mean class accuracy (%)": "mean_class_accuracy",
          "macro F1 (%)": "macro_f1"}


# ------------------------------------------------------------------ numbers
def num(value: Any, spec: str = ".1f", missing: str = "—") -> str:
    """``format(value, spec)``, or ``missing`` for None and NaN (a value a run did not measure)."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return missing
    return format(value, spec)


def recall_per_class(confusion: Sequence[Sequence[int]]) -> np.ndarray:
    """Recall of each true class (rows of the confusion matrix); NaN for a class with no test sample."""
    from sklearn.metrics import recall_score

    cm = np.asarray(confusion, dtype=np.int64)
    c = len(cm)
    if cm.shape != (c, c) or (cm < 0).any():
        raise ValueError(f"recall_per_class: expected a square matrix of counts, got shape {cm.shape}")
    classes = np.arange(c)
    # the samples the matrix counts: cell (i, j) is cm[i, j] samples of class i predicted as j
    y_true = np.repeat(np.repeat(classes, c), cm.ravel())
    y_pred = np.repeat(np.tile(classes, c), cm.ravel())
    return recall_score(y_true, y_pred, labels=classes, average=None, zero_division=np.nan)


# ------------------------------------------------------------------ runs as tables
def _keys(key: Any, names: Sequence[str]) -> dict:
    key = key if isinstance(key, tuple) else (key,)
    if len(key) != len(names):
        raise ValueError(f"run key {key!r} does not match the key names {tuple(names)}")
    return dict(zip(names, key))


def run_table(records: Mapping[Any, Any], keys: Sequence[str] = ("method",)) -> pd.DataFrame:
    """One row per run: its key columns, then accuracy, mean class accuracy and
    macro-F1 in %, ECE, the labeled and unlabeled counts.

    ``records`` maps a key (a value, or a tuple matching ``keys``) to a
    :class:`ssfer.record.RunRecord`.
    """
    rows = []
    for key, rec in records.items():
        s = rec.summary
        row = _keys(key, keys)
        row.update({col: 100 * s[name] for col, name in SCORES.items()})
        row.update({"ECE": s["ece"], "labeled": s["n_labeled"], "unlabeled": s["n_unlabeled"]})
        rows.append(row)
    return pd.DataFrame(rows)


def recall_table(records: Mapping[Any, Any], keys: Sequence[str] = ("method",)) -> pd.DataFrame:
    """Per-class test recall of every run, long: key columns, ``class``, ``recall (%)``."""
    rows = []
    for key, rec in records.items():
        r = recall_per_class(rec.summary["confusion"])
        rows += [{**_keys(key, keys), "class": c, "recall (%)": 100 * v} for c, v in zip(rec.class_names, r)]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ comparisons
def select(table: pd.DataFrame, **where: Any) -> pd.DataFrame:
    """The rows of ``table`` whose columns hold the given values (``budget=100``)."""
    for col, value in where.items():
        table = table[table[col] == value]
    return table


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
    rows = select(table, **where)

    def scores(name: str) -> dict[int, float]:
        sel = rows[rows[by] == name]
        if sel.empty:
            raise ValueError(f"compare: no run of {by}={name!r}{' where ' + str(where) if where else ''}")
        if sel[seed].duplicated().any():
            raise ValueError(f"compare: {by}={name!r} has more than one run per seed; narrow it with where=")
        # a seed whose run did not measure the metric (NaN: say, a precision without any
        # pseudo label) is left out of the pairing; the comparison's n says how many remain
        return {int(s): float(v) for s, v in zip(sel[seed], sel[metric]) if math.isfinite(v)}

    return Comparison(a, b, metric, scores(a), scores(b), name, higher)


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

    - an interval that excludes 0: "A scores higher" (and, inside (−δ, +δ),
      "by less than δ points");
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
        return verdict(p, a, b, higher) + (f", by less than {d}" if inside else "")
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


def glue_values(glue: Callable, values: Mapping[str, Any]) -> None:
    """Glue every ``{key: value}`` for the prose, none displayed where it is computed."""
    for key, value in values.items():
        glue(key, value, display=False)


def glue_comparison(glue: Callable, name: str, c: Comparison, spec: str = "+.1f") -> None:
    """Glue ``comparison_values(name, c, spec)`` for the prose."""
    glue_values(glue, comparison_values(name, c, spec))


def flexmatch_phase(thresholds: Sequence[float], tau: float = 0.95) -> str:
    """Where FlexMatch stands, from its per-class thresholds at one step.

    During its warm-up β_c = σ_c / max(max σ, #unused) stays below 1 for every
    class (more unlabeled samples were never confidently predicted than the
    most-predicted class holds), so every threshold is below τ; it ends when the
    most-predicted class reaches β = 1, a threshold of exactly τ.
    """
    top = max(thresholds)
    return "out of its warm-up" if top >= tau * (1 - 1e-6) else "still in its warm-up"


def comparability(measured_on: str, published_on: str) -> str:
    """How this page's rows may be read against published ones: a neutral phrase."""
    if measured_on == published_on:
        return (f"measured on {published_on} with the same protocol; backbone, pre-training and schedule "
                "differ from the published rows")
    return f"measured on {measured_on}, not on {published_on}: they cannot be compared with the published rows"


# ------------------------------------------------------------------ pseudo labels
def pseudo_labels(record: Any, stages: int | None = None) -> pd.DataFrame:
    """Pseudo labels per class from a run's history, against the hidden true labels.

    ``accepted``: pseudo labels given as class c; ``seen``: unlabeled samples of
    true class c; ``correct``: accepted labels of c that were right. Then
    ``quantity`` = accepted / seen (above 1 when other faces are called c too),
    ``precision`` = correct / accepted (NaN where c got none) and
    ``correct share`` = correct / seen. With ``stages``, one row per stage and
    class (``stage`` 0..stages-1, ``step`` its last step); else whole-run sums.
    """
    names = record.class_names
    steps = record.config.train.steps
    rows = []
    for h in record.history:
        if h.get("pl_count_per_class") is None:
            continue
        stage = min(stages - 1, (h["step"] - 1) * stages // steps) if stages else 0
        for c, name in enumerate(names):
            n = h["pl_count_per_class"][c]
            prec = h["pl_precision_per_class"][c]
            rows.append({"stage": stage, "class": name, "accepted": n, "seen": h["unlabeled_count_per_class"][c],
                         "correct": (prec or 0.0) * n})
    cols = ["stage", "class", "accepted", "seen", "correct"]
    frame = pd.DataFrame(rows, columns=cols)
    out = frame.groupby(["stage", "class"], as_index=False, sort=False)[cols[2:]].sum()
    out["quantity"] = out["accepted"] / out["seen"].where(out["seen"] > 0)
    out["precision"] = out["correct"] / out["accepted"].where(out["accepted"] > 0)
    out["correct share"] = out["correct"] / out["seen"].where(out["seen"] > 0)
    if stages:
        out["step"] = (out["stage"] + 1) * steps / stages
        return out
    return out.drop(columns="stage")


def pseudo_label_course(records: Mapping[Any, Any], keys: Sequence[str] = ("method",)) -> pd.DataFrame:
    """Accepted share and precision of the pseudo labels at every logged step, long:
    the key columns, ``step``, ``quantity`` ("accepted share" | "precision"), ``value``.
    Runs that give no pseudo labels (supervised) are left out."""
    frames = []
    for key, rec in records.items():
        h = rec.history_frame()
        if "mask_rate" not in h:
            continue
        h = h[["step", "mask_rate", "pl_precision"]].rename(
            columns={"mask_rate": "accepted share", "pl_precision": "precision"})
        frames.append(h.melt(id_vars="step", var_name="quantity", value_name="value").assign(**_keys(key, keys)))
    cols = [*keys, "step", "quantity", "value"]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    out["value"] = pd.to_numeric(out["value"], errors="coerce")
    return out[cols]


def window_mean(course: pd.DataFrame, name: str, quantity: str, first: int, last: int,
                key: str = "method") -> float:
    """Mean of one curve of :func:`pseudo_label_course` over logged steps first..last (NaN if none)."""
    sel = course[(course[key] == name) & (course["quantity"] == quantity)
                 & course["step"].between(first, last)]["value"]
    return float(sel.mean()) if sel.notna().any() else float("nan")


# ------------------------------------------------------------------ display
class Table:
    """A DataFrame shown rounded, with "—" for missing values: HTML through pandas'
    Styler (a fixed id, so re-running gives the same page) and the same text as plain text."""

    def __init__(self, frame: pd.DataFrame, digits: int | Mapping[str, int] = 1, index: bool = False):
        self.frame = frame
        self.digits = digits
        self.index = index

    def _formats(self) -> dict:
        num_cols = self.frame.select_dtypes("number").columns
        if isinstance(self.digits, Mapping):
            return {c: f"{{:.{self.digits.get(c, 1)}f}}" for c in num_cols
                    if not pd.api.types.is_integer_dtype(self.frame[c])}
        return {c: f"{{:.{self.digits}f}}" for c in num_cols if not pd.api.types.is_integer_dtype(self.frame[c])}

    def styler(self):
        uid = hashlib.sha1(self.frame.to_json(orient="split", default_handler=str).encode()).hexdigest()[:10]
        st = self.frame.style.format(self._formats(), na_rep="—").set_uuid(uid)
        st = st.set_table_attributes('class="dataframe ssfer-table"')
        return st if self.index else st.hide(axis="index")

    def text(self) -> pd.DataFrame:
        out = self.frame.copy()
        for col, spec in self._formats().items():
            out[col] = [num(v, spec[2:-1]) for v in self.frame[col]]
        return out.fillna("—")

    def _repr_html_(self) -> str:
        return self.styler().to_html()

    def __repr__(self) -> str:
        return self.text().to_string(index=self.index)


def table(frame: pd.DataFrame, digits: int | Mapping[str, int] = 1, index: bool = False) -> Table:
    """Display ``frame`` with ``digits`` decimals (per column with a mapping) and "—" for NaN."""
    return Table(frame, digits, index)


def legend_below(obj: Any, ncol: int = 3, title: str | None = None) -> None:
    """Move a legend below the plot, so it never covers data.

    ``obj``: a seaborn FacetGrid, or an Axes whose figure uses the constrained
    layout (``plt.subplots(layout="constrained")``), which makes room for it.
    """
    import seaborn as sns

    if hasattr(obj, "axes") and hasattr(obj, "add_legend"):  # a FacetGrid: its legend is the figure's
        # below the lowest text of the panels: rotated tick labels and the x labels under
        # them can reach past the figure's bottom edge, where a legend at y=0 would cover them
        fig = obj.figure
        if obj.legend is not None:
            obj.legend.set_visible(False)  # not part of the panels' extent
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        bottom = min(ax.get_tightbbox(renderer).y0 for ax in obj.axes.flat) / fig.bbox.height
        sns.move_legend(obj, "upper center", bbox_to_anchor=(0.5, min(0.0, bottom) - 0.01), ncol=ncol,
                        title=title, frameon=False)
        obj.legend.set_visible(True)
        return
    handles, labels = obj.get_legend_handles_labels()
    if obj.get_legend() is not None:
        obj.get_legend().remove()
    obj.figure.legend(handles, labels, loc="outside lower center", ncol=ncol, title=title, frameon=False)


def plot_paired(comparisons: Sequence[Comparison], ax=None, unit: str = "points", title: str | None = None):
    """Each comparison on one row: its per-seed differences (dots), their mean and 95 %
    interval (bar), and 0 (dashed): a bar that crosses 0 shows no difference."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.0, 0.6 * len(comparisons) + 1.4), layout="constrained")
    labelled: set[str] = set()

    def once(label: str) -> str | None:
        # each kind of mark in the legend once, whichever row shows it first
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for i, c in enumerate(comparisons):
        y = len(comparisons) - 1 - i
        d = list(c.differences.values())
        ax.scatter(d, [y] * len(d), color="0.55", s=18, zorder=2, label=once("one seed"))
        p = c.paired
        if p.n >= 2:
            ax.errorbar(p.mean, y, xerr=[[p.mean - p.low], [p.high - p.mean]], fmt="o", color="C0",
                        capsize=4, zorder=3, label=once("mean, 95 % interval"))
        else:
            ax.plot(p.mean, y, "D", color="C0", zorder=3, label=once("one seed only: no interval"))
    ax.axvline(0, color="0.3", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(comparisons)), [f"{c.label}\n{c.what}" for c in reversed(comparisons)])
    ax.set_ylim(-0.6, len(comparisons) - 0.4)
    ax.set_xlabel(f"paired difference ({unit})")
    if title:
        ax.set_title(title)
    legend_below(ax, ncol=2)
    return ax


def cross_test(record: Any, dataset: str, root: str | None, options: dict | None = None,
               device: str = "auto") -> dict:
    """``ssfer.evaluate.evaluate_run`` with the CPU thread count the run trained
    with, so a re-run gives the same numbers whatever the kernel's default."""
    import torch

    from ssfer.evaluate import evaluate_run

    before = torch.get_num_threads()
    if record.config.train.threads:
        torch.set_num_threads(record.config.train.threads)
    try:
        return evaluate_run(record.run_dir, dataset, root, "test", options=options, device=device)
    finally:
        torch.set_num_threads(before)


__all__ = ["MIN_SEEDS", "NO_DIFFERENCE", "Comparison", "Table", "comparability", "compare", "comparison_table",
           "comparison_values", "cross_test", "flexmatch_phase", "glue_comparison", "glue_values", "interval",
           "legend_below", "num", "plot_paired", "pseudo_label_course", "pseudo_labels", "recall_per_class",
           "recall_table", "run_table", "select", "table", "under_control", "verdict", "window_mean"]


# ------------------------------------------------------------------ what each rule does, and what it costs
def threshold_course(record: Any) -> pd.DataFrame:
    """Per-class thresholds at every logged step, long: ``step``, ``class``, ``threshold``
    (empty for a run without a threshold rule)."""
    rows = [{"step": h["step"], "class": c, "threshold": t}
            for h in record.history if h.get("thresholds") is not None
            for c, t in zip(record.class_names, h["thresholds"])]
    return pd.DataFrame(rows, columns=["step", "class", "threshold"])


def threshold_facts(records: Mapping[Any, Any], floor: float = 0.5, keys: Sequence[str] = ("method", "seed")
                    ) -> pd.DataFrame:
    """What each run's rule did, per class: the highest threshold it reached, the
    share of logged steps it sat on ``floor`` (DTA's tau_min), and the pseudo labels
    the class received per unlabeled face of it (:func:`pseudo_labels`' quantity)."""
    frames = []
    for key, rec in records.items():
        course = threshold_course(rec)
        if course.empty:
            continue
        g = course.groupby("class", sort=False)["threshold"]
        facts = pd.DataFrame({"top threshold": g.max(),
                              "steps on the floor (%)": 100 * g.apply(lambda t: (t <= floor + 1e-6).mean())})
        pl = pseudo_labels(rec).set_index("class")["quantity"]
        frames.append(facts.join(pl.rename("pseudo labels per face")).reset_index().assign(**_keys(key, keys)))
    cols = [*keys, "class", "top threshold", "steps on the floor (%)", "pseudo labels per face"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def time_to_accuracy(records: Mapping[Any, Any], keys: Sequence[str] = ("method", "seed")) -> pd.DataFrame:
    """Validation accuracy at every evaluation step against training time, long:
    key columns, ``step``, ``minutes``, ``val accuracy (%)``, ``timed``. A row's
    minutes are the run's cumulative ``train_seconds`` at that step where the run
    recorded it ("recorded"), else the run's total time scaled by the share of its
    steps done ("from the total": the runs recorded before the per-step time was)."""
    rows = []
    for key, rec in records.items():
        total, steps = rec.summary.get("train_seconds"), rec.summary.get("steps") or rec.config.train.steps
        for h in rec.history:
            if "val_accuracy" not in h:
                continue
            timed = "recorded" if "train_seconds" in h else "from the total"
            seconds = h["train_seconds"] if timed == "recorded" else total * h["step"] / steps
            rows.append({**_keys(key, keys), "step": h["step"], "minutes": seconds / 60,
                         "val accuracy (%)": 100 * h["val_accuracy"], "timed": timed})
    return pd.DataFrame(rows, columns=[*keys, "step", "minutes", "val accuracy (%)", "timed"])


def plot_time_to_accuracy(frame: pd.DataFrame, ax=None, by: str = "method"):
    """One line per ``by`` value: mean validation accuracy over seeds at each
    evaluation step against the mean minutes to reach it, band ± sd of accuracy."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(8, 4.5))[1]
    for name, rows in frame.groupby(by, sort=False):
        g = rows.groupby("step")
        x, y, sd = g["minutes"].mean(), g["val accuracy (%)"].mean(), g["val accuracy (%)"].std(ddof=1).fillna(0)
        line, = ax.plot(x, y, marker="o", ms=3, label=name)
        ax.fill_between(x, y - sd, y + sd, color=line.get_color(), alpha=0.15, lw=0)
    ax.set(xlabel="training time (minutes, one CPU core)", ylabel="validation accuracy (%)")
    legend_below(ax, ncol=min(5, frame[by].nunique()))
    return ax


def step_costs(table: pd.DataFrame, by: str = "method", baseline: str = "supervised") -> pd.DataFrame:
    """Seconds per 1,000 training steps of each method (mean over its runs, from
    ``train minutes`` and ``steps``) and its cost relative to ``baseline``."""
    per = (table["train minutes"] * 60 * 1000 / table["steps"]).groupby(table[by], sort=False)
    out = pd.DataFrame({"runs": per.size(), "seconds per 1,000 steps": per.mean()})
    if baseline in out.index:
        out[f"× {baseline}"] = out["seconds per 1,000 steps"] / out.loc[baseline, "seconds per 1,000 steps"]
    return out.reset_index()


def accepted_share(record: Any) -> float:
    """Mean share of the unlabeled batch whose pseudo label passed its threshold,
    over a run's logged steps (NaN for a run without pseudo labels)."""
    rates = [h["mask_rate"] for h in record.history if h.get("mask_rate") is not None]
    return float(np.mean(rates)) if rates else math.nan


def family_summary(comparisons: Sequence[Comparison], planned: int, margin: float = MARGIN) -> str:
    """One sentence over a planned family, true whatever the numbers: how many of
    its ``planned`` comparisons show a difference (and which way), how many rule out
    a difference of ``margin`` or more, and how many cannot tell or have too few
    seeds for a claim."""
    shows, rules_out, open_, unmeasured = [], [], [], planned - len(comparisons)
    for c in comparisons:
        p = c.paired
        if p.n < MIN_SEEDS:
            unmeasured += 1
        elif p.shows_difference:
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
    return f"Of the {planned} planned comparisons, " + ", ".join(parts[:-1]) + " and " + parts[-1] + "."
